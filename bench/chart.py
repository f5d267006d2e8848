#!/usr/bin/env python3
"""Draws the B/A ratios of one bench/run.sh result as a PNG (issue 7).

    bench/chart.py bench/results/<stamp>/runs.tsv [out.png] [title]

Per connection count: requests per proxy CPU-second and p99 latency of B (nginx-rs) over A
(nginx), pair by pair; the bar is the median, the whisker the min-max over the pairs. The dashed
line at 1.0 is parity; the goals of issue 7 are drawn as markers (requests per CPU-second at
least 1.6x at 64 connections and 2.1x at 512; p99 at most 1.0x).
"""
import csv
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

GOALS_EFF = {"64": 1.6, "512": 2.1}


def ratios(path):
    runs = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["rps"] in ("NA", ""):
                continue
            cpu = float(row["cpu_s"])
            eff = float(row["rps"]) / cpu if cpu > 0 else 0.0  # per DURATION, cancels in the ratio
            runs[(row["label"], row["conns"], row["pair"])] = (eff, float(row["p99_ms"]))
    eff, p99 = defaultdict(list), defaultdict(list)
    for (label, conns, pair), (a_eff, a_p99) in runs.items():
        if label != "A" or ("B", conns, pair) not in runs:
            continue
        b_eff, b_p99 = runs[("B", conns, pair)]
        if a_eff > 0:
            eff[conns].append(b_eff / a_eff)
        if a_p99 > 0:
            p99[conns].append(b_p99 / a_p99)
    return eff, p99


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: chart.py runs.tsv [out.png] [title]")
    src = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else src.rsplit("/", 1)[0] + "/ratios.png"
    title = sys.argv[3] if len(sys.argv) > 3 else "nginx-rs / nginx"
    eff, p99 = ratios(src)
    conns = sorted(set(eff) | set(p99), key=int)
    if not conns:
        sys.exit("no complete A/B pairs in " + src)
    fig, ax = plt.subplots(figsize=(7, 4.4))
    width = 0.38
    for i, (name, data, color) in enumerate(
        [("requests per proxy CPU-second", eff, "tab:blue"), ("p99 latency", p99, "tab:orange")]
    ):
        xs, med, lo, hi = [], [], [], []
        for k, c in enumerate(conns):
            v = data.get(c, [])
            if not v:
                continue
            m = statistics.median(v)
            xs.append(k + (i - 0.5) * width)
            med.append(m)
            lo.append(m - min(v))
            hi.append(max(v) - m)
        bars = ax.bar(xs, med, width, yerr=[lo, hi], capsize=4, label=name, color=color)
        ax.bar_label(bars, fmt="%.2f", padding=2, fontsize=8)
    goal_label = "goal, requests per CPU-second"
    for k, c in enumerate(conns):
        if c in GOALS_EFF:
            ax.plot(k - 0.5 * width, GOALS_EFF[c], marker="_", markersize=22, color="navy",
                    linestyle="none", label=goal_label)
            goal_label = None
    ax.axhline(1.0, linestyle="--", color="gray", linewidth=1)
    ax.set_xticks(range(len(conns)), [f"{c} conns" for c in conns])
    ax.set_ylabel("nginx-rs / nginx (median, min-max)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
