#!/usr/bin/env bash
# The demo (README's first command): installs what is needed, builds weir, starts a local
# Kinesis server (kinesalite) on 127.0.0.1, creates an input and an output stream, feeds the
# sample clickstream (examples/pipelines/clickstream-sample.jsonl), and runs
# examples/pipelines/clickstream.yaml: clicks per page in 10-second event-time windows, to
# stdout, a file and the output stream. It kills the job with SIGKILL mid-stream, runs it again
# (it resumes from its last checkpoint), checks that every window's count equals the count
# computed from the sample file, and stops everything it started. docs/getting-started.md explains what it shows.
#
# Usage: bash scripts/run.sh        (from anywhere, as root or with sudo on a fresh Debian 12)
# Environment (for CI and repeated runs; the defaults do everything):
#   WEIR_DEMO_SKIP_INSTALL=1  skip scripts/install-deps.sh and `npm ci`
#   WEIR_DEMO_BUILD=DIR       build directory (default build; relative to the repository root or
#                             absolute); WEIR_DEMO_SKIP_BUILD=1 reuses it as it is
#   WEIR_DEMO_WEIR=PATH       the weir binary to use (no build; tests/integration/test_demo.c)
#   WEIR_DEMO_DIR=DIR         work directory, kept afterwards (default: a temporary one, removed)
# Exit status: 0 when the results match the sample, 1 otherwise or on any failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { printf '\n==> %s\n' "$*"; }
die() {
  printf 'run.sh: %s\n' "$*" >&2
  exit 1
}

# ---- install and build ---------------------------------------------------------------------
build=${WEIR_DEMO_BUILD:-build}
if [ "${WEIR_DEMO_SKIP_INSTALL:-0}" != 1 ]; then
  say "installing dependencies (scripts/install-deps.sh)"
  bash scripts/install-deps.sh >&2
fi
if [ ! -d tests/kinesis-servers/node_modules/kinesalite ]; then
  [ "${WEIR_DEMO_SKIP_INSTALL:-0}" != 1 ] || die "tests/kinesis-servers has no node_modules: run 'npm ci' there"
  say "installing kinesalite (npm ci in tests/kinesis-servers)"
  (cd tests/kinesis-servers && npm ci --no-audit --no-fund >&2)
