#!/usr/bin/env bash
# Usage: fuzz/run-all.sh SECONDS
# Seeds the corpora (seed-corpus.sh), builds every target once, then fuzzes each for SECONDS,
# one at a time, and prints each target's executions line (libFuzzer's final stats). Full
# logs go to fuzz/target/run-all-logs/<target>.log; crashes to fuzz/artifacts/<target>/.
# Set JOBS to change the build's parallelism (default 1, to share the machine).
set -uo pipefail
secs=${1:?usage: $0 SECONDS}
fuzz=$(cd "$(dirname "$0")" && pwd)
cd "$fuzz"
./seed-corpus.sh
# The same build flags for build and run, or `run` would rebuild: release with debug
# assertions and overflow checks, AddressSanitizer (cargo fuzz's default).
flags=(-O -a)
CARGO_BUILD_JOBS=${JOBS:-1} cargo +nightly fuzz build "${flags[@]}" || exit 1
mkdir -p target/run-all-logs
status=0
for spec in idx_raw:65536 idx_gz:65536 cifar:32768 folder_image:65536 checkpoint:65536; do
    t=${spec%%:*}
    log=target/run-all-logs/$t.log
    CARGO_BUILD_JOBS=${JOBS:-1} cargo +nightly fuzz run "${flags[@]}" "$t" -- \
        -max_total_time="$secs" -max_len="${spec#*:}" -rss_limit_mb=2048 -timeout=30 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    crash=$(grep -E '^(==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)' "$log" | tail -n 2 | tr '\n' ' ')
    printf '%-13s rc=%d executions=%s | %s %s\n' "$t" "$rc" "${execs:-?}" "$last" "$crash"
    [ "$rc" -eq 0 ] || status=1
done
rm -rf "${TMPDIR:-/tmp}"/adaresnet-fuzz-*
exit $status
