#!/usr/bin/env bash
# The engine on a second, independent Vulkan implementation: Google's SwiftShader (a CPU
# device with 4-lane subgroups, no shader-f16, 1 GiB storage bindings, 256 invocations per
# workgroup), from Debian's chromium-headless-shell. Runs the op sweep (every kernel against
# its f64 CPU twin over the awkward shapes), check-grads (ops and the whole resnet8) and a
# short training run with a checkpoint, all on SwiftShader.
#
#   scripts/swiftshader-check.sh            (after cargo build --release; .ci/run calls it)
set -euo pipefail
cd "$(dirname "$0")/.."
icd=/usr/lib/chromium/vk_swiftshader_icd.json
[[ -f $icd ]] || {
  echo "error: no SwiftShader Vulkan driver at $icd: apt-get install -y chromium-headless-shell" >&2
  exit 1
}
export VK_ICD_FILENAMES=$icd ADARESNET_BACKEND=vulkan XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
bin=target/release/adaresnet
work=$(mktemp -d -t adaresnet-swiftshader-XXXXXX)
trap 'rm -rf "$work"' EXIT
export ADARESNET_CACHE_DIR=$work/cache

# The adapter in force must be SwiftShader, not a fallback to another driver.
"$bin" devices | tee "$work/devices.txt" | grep -q "default choice: SwiftShader" || {
  cat "$work/devices.txt"
  echo "error: the adapter in force is not SwiftShader" >&2
  exit 1
}
t0=$SECONDS
cargo test --release --quiet --test ops_conv2d --test ops_gemm --test ops_batchnorm \
  --test ops_linear --test ops_loss --test ops_optim --test ops_pool --test ops_residual
echo "swiftshader: op sweep ok ($((SECONDS - t0)) s)"
t0=$SECONDS
"$bin" check-grads --batch 3 --input 3x9x9 >"$work/ops.txt" || { cat "$work/ops.txt"; exit 1; }
"$bin" check-grads --model resnet8 --batch 4 --input 3x16x16 >"$work/resnet8.txt" ||
  { cat "$work/resnet8.txt"; exit 1; }
tail -qn 1 "$work/ops.txt" "$work/resnet8.txt"
echo "swiftshader: check-grads ok ($((SECONDS - t0)) s)"
t0=$SECONDS
"$bin" train --model resnet8 --train-limit 200 --test-limit 100 --epochs 1 --batch 32 \
  --checkpoint-every 3 --out "$work/run" 2>&1 | tail -3
[[ -f $work/run/checkpoint.safetensors ]] || { echo "error: no checkpoint written" >&2; exit 1; }
echo "swiftshader: train ok ($((SECONDS - t0)) s)"
