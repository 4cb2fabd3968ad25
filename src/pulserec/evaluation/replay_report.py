"""Markdown table and learning-curve plot for replay results."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pulserec.evaluation.replay import ReplayResult


def write_replay_report(results: Sequence[ReplayResult], directory: Path, bins: int = 10) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    k = results[0].k if results else 10
    base = next((r.hit_rate for r in results if r.mode == "static"), None)
    lines = [f"# Replay (prequential) evaluation @ {k}", "",
             f"| mode | HitRate@{k} | NDCG@{k} | vs static | retrains | evaluated events | seconds |", "|---|---|---|---|---|---|---|"]
    for r in results:
        lift = f"{r.hit_rate / base:.2f}x" if base else "-"
        lines.append(f"| {r.mode} | {r.hit_rate:.4f} | {r.mean_ndcg:.4f} | {lift} | {r.retrains} | {len(r.hits)} | {r.seconds:.1f} |")
    lines += ["", "## Learning curve (hit rate by slice of the replayed stream)", ""]
    for r in results:
        timeline = r.timeline(bins)
        lines.append(f"- {r.mode}: " + ", ".join(f"{v:.3f}" for v in timeline[f"hit@{k}"]))
    paths = [directory / "replay.md"]
    paths[0].write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return paths
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        timeline = r.timeline(bins)
        ax.plot(timeline["slice"] + 1, timeline[f"hit@{k}"], marker="o", label=r.mode)
    ax.set_xlabel(f"slice of the replayed stream (1 = earliest of {bins})")
    ax.set_ylabel(f"HitRate@{k}")
    ax.set_title("Learning online: next-event hit rate over time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png = directory / "replay.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    paths.append(png)
    return paths
