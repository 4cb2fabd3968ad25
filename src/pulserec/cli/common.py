"""Options and helpers shared by CLI commands."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pulserec.config import Settings
from pulserec.engine import Engine

#: Output that is not a terminal (a pipe, a log, CI) is never wrapped: Rich would wrap it at 80
#: columns and split URLs and paths. Lines print whole (soft wrap); rules and tables get this width.
IS_TERMINAL = sys.stdout.isatty()
PLAIN_WIDTH = 160
#: Width for click's help when not a terminal: wide enough that no help line wraps.
UNWRAPPED = 10_000

console = Console(soft_wrap=not IS_TERMINAL, width=None if IS_TERMINAL else PLAIN_WIDTH)


def help_settings() -> dict[str, int]:
    """click context settings for `--help`: the terminal's width (up to 120) in a terminal, no wrapping elsewhere."""
    if IS_TERMINAL:
        return {"max_content_width": 120}
    return {"terminal_width": UNWRAPPED, "max_content_width": UNWRAPPED}

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", "-d", envvar="PULSEREC_DATA_DIR", help="Where the store and models live.", show_default="pulserec-data"),
]


StateUrl = Annotated[
    str | None,
    typer.Option("--state", envvar="PULSEREC_STATE_URL", show_default="in-memory",
                 help="Keep the online state in Redis (redis://host:port/db) so several processes share it."),
]
StreamUrl = Annotated[
    str | None,
    typer.Option("--stream", envvar="PULSEREC_STREAM_URL", show_default="none",
                 help="Publish accepted events to a stream for `pulserec updater`: Redis Streams (redis://host:port/db) "
                      "or Kafka (kafka://host:port[,host:port][?topic=NAME&partitions=N])."),
]


AppName = Annotated[
    str | None,
    typer.Option("--app", help="Work on this app (tenant) of the data dir: <data-dir>/apps/NAME, with the app's own "
                                "settings (create it with PUT /apps/NAME on a running server).", show_default="default"),
]


def settings_for(data_dir: Path | None, app: str | None = None, **overrides: object) -> Settings:
    """The data dir's settings, or those of its app `app` (runtime/apps.py: its own data dir,
    keys and settings)."""
    settings = Settings.load(data_dir, **overrides)
    if app is None:
        return settings
    from pulserec.runtime.apps import AppError, app_settings  # noqa: PLC0415 - only with --app

    try:
        return app_settings(settings, app)
    except AppError as exc:
        raise typer.BadParameter(exc.message, param_hint="--app") from None


@contextmanager
def progress_bar(description: str, total: int | None = None, *, threaded: bool = True) -> Iterator[Progress]:
    """A progress bar; `threaded=False` draws it only when it advances (`advancing`), without
    rich's refresh thread: a bulk import forks its writer process only while no other thread
    runs (engine/bulk.py), and falls back to a slower writer thread otherwise."""
    columns = [TextColumn("[bold blue]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if total:
        columns.append(TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False, auto_refresh=threaded) as progress:
        progress.add_task(description, total=total)
        yield progress


def advancing(progress: Progress) -> Callable[[int], None]:
    """A callback that advances the bar by n and redraws it."""
    return lambda n: progress.update(progress.task_ids[0], advance=n, refresh=True)


def open_engine(data_dir: Path | None, app: str | None = None, **overrides: object) -> Engine:
    """Open the engine (of `app`), showing a progress bar while the online state is rebuilt from the log."""
    settings = settings_for(data_dir, app, **overrides)
    from pulserec.store import SQLiteStore

    store = SQLiteStore(settings.db_path, settings.sqlite_synchronous, settings.accept_data_loss)
    total = store.event_count()
    if total < 50_000:
        return Engine(settings, store)
    with progress_bar("rebuilding online state", total) as progress:
        task = progress.task_ids[0]
        return Engine(settings, store, progress=lambda n: progress.advance(task, n))
