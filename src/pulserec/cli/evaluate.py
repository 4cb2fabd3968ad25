"""`pulserec evaluate`: offline evaluation of several models on one split, with a report."""

from __future__ import annotations

from pathlib import Path

import typer

from pulserec.cli.common import AppName, settings_for
from pulserec.config import Settings
from pulserec.evaluation.data import load_training_data
from pulserec.evaluation.evaluate import EvalResult
from pulserec.evaluation.evaluate import evaluate as evaluate_model
from pulserec.evaluation.report import print_table, write_report
from pulserec.evaluation.bootstrap import mean_interval
from pulserec.evaluation.split import METHODS, MIN_TEST_USERS, Split, make_split
from pulserec.models.registry import MODELS, build_model
from pulserec.online.catalog import Catalog
from pulserec.recommend.training import apply_torch_threads


def evaluate(
    models: str = typer.Option("popular,item_knn_bm25,als", "--models", help="comma-separated model names"),
    split: str = typer.Option("leave-last-out", "--split", help=f"one of: {', '.join(METHODS)} (leave-last-out: "
                              "every user with two or more events is a test user)"),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="engine data directory (SQLite store)"),
    movielens: Path | None = typer.Option(None, "--movielens", help="evaluate on a MovieLens directory"),
    report: Path | None = typer.Option(None, "--report", help="directory for report.md/report.html/PNGs"),
    test_fraction: float = typer.Option(0.2, "--test-fraction", help="time/random split: share of events held out"),
    app: AppName = None,
) -> None:
    """Fit each model on the training part of SPLIT and print ranking metrics on the test part.

    Example: pulserec evaluate --movielens ../shared/data/ml-latest-small --models als,item_knn,popular --report reports/eval
    """
    names = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        raise typer.BadParameter(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(sorted(MODELS))}")
    if split not in METHODS:
        raise typer.BadParameter(f"--split must be one of {', '.join(METHODS)}")
    app_of = settings_for(data_dir, app) if app is not None else None
    data, catalog, settings = load_training_data(data_dir, movielens, app_of)
    params = {"test_fraction": test_fraction} if split in ("time", "random", "mixed") else {}
    the_split = make_split(data, split, **params)
    if len(the_split.test) == 0:
        typer.echo(f"nothing to evaluate: the split has no held-out events of known users ({the_split.stats})")
        raise typer.Exit(1)
    stats = the_split.stats
    typer.echo(f"split {split}: {stats['train_rows']:,} training events, {stats['test_rows']:,} held out, "
               f"{stats['test_users']:,} test users ({stats['cold_users']:,} cold users dropped, "
               f"{stats['unknown_item_rows']:,} held-out events of items unseen in training count as misses)")
    if stats["test_users"] < MIN_TEST_USERS:
        typer.echo(f"warning: only {stats['test_users']} test users (< {MIN_TEST_USERS}): differences between "
                   "models are mostly noise; see the confidence intervals", err=True)
    results = [measured(name, the_split, catalog, settings) for name in names]
    title = f"split: {split} ({stats['test_users']} test users)"
    print_table(results, title=title)
    for result in results:
        typer.echo(f"{result.model}: NDCG@10 {mean_interval(result.per_user)} (bootstrap over test users)")
    if report is not None:
        md, page = write_report([(title, results, f"Split stats: {the_split.stats}.")], report)
        typer.echo(f"report: {md}, {page}")


def measured(name: str, split: Split, catalog: Catalog, settings: Settings) -> EvalResult:
    """One model fitted on the split's training part and measured as the server would ask it:
    the data dir's query settings (models/query.serving_query), its torch_threads."""
    model = build_model(name)
    apply_torch_threads(settings.torch_threads, model)
    return evaluate_model(model, split, catalog=catalog, settings=settings)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
