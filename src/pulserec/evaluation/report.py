"""Render evaluation results: a rich table in the terminal, Markdown, and HTML with PNG plots."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

from pulserec.evaluation.evaluate import EvalResult
from pulserec.evaluation.metrics import KS

TABLE_METRICS: tuple[str, ...] = (
    "ndcg@10", "recall@10", "precision@10", "mrr@10", "hitrate@10", "ndcg@20", "recall@20",
    "coverage@10", "novelty@10",
)


def _fmt(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def rows(results: Sequence[EvalResult], metrics: Sequence[str] = TABLE_METRICS) -> list[list[str]]:
    out = []
    for r in results:
        out.append([r.model, *(_fmt(r.metrics.get(m, float("nan"))) for m in metrics),
                    _fmt(r.fit_seconds), _fmt(r.score_seconds)])
    return out


def header(metrics: Sequence[str] = TABLE_METRICS) -> list[str]:
    return ["model", *metrics, "fit s", "score s"]


def print_table(results: Sequence[EvalResult], title: str = "", metrics: Sequence[str] = TABLE_METRICS) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None)
    for i, name in enumerate(header(metrics)):
        table.add_column(name, justify="left" if i == 0 else "right")
    best = {m: max((r.metrics.get(m, float("-inf")) for r in results), default=None) for m in metrics}
    for r, row in zip(results, rows(results, metrics)):
        cells = [row[0]] + [
            f"[bold]{cell}[/bold]" if r.metrics.get(m) == best[m] else cell for m, cell in zip(metrics, row[1:])
        ] + row[1 + len(metrics):]
        table.add_row(*cells)
    console = Console()
    console.width = max(console.width, 170)  # keep every column readable when piped
    console.print(table)


def markdown_table(results: Sequence[EvalResult], metrics: Sequence[str] = TABLE_METRICS) -> str:
    head = header(metrics)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results, metrics)]
    return "\n".join(lines)


def plot(results: Sequence[EvalResult], directory: Path, prefix: str = "") -> list[Path]:
    """PNG plots: NDCG@10 by model (bar) and NDCG/Recall by K (lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    names = [r.model for r in results]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.barh(names, [r.metrics.get("ndcg@10", 0.0) for r in results], color="#4c72b0")
    ax.set_xlabel("NDCG@10")
    ax.invert_yaxis()
    fig.tight_layout()
    paths.append(directory / f"{prefix}ndcg10_by_model.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("ndcg", "recall")):
        for r in results:
            ax.plot(KS, [r.metrics.get(f"{metric}@{k}", float("nan")) for k in KS], marker="o", label=r.model)
        ax.set_xlabel("K")
        ax.set_ylabel(f"{metric}@K")
        ax.set_xticks(KS)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    paths.append(directory / f"{prefix}metrics_by_k.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def write_report(
    sections: Sequence[tuple[str, Sequence[EvalResult], str]], directory: str | Path, title: str = "Evaluation"
) -> tuple[Path, Path]:
    """Write report.md and report.html (with PNG plots) for (heading, results, notes) sections."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    md = [f"# {title}", ""]
    body = [f"<h1>{html.escape(title)}</h1>"]
    for n, (heading, results, notes) in enumerate(sections):
        images = plot(results, directory, prefix=f"{n}_")
        md += [f"## {heading}", "", notes, "", markdown_table(results), ""]
        md += [f"![{p.stem}]({p.name})" for p in images] + [""]
        body.append(f"<h2>{html.escape(heading)}</h2><p>{html.escape(notes)}</p>")
        body.append("<table border=1 cellpadding=4><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header()) + "</tr>")
        body += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows(results)]
        body.append("</table>")
        body += [f'<img src="{p.name}" alt="{p.stem}">' for p in images]
    md_path, html_path = directory / "report.md", directory / "report.html"
    md_path.write_text("\n".join(md))
    html_path.write_text("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title)
                         + "</title></head><body>" + "\n".join(body) + "</body></html>")
    return md_path, html_path
