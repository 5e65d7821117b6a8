#!/usr/bin/env bash
# Installs dependencies, builds weir, and runs its main job on an embedded default:
# for now the wordcount example over a deterministic generator (see examples/wordcount.c).
# Usage: bash scripts/run.sh [sentences]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/install-deps.sh >&2
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build wordcount >&2
exec ./build/examples/wordcount "${1:-100000}"
