"""Markdown tables from benchmarks/before_after.sh's output directory: every round's figure per
tree (old, new = HEAD, lt0 = HEAD with long_term_weight 0) and their median.

    python benchmarks/before_after_table.py /tmp/before-after"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

TREES = ("old", "new", "lt0")


def serving_rows(out: Path, tree: str) -> dict[str, dict[int, float]]:
    """metric -> round -> value, from serving.py's table."""
    rows: dict[str, dict[int, float]] = {}
    for path in sorted(out.glob(f"serving-{tree}-*.txt")):
        round_ = int(path.stem.rsplit("-", 1)[1])
        for line in path.read_text().splitlines():
            match = re.match(r"\| (.+?)\s+\| ([\d,.]+)\s+\|", line)
            if match and match.group(1) != "metric":
                rows.setdefault(match.group(1), {})[round_] = float(match.group(2).replace(",", ""))
    return rows


def load_runs(out: Path, strategy: str, tree: str) -> dict[int, dict]:
    """round -> load.py's JSON result line."""
    runs = {}
    for path in sorted(out.glob(f"load-{strategy}-{tree}-*.txt")):
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                runs[int(path.stem.rsplit("-", 1)[1])] = json.loads(line)
    return runs


def cell(values: dict[int, float]) -> str:
    ordered = [values[k] for k in sorted(values)]
    if not ordered:
        return "-"
    fmt = (lambda x: f"{x:,.0f}") if max(ordered) >= 100 else (lambda x: f"{x:.2f}")
    text = " / ".join(fmt(x) for x in ordered)
    return text + (f" (median {fmt(statistics.median(ordered))})" if len(ordered) > 1 else "")


def main(out: Path) -> None:
    serving = {tree: serving_rows(out, tree) for tree in TREES}
    print("| serving.py (rounds 1/2/3) | old | new | new, long_term_weight 0 |\n|---|---|---|---|")
    for metric in serving["old"] or serving["new"]:
        print(f"| {metric} | " + " | ".join(cell(serving[t].get(metric, {})) for t in TREES) + " |")
    print("\n| load.py, 1 worker, 32 connections (rounds 1/2/3) | old | new | new, long_term_weight 0 |\n|---|---|---|---|")
    for strategy in ("default", "item_knn"):
        runs = {tree: load_runs(out, strategy, tree) for tree in TREES}
        figures = {"req/s": lambda r: r["rps"], "p50 ms": lambda r: r["p50_ms"], "p99 ms": lambda r: r["p99_ms"],
                   "recommend p50 ms": lambda r: r["by_kind"]["recommend"]["p50_ms"],
                   "errors": lambda r: float(sum(r["errors"].values())),
                   "RSS growth %": lambda r: 100.0 * (r["rss_end_mib"] / r["rss_start_mib"] - 1.0)}
        for name, read in figures.items():
            print(f"| {strategy}: {name} | " + " | ".join(cell({k: read(r) for k, r in runs[t].items()}) for t in TREES) + " |")
    starts = {path.stem: path.read_text().split("load ", 1)[1].split()[0] for path in sorted(out.glob("*-*.txt"))}
    print("\n1-minute load averages at the starts:", ", ".join(f"{k} {v}" for k, v in starts.items()))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
