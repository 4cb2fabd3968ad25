"""`pulserec serve`: the HTTP API."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from pulserec.cli.common import DataDir, StateUrl, StreamUrl, console, open_engine, settings_for
from pulserec.config import Settings


def warn_if_empty(data_dir: Path, events: int, items: int | None = None) -> None:
    """An empty data dir serves `"items": []` to everyone: say so (a mistyped --data-dir, too)."""
    if events == 0 and not items:
        console.print(f"[yellow]warning:[/] {data_dir.resolve()} holds no events and no items, so every list will be "
                      "empty: send events and PUT items, or run `pulserec import --items ... --events ...` "
                      "(`pulserec demo` shows it all)")


def choose_in_background(settings: Settings) -> None:
    """`serve --workers`: the parent trains the first `auto` into models/ (a daemon thread: a stop
    abandons it, and the file is written atomically); every worker's model watcher installs it."""
    from pulserec.recommend.auto_default import train_first_choice

    def work() -> None:
        try:
            console.print(train_first_choice(settings))
        except Exception as exc:  # noqa: BLE001 - serving goes on with the built-in default
            console.print(f"[yellow]warning:[/] choosing the default failed: {type(exc).__name__}: {exc}")

    console.print("choosing the default on validation in the background (auto, saved to models/ for the workers)")
    threading.Thread(target=work, name="pulserec-first-choice", daemon=True).start()


def retrain_names(retrain: str) -> list[str]:
    """`--retrain`'s comma-separated models, each one that can be trained (else a usage error)."""
    from pulserec.models.registry import TRAINABLE

    names = [n.strip() for n in retrain.split(",") if n.strip()]
    unknown = [n for n in names if n not in TRAINABLE]
    if unknown:
        raise typer.BadParameter(f"--retrain: cannot train {', '.join(unknown)}; choose from {', '.join(sorted(TRAINABLE))}")
    return names


def serve_workers(settings: Settings, data_dir: Path | None, overrides: dict[str, Any], host: str, port: int,
                  workers: int, log_level: str) -> None:
    """`serve --workers N`: the data dir prepared (and a shared state loaded) once, then N worker
    processes on one port."""
    from pulserec.recommend.auto_default import saved_first_choice_due
    from pulserec.serving.workers import prepare_data_dir, run_workers

    if settings.state_url:  # load the shared state once; the workers then attach to it
        open_engine(data_dir, **overrides).close()
    stored = prepare_data_dir(settings)
    warn_if_empty(settings.data_dir, stored)
    if saved_first_choice_due(settings, stored):
        choose_in_background(settings)
    console.print(f"serving {stored:,} events with {workers} workers on http://{host}:{port} (docs: /docs)")
    run_workers(settings, host, port, workers, log_level)


def serve_in_process(settings: Settings, data_dir: Path | None, overrides: dict[str, Any], host: str, port: int,
                     log_level: str, names: list[str], retrain_interval: float, retrain_every_events: int) -> None:
    """One process: the engine, the first `auto` job when one is due, the retrain scheduler when
    asked for, and uvicorn until SIGTERM/SIGINT."""
    from pulserec.recommend.auto_default import describe
    from pulserec.recommend.training import RetrainScheduler
    from pulserec.serving.app import create_app
    from pulserec.serving.malloc import limit_malloc_arenas
    from pulserec.serving.server import run_foreground

    limit_malloc_arenas()  # before the engine's and the server's threads
    engine = open_engine(data_dir, **overrides)
    stats = engine.stats()
    warn_if_empty(settings.data_dir, stats["events_stored"], stats["items"])
    choosing = engine.training.choose_default()
    if choosing is not None:
        console.print(f"{describe(choosing, settings)}; the built-in default (item-kNN + trending) serves until it is "
                      "installed (GET /models: default_choice, GET /jobs)")
    scheduler = None
    if retrain_interval > 0 or retrain_every_events > 0:
        applied = lambda: engine.read(lambda state: state.applied)  # noqa: E731 - the scheduler's event count
        scheduler = RetrainScheduler(engine.training.train_in_turn, applied, names, retrain_interval, retrain_every_events).start()
        console.print(f"background retrain of {', '.join(names)} every "
                      + " or ".join(x for x in (f"{retrain_interval:g}s" if retrain_interval else "",
                                                 f"{retrain_every_events:,} events" if retrain_every_events else "") if x))
    base = f"http://{host}:{port}"
    console.print(f"serving {stats['events_applied']:,} events on {base}\n"
                  f"  dashboard: {base}/dashboard   docs: {base}/docs   metrics: {base}/metrics")
    run_foreground(create_app(engine), engine, host, port, log_level, on_stop=scheduler.stop if scheduler else None)
    console.print("stopped cleanly (engine closed, WAL checkpointed into pulserec.db)")


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
        log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
        retrain: Annotated[str, typer.Option(help="Models to retrain in the background (comma-separated), each with the "
                                                  "parameters it was last trained with (auto: the self-chosen "
                                                  "default, its choice re-made on the newest log).")] = "auto",
        retrain_interval: Annotated[float, typer.Option(help="Retrain every this many seconds (0: off).", min=0)] = 0.0,
        retrain_every_events: Annotated[int, typer.Option(help="Retrain after this many new events (0: off).", min=0)] = 0,
        workers: Annotated[int, typer.Option(help="Worker processes: they share a Redis state (--state) or "
                                                  "each follows the shared SQLite log.", min=1, max=64)] = 1,
        accept_data_loss: Annotated[bool, typer.Option(
            "--accept-data-loss", help="Start although the store holds fewer events than it once committed "
                                       "(its -wal file lost or truncated, an older or empty pulserec.db).")] = False,
        data_dir: DataDir = None,
        state: StateUrl = None,
        stream: StreamUrl = None,
    ) -> None:
        """Serve the HTTP API, the dashboard (/dashboard), metrics (/metrics) and docs (/docs).

        Examples:
          pulserec serve --port 8000 --data-dir ./shop-data
          pulserec serve --retrain als,content --retrain-every-events 50000
          pulserec serve --workers 2 --data-dir ./shop-data
          pulserec serve --workers 4 --state redis://127.0.0.1:6379/0

        The data dir is the `default` app; apps created with PUT /apps/NAME live in
        DATA_DIR/apps/NAME/ (their own store, models, snapshots and app.json) and are served
        under /apps/NAME/... (see docs/architecture.md, "Apps").
        """
        from pulserec.serving.auth import exposure_warning

        overrides = {"state_url": state, "stream_url": stream, "accept_data_loss": accept_data_loss or None}
        settings = settings_for(data_dir, **overrides)
        warning = exposure_warning(host, settings)
        if warning:
            console.print(f"[yellow]warning:[/] {warning}")
        if workers > 1:
            serve_workers(settings, data_dir, overrides, host, port, workers, log_level)
            return
        names = retrain_names(retrain)
        serve_in_process(settings, data_dir, overrides, host, port, log_level, names, retrain_interval, retrain_every_events)

    @app.command()
    def stats(data_dir: DataDir = None) -> None:
        """Print store and online-state statistics.

        Example: pulserec stats --data-dir ./shop-data
        """
        import json

        engine = open_engine(data_dir)
        console.print_json(json.dumps(engine.stats()))
        engine.close()
