#!/usr/bin/env python3
"""adaresnet against Burn on the same adapter, side by side in one alternating run.

usage: scripts/vs_burn.py BURN_BENCH_BINARY [ROUNDS] [--batch N] [--adaresnet BIN]

Alternates, ROUNDS times (default 2), `adaresnet bench --json` for resnet8 and paper at
3x32x32 with Burn's `--variant small` and `--variant paper` (burn-bench: the same networks
in Burn 0.22.1 on its wgpu backend, not part of this repository; docs/performance.md describes
it), swapping the order every round so drift in the machine's speed falls on both, and prints
each engine's median training images/s and the ratio. Burn's first run on a machine autotunes
for minutes (cached afterwards): run it once before timing. Figures from another run, day or
machine are not comparable.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

PAIRS = [("resnet8", "small"), ("paper", "paper")]


def adaresnet(bin_, model, batch):
    out = subprocess.run(
        [bin_, "bench", "--models", model, "--dataset", "cifar10", "--batches", str(batch),
         "--json"],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out)["results"][0]["train_images_per_s"]["median"]


def burn(bin_, variant, batch):
    env = dict(os.environ, XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
    out = subprocess.run(
        [bin_, "--backend", "wgpu", "--variant", variant, "--mode", "train", "--batch",
         str(batch), "--warmup", "2", "--steps", "6"],
        check=True, capture_output=True, text=True, env=env).stdout
    m = re.search(r"images_per_s=([0-9.]+)", out)
    if not m:
        sys.exit(f"error: no RESULT line from burn-bench --variant {variant}:\n{out}")
    return float(m.group(1))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("burn")
    p.add_argument("rounds", nargs="?", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--adaresnet", default="target/release/adaresnet")
    a = p.parse_args()
    if a.rounds < 1:
        sys.exit("error: ROUNDS must be at least 1")
    figures = {(m, e): [] for m, _ in PAIRS for e in ("adaresnet", "burn")}
    for r in range(a.rounds):
        for model, variant in PAIRS:
            runs = [("adaresnet", lambda: adaresnet(a.adaresnet, model, a.batch)),
                    ("burn", lambda: burn(a.burn, variant, a.batch))]
            if r % 2:
                runs.reverse()
            for engine, f in runs:
                v = f()
                figures[(model, engine)].append(v)
                print(f"round {r + 1}: {model:<8} {engine:<9} {v:8.1f} img/s", file=sys.stderr)
    print(f"training images/s, batch {a.batch}, 3x32x32, median of {a.rounds} alternating rounds")
    print(f"{'network':<22} {'adaresnet':>10} {'burn':>10} {'ratio':>7}")
    for model, variant in PAIRS:
        ours = statistics.median(figures[(model, "adaresnet")])
        theirs = statistics.median(figures[(model, "burn")])
        print(f"{model + ' / ' + variant:<22} {ours:>10.1f} {theirs:>10.1f} {ours / theirs:>6.2f}x")


if __name__ == "__main__":
    main()
