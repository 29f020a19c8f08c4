#!/usr/bin/env python3
"""Ratios of `adaresnet bench --json` figures between two builds.

Usage: bench_ratio.py NAME_A NAME_B A1.json [A2.json ...] -- B1.json [B2.json ...]
Each figure is the median over rounds of each run's median; the ratio is B / A (above 1:
B is faster for throughput and GFLOP/s, bigger for memory).
"""
import json
import statistics
import sys

FIGURES = ["train_images_per_s", "infer_images_per_s", "train_gflops", "infer_gflops"]
SIZES = ["planned_bytes", "naive_bytes"]


def load(paths):
    runs = [json.load(open(p)) for p in paths]
    figures = {}
    for run in runs:
        for r in run["results"]:
            key = (r["model"], r["residual"], r["batch"], "x".join(map(str, r["input"])))
            row = figures.setdefault(key, {f: [] for f in FIGURES + SIZES})
            for f in FIGURES:
                row[f].append(r[f]["median"])
            for f in SIZES:
                row[f].append(r[f])
    return runs[0]["adapter"], {k: {f: statistics.median(v) for f, v in row.items()}
                                for k, row in figures.items()}


def main(argv):
    if len(argv) < 5 or "--" not in argv:
        sys.exit(__doc__)
    name_a, name_b, rest = argv[1], argv[2], argv[3:]
    cut = rest.index("--")
    adapter_a, a = load(rest[:cut])
    adapter_b, b = load(rest[cut + 1:])
    if adapter_a != adapter_b:
        print(f"warning: the two builds ran on different adapters: {adapter_a} vs {adapter_b}")
    print(f"adapter: {adapter_a['name']} ({adapter_a['backend']}, {adapter_a['driver']} "
          f"{adapter_a['driver_info']}); {len(rest[:cut])} rounds each, ratio = B / A")
    print(f"A = {name_a}\nB = {name_b}")
    print(f"{'model':<9} {'residual':<12} {'batch':>5} {'input':>8} {'figure':<20} "
          f"{'A':>12} {'B':>12} {'B/A':>7}")
    for key in sorted(set(a) & set(b)):
        for f in FIGURES + SIZES:
            va, vb = a[key][f], b[key][f]
            ratio = vb / va if va else float("nan")
            print(f"{key[0]:<9} {key[1]:<12} {key[2]:>5} {key[3]:>8} {f:<20} "
                  f"{va:>12.4g} {vb:>12.4g} {ratio:>7.3f}")
    for key in sorted(set(a) ^ set(b)):
        print(f"only in {'A' if key in a else 'B'}: {key}")


if __name__ == "__main__":
    main(sys.argv)
