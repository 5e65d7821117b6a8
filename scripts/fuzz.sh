#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) in build-fuzz with clang and runs each one for a bounded
# time on a copy of its seed corpus (fuzz/corpus/<target>/). Any crash, leak, sanitizer report
# or failed invariant fails the script; the reproducer is left in build-fuzz/artifacts/<target>/.
#
# Usage: bash scripts/fuzz.sh [seconds-per-target]      (default 30; FUZZ_SECONDS also works)
#        FUZZ_TARGETS="get_records sigv4" bash scripts/fuzz.sh 60    (a subset)
# Reproduce a crash: build-fuzz/fuzz/fuzz_<target> build-fuzz/artifacts/<target>/crash-<sha1>
# See docs/internals/testing.md ("Fuzzing").
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-${FUZZ_SECONDS:-30}}
dir=${FUZZ_BUILD_DIR:-build-fuzz}
targets=${FUZZ_TARGETS:-"get_records put_records list_shards kpl_decode ckpt_snapshot ckpt_meta sigv4 pipeline http_answer"}

cc=${FUZZ_CC:-}
if [ -z "$cc" ]; then
  for c in clang-14 clang; do
    if command -v "$c" >/dev/null 2>&1; then
      cc=$c
      break
    fi
  done
fi
if [ -z "$cc" ]; then
  echo "fuzz.sh: clang not found: install clang-14 and libclang-rt-14-dev (scripts/install-deps.sh)" >&2
  exit 1
fi

gen=()
if command -v ninja >/dev/null 2>&1; then gen=(-G Ninja); fi
CC=$cc cmake -S . -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEIR_FUZZ=ON \
  -DWEIR_BUILD_TESTS=OFF -DWEIR_BUILD_BENCH=OFF -DWEIR_BUILD_EXAMPLES=OFF >/dev/null
build_targets=()
for t in $targets; do build_targets+=("fuzz_$t"); done
cmake --build "$dir" -j"${FUZZ_JOBS:-2}" --target "${build_targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
summary=()
for t in $targets; do
  corpus="$dir/corpus/$t"
  artifacts="$dir/artifacts/$t"
  log="$dir/fuzz-$t.log"
  mkdir -p "$corpus" "$artifacts"
  # Work on a copy: the fuzzer adds what it finds; the checked-in seeds stay small.
  cp -f fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  dict=()
  case $t in
  get_records | put_records | list_shards) dict=(-dict=fuzz/dict/kinesis_json.dict) ;;
  kpl_decode) dict=(-dict=fuzz/dict/kpl.dict) ;;
  sigv4) dict=(-dict=fuzz/dict/sigv4.dict) ;;
  esac
  printf '=== fuzz %s: %s s ===\n' "$t" "$seconds"
  set +e
  "$dir/fuzz/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 \
    -max_len=65536 -timeout=10 -artifact_prefix="$artifacts/" "${dict[@]}" "$corpus" \
    >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  summary+=("$(printf '%-14s %10s execs %8s execs/s  rc=%d' "$t" "${runs:-?}" "${speed:-?}" "$rc")")
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    tail -n 60 "$log" >&2
    echo "fuzz.sh: $t failed; reproducer(s) in $artifacts/:" >&2
    ls -1 "$artifacts" >&2 || true
  fi
done

printf '\n=== fuzz summary (%s s per target) ===\n' "$seconds"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
