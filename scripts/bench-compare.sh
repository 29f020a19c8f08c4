#!/usr/bin/env bash
# Benchmarks two builds side by side in one alternating run: `adaresnet bench --json` of revision A
# and revision B, alternating A B / B A over the rounds so drift (clocks, heat, other load)
# falls on both, then the per-figure ratios B / A (scripts/bench_ratio.py).
#
# usage: scripts/bench-compare.sh REV_A REV_B [ROUNDS] [-- BENCH_ARGS...]
#   REV: any git revision, or `.` for the working tree as it is (uncommitted changes included)
#   e.g. scripts/bench-compare.sh HEAD~1 . 3 -- --models resnet8 --batches 32
# Both revisions must have `adaresnet bench`. Sources are exported with `git archive` (the
# repository is not modified) and built in the same target dir (CARGO_TARGET_DIR, default the
# repo's target/), so dependencies compile once; the working tree's binary is rebuilt last.
set -euo pipefail

[[ $# -ge 2 ]] || { sed -n '2,13p' "$0" >&2; exit 2; }
repo=$(git rev-parse --show-toplevel)
rev_a=$1 rev_b=$2
shift 2
rounds=3
if [[ $# -gt 0 && $1 != -- ]]; then rounds=$1; shift; fi
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "error: ROUNDS must be a positive integer, got $rounds" >&2; exit 2; }
if [[ $# -gt 0 && $1 == -- ]]; then shift; fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
work=$(mktemp -d "${TMPDIR:-/tmp}/adaresnet-bench-compare.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Builds revision $1 and copies its binary to $work/bin-$2 (the shared target dir's binary is
# overwritten by the next build).
build() {
  local rev=$1 name=$2 src=$repo
  if [[ $rev != . ]]; then
    src=$work/src-$name
    mkdir -p "$src"
    git -C "$repo" archive --format=tar "$rev" | tar -x -C "$src"
  fi
  echo "building $rev ($src)" >&2
  (cd "$src" && cargo build --release --quiet)
  cp "$CARGO_TARGET_DIR/release/adaresnet" "$work/bin-$name"
}

bench_args=("$@")
# Exported revisions first, the working tree last, so target/release/adaresnet ends as the
# working tree's own binary.
[[ $rev_a == . ]] || build "$rev_a" a
[[ $rev_b == . || $rev_b == "$rev_a" ]] || build "$rev_b" b
[[ $rev_a != . ]] || build . a
if [[ $rev_b == "$rev_a" ]]; then
  cp "$work/bin-a" "$work/bin-b"
elif [[ $rev_b == . ]]; then
  build . b
fi
if [[ $rev_a != . && $rev_b != . ]]; then
  (cd "$repo" && cargo build --release --quiet) || echo "note: could not rebuild the working tree" >&2
fi

run() {
  local name=$1 rev=$2 round=$3
  echo "round $round: $rev" >&2
  "$work/bin-$name" bench --json "${bench_args[@]}" >"$work/$name-$round.json" ||
    { echo "error: revision $rev failed to run \`adaresnet bench --json\`" >&2; exit 1; }
}
for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then
    run a "$rev_a" "$r"; run b "$rev_b" "$r"
  else
    run b "$rev_b" "$r"; run a "$rev_a" "$r"
  fi
done

python3 "$(dirname "$0")/bench_ratio.py" "$rev_a" "$rev_b" \
  "$work"/a-*.json -- "$work"/b-*.json
