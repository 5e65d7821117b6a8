#!/usr/bin/env bash
# Installs everything, builds weir, and runs the whole test suite:
#   1. a normal build with warnings as errors: every test, the example, and the example
#      compiled against the installed library through pkg-config;
#   2. the same suite under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. the same suite under ThreadSanitizer;
#   4. a clang-format check of every C file;
#   5. every libFuzzer target for FUZZ_SECONDS (default 20) seconds (scripts/fuzz.sh).
# Usage: bash scripts/test.sh        (from the repository root, as root or with sudo)
# WEIR_TEST_SKIP_SAN=1 skips steps 2 and 3 (a quick local run; CI never sets it).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/install-deps.sh
# Local Kinesis-compatible servers and the AWS SDK for JavaScript, for the integration tests.
(cd tests/kinesis-servers && npm ci --no-audit --no-fund)

jobs=$(nproc)
step() { printf '\n=== %s ===\n' "$*"; }

# Tests run through $runner (empty, or a wrapper such as setarch).
runner=()
build_and_test() { # dir, cmake args...
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja -DWEIR_WERROR=ON "$@" >/dev/null
  ninja -C "$dir"
  (cd "$dir" && "${runner[@]}" ctest --output-on-failure -j1)
}

step "format check"
git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror

step "normal build"
build_and_test build-ci -DCMAKE_BUILD_TYPE=RelWithDebInfo
./build-ci/examples/wordcount 1000 >/dev/null

step "install and build the example against it with pkg-config"
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install build-ci --prefix "$prefix" >/dev/null
PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig" \
  sh -c 'cc -std=c11 -Wall -Werror -o "$1/wordcount" examples/wordcount.c \
         $(pkg-config --cflags --libs weir)' _ "$prefix"
LD_LIBRARY_PATH="$prefix/lib:$prefix/lib/x86_64-linux-gnu" "$prefix/wordcount" 1000 >/dev/null

if [ "${WEIR_TEST_SKIP_SAN:-0}" != 1 ]; then
  step "ASan + UBSan build"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    build_and_test build-ci-asan -DCMAKE_BUILD_TYPE=Debug -DWEIR_ASAN=ON -DWEIR_UBSAN=ON \
    -DWEIR_BUILD_BENCH=OFF

  step "TSan build"
  # Newer kernels randomise mmap with more entropy than TSan's shadow layout allows:
  # run the tests with address-space randomisation off for this step only.
  runner=(setarch "$(uname -m)" -R)
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    build_and_test build-ci-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEIR_TSAN=ON \
    -DWEIR_BUILD_BENCH=OFF
  runner=()
fi

# libFuzzer targets (fuzz/), each for a bounded time; a crash fails the run.
# FUZZ_SECONDS sets the time per target (0 skips the step).
if [ "${FUZZ_SECONDS:-20}" != 0 ]; then
  step "fuzzing (${FUZZ_SECONDS:-20} s per target)"
  bash scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
fi

step "all tests passed"
