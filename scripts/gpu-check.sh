#!/usr/bin/env bash
# One command for a machine with a GPU (or, to rehearse it, lavapipe): writes a results folder
# with what docs/performance.md's log and backend table need, in under 8 minutes on a GPU.
#
#   scripts/gpu-check.sh [OUT_DIR] [BURN_BENCH_BINARY]
#     OUT_DIR            default gpu-check-<date>; ADARESNET_BIN picks the binary
#                        (default target/release/adaresnet, built when missing)
#     BURN_BENCH_BINARY  optional: Burn's benchmark (burn-bench, see docs/performance.md), run on the same
#                        adapter for resnet8 (`small`) and `paper` at batch 32
#
# OUT_DIR/ (each step's stdout, its stderr beside it as .log): devices.txt, kernel-choice.txt, check-grads-{ops,resnet8,paper}.txt,
# bench-{resnet8,paper}.json (batch 32 and 128 on 3x32x32, with --peak), profile-{resnet8,paper}.txt
# (--top 20), burn-{small,paper}.txt, and summary.txt: each step's status and seconds.
# A failing step is recorded and the script goes on; it exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-check-$(date +%Y%m%d-%H%M%S)}
burn=${2:-}
bin=${ADARESNET_BIN:-target/release/adaresnet}
if [[ ! -x $bin ]]; then
  cargo build --release --quiet || { echo "error: cargo build --release failed" >&2; exit 1; }
fi
[[ -z $burn || -x $burn ]] || { echo "error: $burn is not an executable burn-bench" >&2; exit 1; }
mkdir -p "$out" || exit 1
# Kernel measurements land in the results folder, not the user's cache: the choice below is
# measured afresh on this machine.
export ADARESNET_CACHE_DIR=$out/cache XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
summary=$out/summary.txt
: >"$summary"
failed=0

step() {
  local file=$1
  shift
  local t0=$SECONDS
  echo "== $file: $*" >&2
  if "$@" >"$out/$file" 2>"$out/$file.log"; then
    echo "ok     $file ($((SECONDS - t0)) s): $*" | tee -a "$summary" >&2
  else
    echo "FAILED $file ($((SECONDS - t0)) s, exit $?): $*" | tee -a "$summary" >&2
    tail -5 "$out/$file.log" >&2
    failed=1
  fi
}

step devices.txt "$bin" devices
step check-grads-ops.txt "$bin" check-grads
step check-grads-resnet8.txt "$bin" check-grads --model resnet8 --batch 8
step check-grads-paper.txt "$bin" check-grads --model paper --batch 4
for model in resnet8 paper; do
  step "bench-$model.json" "$bin" bench --models "$model" --dataset cifar10 --batches 32,128 --peak --json
  step "profile-$model.txt" "$bin" profile --model "$model" --dataset cifar10 --batch 32 --top 20
done
# The kernel style in force and the timings it was chosen by, as bench and profile print them.
grep -h "^kernels:" "$out"/bench-*.log "$out"/profile-*.txt >"$out/kernel-choice.txt" 2>/dev/null
# Every style the adapter runs, timed on the probe (GPU timestamps), even where a table would
# pick without timing (CPU adapters); the cache above already holds the real choice.
ADARESNET_CACHE_DIR=$out/cache-measured ADARESNET_KERNELS=measure \
  step kernel-choice-measured.txt "$bin" bench --models resnet8 --batches 8 --reps 1 --steps 1 --warmup 0
grep -h "^kernels:" "$out/kernel-choice-measured.txt.log" >>"$out/kernel-choice.txt" 2>/dev/null
if [[ -n $burn ]]; then
  for variant in small paper; do
    step "burn-$variant.txt" "$burn" --backend wgpu --variant "$variant" --mode train --batch 32 --warmup 2 --steps 6
  done
fi
echo "results in $out/ (summary.txt)" >&2
exit $failed
