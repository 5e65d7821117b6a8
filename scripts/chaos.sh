#!/usr/bin/env bash
# The chaos test (issue 9; docs/guarantees.md, "Chaos"): builds tests/chaos/chaos_pipeline and
# the weir CLI in build-chaos (RelWithDebInfo) and runs the YAML pipeline tests/chaos/chaos.yaml
# through [cycles] SIGKILL/restart cycles (default 500: the long form, about 12 minutes) under
# the fault proxy, then checks every window count against a reference computed from the input.
# ctest runs a 50-cycle form (chaos_short) in every build. Needs node and
# `npm ci` in tests/kinesis-servers (exit 77 from the program = skipped: they are missing).
#
# Usage: bash scripts/chaos.sh [cycles]      (CHAOS_SEED, CHAOS_RATE, CHAOS_BUILD_DIR optional)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cycles=${1:-500}
dir=${CHAOS_BUILD_DIR:-build-chaos}

cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" -j2 --target chaos_pipeline weir_cli
"$dir/tests/chaos_pipeline" --weir "$dir/cli/weir" --pipeline tests/chaos/chaos.yaml \
  --cycles "$cycles" --seed "${CHAOS_SEED:-1}" --rate "${CHAOS_RATE:-200}"
