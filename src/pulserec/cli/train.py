"""`pulserec train`: fit one model on the stored events (or MovieLens) and save it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from pulserec.cli.common import AppName, settings_for
from pulserec.evaluation.data import load_training_data
from pulserec.models.persist import SUFFIX, save_model
from pulserec.models.registry import ONLINE_MODELS, TRAINABLE, build_model
from pulserec.recommend.saved_models import model_path, saved_params


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
    model: str = typer.Option("auto", "--model", "-m",
                              help=f"one of: {', '.join(sorted(TRAINABLE))} (default auto: the self-chosen default)"),
    out: Path | None = typer.Option(None, "--out", "-o",
                                    help=f"where to save the fitted model (default: <data-dir>/models/MODEL{SUFFIX}, which `pulserec serve` loads)"),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="engine data directory (SQLite store)"),
    movielens: Path | None = typer.Option(None, "--movielens", help="train on a MovieLens directory instead"),
    param: list[str] | None = typer.Option(None, "--param", "-p", help="model parameter key=value (repeatable)"),
    engine: str = typer.Option("local", "--engine", help="local (in-process) or spark (als, item_knn_bm25)"),
    spark_master: str | None = typer.Option(None, "--spark-master",
                                            help="with --engine spark: local[N] or spark://host:7077 (default $PULSEREC_SPARK_MASTER or local[2])"),
    spark_conf: list[str] | None = typer.Option(None, "--spark-conf", help="with --engine spark: extra Spark setting key=value (repeatable)"),
    events: str | None = typer.Option(None, "--events", help="with --engine spark: an event export (.parquet/.csv file or directory; hdfs:// or s3a:// paths too)"),
    app: AppName = None,
    staging_dir: Path | None = typer.Option(None, "--staging-dir",
                                            help="with --engine spark and --data-dir/--movielens: write the log as Parquet here (shared storage on a cluster; default a local temp dir)"),
) -> None:
    """Train MODEL and save it (served as ?strategy=MODEL after the next `pulserec serve`).

    Without --model it trains `auto`: the blend chosen on a validation split carved from the
    log, served as the default. Training a model that the saved `auto` blends (als, ease, ...)
    makes `auto` choose again on the same log (setting auto_reselect).

    Examples:
      pulserec train --data-dir shop-data
      pulserec train --model als --data-dir shop-data
      pulserec train --model bpr --movielens ../shared/data/ml-latest-small --out bpr.model -p factors=128
      pulserec train --model ranker --data-dir shop-data -p sources=item_knn,ease -p rounds=100
      pulserec train --engine spark --model als --events events.parquet --out als.model --spark-master spark://host:7077

    The parameters are saved with the model: a background retrain (`serve --retrain`,
    `POST /models/MODEL/train`) uses them again.
    """
    if engine not in ("local", "spark"):
        raise typer.BadParameter("--engine must be local or spark")
    if engine == "local" and (events is not None or spark_master or spark_conf or staging_dir is not None):
        raise typer.BadParameter("--events, --spark-master, --spark-conf and --staging-dir need --engine spark")
    if model not in TRAINABLE:
        hint = " (it follows the online state and needs no training)" if model in ONLINE_MODELS else ""
        raise typer.BadParameter(f"unknown model {model!r}{hint}; choose one of {', '.join(sorted(TRAINABLE))}")
    if out is None:
        if movielens is not None or (events is not None and data_dir is None):
            raise typer.BadParameter("--out is required with --movielens or --events (without --data-dir)")
        out = settings_for(data_dir, app).data_dir / "models" / f"{model}{SUFFIX}"
    if app is not None and (movielens is not None or events is not None):
        raise typer.BadParameter("--app trains on the app's store, not on --movielens or --events")
    app_of = settings_for(data_dir, app) if app is not None else None  # the app's own directory and settings
    params = parse_params(param)
    if engine == "spark":
        source = app_of.data_dir if app_of is not None else data_dir
        return train_spark(model, out, source, movielens, events, params, spark_master, spark_conf, staging_dir)
    if model == "ranker":
        return train_ranker_cli(out, data_dir, movielens, params, app)
    from pulserec.recommend.training import fit_model

    watermark = stored_watermark(app_of.data_dir if app_of is not None else data_dir) if movielens is None else None
    data, catalog, settings = load_training_data(data_dir, movielens, app_of)
    if model == "auto":  # as `serve` would choose it: auto_validation, auto_candidates; -p overrides
        from pulserec.recommend.auto_default import first_params

        params = {**first_params(settings), **params}
    try:
        recommender, info = fit_model(model, params, data, catalog, settings, watermark)
    except (TypeError, ValueError) as exc:  # a parameter the model does not take, or a bad value
        raise typer.BadParameter(f"{model}: {exc}") from None
    save_model(recommender, out, info)
    typer.echo(f"{model}: {len(data)} events, {data.n_users} users, {data.n_items} items, "
               f"trained in {info['train_seconds']:.2f}s -> {out}")
    if model == "auto":
        typer.echo(chosen_line(recommender.choice()))
    if movielens is None and out == model_path(settings.data_dir, model):
        reselect(model, data, catalog, settings, watermark)


def chosen_line(choice: dict[str, Any]) -> str:
    """What `auto` chose, in one line: the parts each history bucket weighs and, with a latency
    budget, what they were priced at and what was left untrained."""
    buckets = choice["history_buckets"]
    parts = "; ".join(f"{bucket}: " + (", ".join(f"{name} {weights[k]:g}" for name, weights in choice["weights"].items()
                                                   if weights[k] > 0) or "nothing")
                      for k, bucket in enumerate(buckets))
    latency = choice.get("latency")
    if not latency:
        return f"auto chose {parts}"
    p50, p99 = latency["blend_ms"]
    untrained = f"; not trained (over the budget alone): {', '.join(latency['not_trained'])}" if latency["not_trained"] else ""
    overhead = latency.get("request_overhead_ms")
    besides = f" + the request's own work {overhead[0]:.2f} / {overhead[1]:.2f}" if overhead else ""
    served = latency.get("served_ms")
    if served:  # verified: the chosen blend served whole (models/latency_budget.py verified_choice)
        besides += (f"; served whole p50 {served[0]:.2f} / p99 {served[1]:.2f} after "
                    f"{len(latency['verify_rounds'])} search(es)")
    return (f"auto chose {parts} (its parts priced p50 {p50:.2f} / p99 {p99:.2f} ms a request{besides}, "
            f"budget {latency['budget_ms'][0]:g} / {latency['budget_ms'][1]:g}{untrained})")


def reselect(trained: str, data: Any, catalog: Any, settings: Any, watermark: int | None) -> None:
    """The `auto` saved in the data dir blends `trained`: it chooses again on the same log."""
    from pulserec.recommend.auto_default import AUTO, blended_names
    from pulserec.recommend.training import fit_model

    params = saved_params(settings.data_dir, AUTO)
    if trained == AUTO or params is None or not settings.auto_reselect:
        return
    try:
        blended = blended_names(build_model(AUTO, **params))
    except (TypeError, ValueError) as exc:  # a file of another version: say so, keep it
        typer.echo(f"{AUTO}: not chosen again (its saved parameters do not build: {exc})")
        return
    if trained not in blended:
        return
    auto, info = fit_model(AUTO, params, data, catalog, settings, watermark)
    target = model_path(settings.data_dir, AUTO)
    save_model(auto, target, info)
    typer.echo(f"{AUTO}: the default chosen again after {trained} in {info['train_seconds']:.2f}s -> {target}")


def stored_watermark(data_dir: Path | None) -> int | None:
    """The store's last `seq` before its events are read: the model holds at least those."""
    from pulserec.config import Settings
    from pulserec.store import SQLiteStore

    db = Settings.load(data_dir).db_path
    if not db.is_file():
        return None
    store = SQLiteStore(db)
    try:
        return store.max_seq()
    finally:
        store.close()