fi
if [ "${WEIR_DEMO_SKIP_BUILD:-0}" != 1 ] && [ -z "${WEIR_DEMO_WEIR:-}" ]; then
  say "building weir in $build"
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  ninja -C "$build" weir_cli >&2
fi
case $build in
/*) weir=$build/cli/weir ;;
*) weir=$root/$build/cli/weir ;;
esac
weir=${WEIR_DEMO_WEIR:-$weir}
[ -x "$weir" ] || die "$weir is missing: build it, or unset WEIR_DEMO_SKIP_BUILD"

# ---- work directory and cleanup ------------------------------------------------------------
if [ -n "${WEIR_DEMO_DIR:-}" ]; then
  work=$WEIR_DEMO_DIR
  rm -rf "$work/checkpoints" "$work/results.jsonl" "$work"/kinesalite.*
  mkdir -p "$work"
  keep=1
else
  work=$(mktemp -d /tmp/weir-demo.XXXXXX)
  keep=0
fi
server_pid=
job_pid=
cleanup() {
  [ -z "$job_pid" ] || kill -9 "$job_pid" 2>/dev/null || true
  [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
  exec 9>&- 2>/dev/null || true # kinesalite also exits when its stdin closes
  [ -z "$server_pid" ] || wait "$server_pid" 2>/dev/null || true
  [ "$keep" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- the local Kinesis server ----------------------------------------------------------------
say "starting kinesalite on 127.0.0.1"
# start.js prints {"server":"kinesalite","port":P} once it answers, and exits when its stdin
# closes: hold a FIFO open on fd 9 as its stdin, so it also goes away if this script is killed.
mkfifo "$work/kinesalite.stdin"
exec 9<>"$work/kinesalite.stdin"
node tests/kinesis-servers/start.js kinesalite <&9 >"$work/kinesalite.json" \
  2>"$work/kinesalite.log" &
server_pid=$!
for _ in $(seq 300); do
  grep -q '"port"' "$work/kinesalite.json" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || die "kinesalite did not start: $(cat "$work/kinesalite.log")"
  sleep 0.1
done
port=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$work/kinesalite.json")
[ -n "$port" ] || die "kinesalite did not report its port in 30 s"
echo "kinesalite listening on http://127.0.0.1:$port (pid $server_pid)"

# Everything below talks to it; kinesalite accepts any credentials.
export KINESIS_ENDPOINT=http://127.0.0.1:$port AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$port
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo
export INPUT_STREAM=clicks OUTPUT_STREAM=clicks-per-page DEMO_DIR=$work
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL || true

# ---- streams and data ----------------------------------------------------------------------
sample=examples/pipelines/clickstream-sample.jsonl
say "creating streams '$INPUT_STREAM' and '$OUTPUT_STREAM' (weir kinesis create)"
"$weir" kinesis create "$INPUT_STREAM" --shards 1 --wait
"$weir" kinesis create "$OUTPUT_STREAM" --shards 1 --wait
say "putting $(wc -l <"$sample") clicks from $sample (weir kinesis put)"
head -n 3 "$sample"
echo "..."
"$weir" kinesis put "$INPUT_STREAM" <"$sample"

pipeline=examples/pipelines/clickstream.yaml
"$weir" validate "$pipeline"

# ---- run 1: killed mid-stream ----------------------------------------------------------------
say "run 1: weir run $pipeline (killed with SIGKILL once a checkpoint is done)"
"$weir" run --status-interval 200 "$pipeline" >"$work/run1.out" 2>"$work/run1.err" &
job_pid=$!
# Wait for a completed checkpoint and some fired windows, then kill without warning.
killed=0
for _ in $(seq 600); do
  kill -0 "$job_pid" 2>/dev/null || break
  if grep -q 'checkpoint [1-9]' "$work/run1.err" &&
    [ "$(wc -l <"$work/results.jsonl" 2>/dev/null || echo 0)" -ge 20 ]; then
    kill -9 "$job_pid"
    killed=1
    break
  fi
  sleep 0.1
done
{ wait "$job_pid"; } 2>/dev/null || true # no "Killed" notice
job_pid=
head -n 5 "$work/run1.out"
echo "... ($(wc -l <"$work/run1.out") window results printed)"
if [ "$killed" = 1 ]; then
  grep 'checkpoint [1-9]' "$work/run1.err" | tail -n 1
  echo "killed run 1 (SIGKILL) after $(wc -l <"$work/run1.out") results; its checkpoints:"
else
  echo "run 1 ended before it could be killed: $(tail -n 1 "$work/run1.err")"
fi
"$weir" checkpoints list "$work/checkpoints"

# ---- run 2: resumes from the checkpoint ------------------------------------------------------
say "run 2: weir run $pipeline (resumes from the latest checkpoint, reads to the end)"
# In the background with `wait`, so that a signal to this script is handled at once.
"$weir" run --status-interval 0 "$pipeline" >"$work/run2.out" 2>"$work/run2.err" &
job_pid=$!
wait "$job_pid" || die "run 2 failed: $(cat "$work/run2.err")"
job_pid=
grep 'restored from checkpoint' "$work/run2.err" || grep 'started' "$work/run2.err" | head -n 1
head -n 5 "$work/run2.out"
echo "... ($(wc -l <"$work/run2.out") window results printed)"
tail -n 1 "$work/run2.err"

# ---- results -------------------------------------------------------------------------------
# A window result is {"key":"/cart","window_start":T,"window_end":T+10000,"count":N}. Counts
# live in checkpointed state, so they are exact; the stdout, file and Kinesis sinks are
# at-least-once, so a window fired between the last checkpoint and the kill is printed again
# by run 2, with the same count.
say "clicks per page and 10-second window (both runs, each window once)"
fields() { sed -n 's/.*"key":"\([^"]*\)","window_start":\([0-9]*\),.*"count":\([0-9]*\).*/\2 \1 \3/p' "$@"; }
fields "$work/results.jsonl" | sort -u >"$work/windows.txt"
awk '{ page[$2] = 1; c[$1, $2] = $3; w[$1] = 1 }
     END {
       n = 0; for (p in page) names[++n] = p
       for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
         if (names[j] < names[i]) { t = names[i]; names[i] = names[j]; names[j] = t }
       printf "%-14s", "window (UTC)"; for (i = 1; i <= n; i++) printf " %10s", names[i]; print ""
       m = 0; for (s in w) ws[++m] = s # kept as strings: they index c[]
       for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
         if (ws[j] + 0 < ws[i] + 0) { t = ws[i]; ws[i] = ws[j]; ws[j] = t }
       for (k = 1; k <= m; k++) {
         sec = int(ws[k] / 1000) % 86400
         printf "%02d:%02d:%02d      ", sec / 3600, (sec / 60) % 60, sec % 60
         for (i = 1; i <= n; i++) printf " %10d", c[ws[k], names[i]]
         print ""
       }
     }' "$work/windows.txt"

# The reference, computed from the sample file itself.
sed -n 's/.*"page":"\([^"]*\)".*"ts":\([0-9]*\).*/\1 \2/p' "$sample" |
  awk '{ n[sprintf("%.0f %s", $2 - $2 % 10000, $1)]++ } END { for (k in n) print k, n[k] }' | sort -u \
  >"$work/reference.txt"
lines=$(wc -l <"$work/results.jsonl")
distinct=$(wc -l <"$work/windows.txt")
keys=$(cut -d' ' -f1,2 "$work/windows.txt" | sort -u | wc -l)
total=$(awk '{ s += $3 } END { print s + 0 }' "$work/windows.txt")
echo "results written: $lines lines for $distinct distinct windows; $total clicks counted"
if [ "$keys" != "$distinct" ]; then
  die "FAIL: a window was emitted twice with different counts (double counting)"
fi
if ! diff -u "$work/reference.txt" "$work/windows.txt" >"$work/diff.txt"; then
  cat "$work/diff.txt" >&2
  die "FAIL: the window counts differ from the counts computed from $sample"
fi
echo "OK: every window's count equals the count computed from $sample ($total clicks);" \
  "$((lines - distinct)) results repeated after the kill, with the same counts"

say "the results in Kinesis stream '$OUTPUT_STREAM' (weir kinesis tail)"
"$weir" kinesis tail "$OUTPUT_STREAM" >"$work/output-stream.jsonl"
head -n 5 "$work/output-stream.jsonl"
echo "... ($(wc -l <"$work/output-stream.jsonl") records in the stream)"
fields "$work/output-stream.jsonl" | sort -u >"$work/stream-windows.txt"
cmp -s "$work/windows.txt" "$work/stream-windows.txt" ||
  die "FAIL: the results in stream '$OUTPUT_STREAM' differ from those in results.jsonl"
echo "OK: the stream holds the same window counts"
[ "$keep" = 0 ] || echo "work directory kept: $work"
say "done: stopping kinesalite"
