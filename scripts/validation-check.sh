#!/usr/bin/env bash
# Runs the engine under the Khronos Vulkan validation layer (core and synchronization
# validation) and fails on any error or warning it reports: check-grads (every op, and the
# whole resnet8 and paper networks), a short train with a partial last batch and mid-epoch
# checkpoints, and profile. The layer writes its findings to a log file (a layer settings file
# says so); a first run with the best-practices checks on proves that pipe works: they always
# report something (wgpu enables an extension Vulkan 1.1 promoted).
#
#   scripts/validation-check.sh [path/to/adaresnet]     (default: target/release/adaresnet)
#
# Needs Debian's vulkan-validationlayers (.ci/run installs it) and a Vulkan adapter (lavapipe).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/adaresnet}
[[ -x $bin ]] || { echo "error: no $bin: build it with cargo build --release" >&2; exit 1; }
layer=$(ls /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json 2>/dev/null || true)
[[ -n $layer ]] || {
  echo "error: the Khronos validation layer is not installed: apt-get install -y vulkan-validationlayers" >&2
  exit 1
}

work=$(mktemp -d -t adaresnet-validation-XXXXXX)
trap 'rm -rf "$work"' EXIT
export WGPU_VALIDATION=1 ADARESNET_BACKEND=vulkan ADARESNET_CACHE_DIR="$work/cache"
export VK_LAYER_SETTINGS_PATH="$work" XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
# The loader says which layers it inserted: proof that the layer really ran.
export VK_LOADER_DEBUG=layer

# Layer settings for one run: report errors and warnings to $work/$1.layer.txt, with checks $2.
settings() {
  cat >"$work/vk_layer_settings.txt" <<EOF
khronos_validation.report_flags = error,warn
khronos_validation.debug_action = VK_DBG_LAYER_ACTION_LOG_MSG
khronos_validation.log_filename = $work/$1.layer.txt
khronos_validation.enables = $2
EOF
}

failed=0
run() {
  local name=$1
  shift
  local log="$work/$name.log" found="$work/$name.layer.txt"
  local t0=$SECONDS
  settings "$name" VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT
  if ! "$bin" "$@" >"$log" 2>&1; then
    echo "FAIL $name: adaresnet $* exited non-zero"; tail -20 "$log"; failed=1; return
  fi
  if ! grep -q "Insert instance layer.*VK_LAYER_KHRONOS_validation" "$log"; then
    echo "FAIL $name: the validation layer was not loaded"; failed=1; return
  fi
  if [[ -s $found ]]; then
    echo "FAIL $name: validation findings:"; head -40 "$found"; failed=1; return
  fi
  echo "ok   $name ($((SECONDS - t0)) s, no validation errors or warnings)"
}

# The pipe works: best practices always find something to say.
settings control VK_VALIDATION_FEATURE_ENABLE_BEST_PRACTICES_EXT
"$bin" check-grads --batch 1 --input 1x8x8 >/dev/null 2>&1 || true
if ! grep -q "BestPractices" "$work/control.layer.txt" 2>/dev/null; then
  echo "FAIL: the layer's findings do not reach $work/control.layer.txt: this check would see none"
  exit 1
fi
echo "ok   control: the layer's best-practices findings reach its log ($(grep -c "Validation Warning" "$work/control.layer.txt") warnings)"

run check-grads-ops check-grads --batch 3 --input 3x9x9
run check-grads-resnet8 check-grads --model resnet8 --batch 3 --input 3x12x12
run check-grads-paper check-grads --model paper --batch 2 --input 1x28x28
# 70 images at batch 32: two full batches and a partial one of 6; a checkpoint every 2 steps.
run train train --model resnet8 --train-limit 70 --test-limit 20 --epochs 1 --batch 32 \
  --checkpoint-every 2 --out "$work/run"
run profile profile --model resnet8 --batch 4 --input 1x16x16 --steps 2 --top 5
exit $failed
