"""`pulserec updater` (apply the event stream to the Redis state) and `pulserec rebuild-state`."""

from __future__ import annotations

import os
import signal
import socket
import threading
from typing import Annotated

import typer

from pulserec.cli.common import DataDir, StateUrl, StreamUrl, console, progress_bar, settings_for


def register(app: typer.Typer) -> None:
    @app.command()
    def updater(
        state: StateUrl = None,
        stream: StreamUrl = None,
        group: Annotated[str, typer.Option(help="Consumer group (all updaters of one state share it).")] = "pulserec-updater",
        consumer: Annotated[str | None, typer.Option(help="This consumer's name (default: host-pid).")] = None,
        min_idle_ms: Annotated[int, typer.Option(help="Reclaim messages another consumer left unacknowledged this long.",
                                                 min=0)] = 30_000,
        batch: Annotated[int, typer.Option(help="Messages read per round.", min=1)] = 500,
        data_dir: DataDir = None,
    ) -> None:
        """Apply events published to the Redis stream to the shared Redis state, until stopped.

        Example: pulserec updater --state redis://127.0.0.1:6379/0 --stream redis://127.0.0.1:6379/0
        """
        from pulserec.online.redis.state import RedisState
        from pulserec.online.stream import StreamUpdater, stream_key

        settings = settings_for(data_dir, state_url=state, stream_url=stream)
        if not settings.state_url or not settings.stream_url:
            raise typer.BadParameter("the updater needs both --state and --stream (redis:// URLs)")
        name = consumer or f"{socket.gethostname()}-{os.getpid()}"
        worker = StreamUpdater(RedisState(settings), settings.stream_url, stream_key(settings), group, name,
                               min_idle_ms=min_idle_ms, batch=batch)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        console.print(f"updater {name} consuming {stream_key(settings)} (group {group}); Ctrl-C to stop")
        worker.run(stop)
        stats = worker.stats
        console.print(f"stopped: {stats.applied:,} applied, {stats.duplicates:,} duplicates, {stats.reclaimed:,} reclaimed")
        worker.close()

    @app.command("rebuild-state")
    def rebuild_state(state: StateUrl = None, data_dir: DataDir = None) -> None:
        """Recovery: drop the Redis state and rebuild it from the event log.

        Example: pulserec rebuild-state --state redis://127.0.0.1:6379/0 --data-dir ./shop-data
        """
        from pulserec.online.redis.state import RedisState
        from pulserec.store import SQLiteStore

        settings = settings_for(data_dir, state_url=state)
        if not settings.state_url:
            raise typer.BadParameter("rebuild-state needs --state redis://...")
        target = RedisState(settings)
        store = SQLiteStore(settings.db_path, settings.sqlite_synchronous)
        try:
            with progress_bar("rebuilding Redis state", store.event_count()) as progress:
                task = progress.task_ids[0]
                target.rebuild(store, lambda n: progress.advance(task, n))
            console.print(f"rebuilt: {target.applied:,} events applied to {settings.state_url} ({settings.state_namespace})")
        finally:
            store.close()
            target.close()
