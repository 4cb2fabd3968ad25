"""`pulserec train`: fit one model on the stored events (or MovieLens) and save it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from pulserec.evaluation.data import load_training_data
from pulserec.models.registry import MODELS, build_model


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """key=value pairs; values are JSON when they parse (numbers, lists), else strings."""
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


def train(
    model: str = typer.Option(..., "--model", "-m", help=f"one of: {', '.join(sorted(MODELS))}"),
    out: Path | None = typer.Option(None, "--out", "-o",
                                    help="where to save the fitted model (default: <data-dir>/models/MODEL.pkl, which `pulserec serve` loads)"),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="engine data directory (SQLite store)"),
    movielens: Path | None = typer.Option(None, "--movielens", help="train on a MovieLens directory instead"),
    param: list[str] | None = typer.Option(None, "--param", "-p", help="model parameter key=value (repeatable)"),
) -> None:
    """Train MODEL and save it (served as ?strategy=MODEL after the next `pulserec serve`).

    Examples:
      pulserec train --model als --data-dir shop-data
      pulserec train --model bpr --movielens ../shared/data/ml-latest-small --out bpr.pkl -p factors=128
    """
    if out is None:
        if movielens is not None:
            raise typer.BadParameter("--out is required with --movielens")
        from pulserec.config import Settings

        out = Settings.load(data_dir).data_dir / "models" / f"{model}.pkl"
    if model not in MODELS:
        raise typer.BadParameter(f"unknown model {model!r}; choose one of {', '.join(sorted(MODELS))}")
    data, catalog, _ = load_training_data(data_dir, movielens)
    recommender = build_model(model, **parse_params(param))
    start = time.perf_counter()
    recommender.fit(data, catalog)
    seconds = time.perf_counter() - start
    recommender.save(out)
    typer.echo(f"{model}: {len(data)} events, {data.n_users} users, {data.n_items} items, "
               f"trained in {seconds:.2f}s -> {out}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