def train_ranker_cli(out: Path, data_dir: Path | None, movielens: Path | None, params: dict[str, Any],
                     app: str | None = None) -> None:
    """The ranker replays the stored log through the online state: it needs the data dir's engine
    (its sources are the strategies that engine serves, models saved under models/ included)."""
    if movielens is not None:
        raise typer.BadParameter("the ranker trains on a data dir's store (--data-dir), not --movielens")
    from pulserec.cli.common import open_engine

    engine = open_engine(data_dir, app)
    try:
        line = engine.training.ranker.train_saved(params, target=out)
    except (TypeError, ValueError) as exc:
        raise typer.BadParameter(f"ranker: {exc}") from None
    finally:
        engine.close()
    typer.echo(line)


def train_spark(model: str, out: Path, data_dir: Path | None, movielens: Path | None, events: str | None,
                params: dict[str, Any], master: str | None, conf: list[str] | None, staging_dir: Path | None) -> None:
    """The --engine spark path (pyspark is imported only here)."""
    try:
        from pulserec.distributed.session import SparkConfig, parse_conf
        from pulserec.distributed.train import SPARK_MODELS, train_with_spark
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise typer.BadParameter(f"--engine spark needs pyspark (pip install 'pulserec[spark]'): {exc}") from None
    if model not in SPARK_MODELS:
        raise typer.BadParameter(f"--engine spark trains {', '.join(SPARK_MODELS)}, not {model!r}")
    try:
        config = SparkConfig.from_env(master=master, conf=parse_conf(conf))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    result = train_with_spark(model, params, events=events, data_dir=data_dir, movielens=movielens, config=config,
                              staging_dir=staging_dir)
    save_model(result.model, out, {"trained_at": time.time(), "train_seconds": round(result.train_seconds, 3),
                                   "engine": f"spark {config.master}", "params": result.model.saved_params()})
    data = result.data
    typer.echo(f"{model} (spark {config.master}): {data.n_events} events, {data.n_users} users, {data.n_items} items, "
               f"prepared in {result.prepare_seconds:.2f}s, trained in {result.train_seconds:.2f}s -> {out}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
