"""`pulserec updater` (apply the event stream to the Redis state) and `pulserec rebuild-state`."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import threading
from typing import Annotated

import typer

from pulserec.cli.common import DataDir, StateUrl, StreamUrl, console, progress_bar, settings_for


def _check_name(value: str | None) -> str | None:
    """Group and consumer names: 1-200 printable ASCII characters, no spaces."""
    if value is not None and not (0 < len(value) <= 200 and value.isascii() and value.isprintable() and " " not in value):
        raise typer.BadParameter("--group and --consumer take 1-200 printable ASCII characters without spaces")
    return value


def register(app: typer.Typer) -> None:
    @app.command()
    def updater(
        state: StateUrl = None,
        stream: StreamUrl = None,
        group: Annotated[str, typer.Option(help="Consumer group (all updaters of one state share it).",
                                           callback=_check_name)] = "pulserec-updater",
        consumer: Annotated[str | None, typer.Option(help="This consumer's name (default: host-pid).",
                                                     callback=_check_name)] = None,
        min_idle_ms: Annotated[int, typer.Option(help="Redis: reclaim messages another consumer left unacknowledged "
                                                      "this long.", min=0)] = 30_000,
        session_timeout_ms: Annotated[int, typer.Option(help="Kafka: a member silent this long is dropped and its "
                                                             "partitions go to the others.", min=1000, max=3_600_000)] = 10_000,
        batch: Annotated[int | None, typer.Option(help="Messages read per round, at most [default: 2000].", min=1,
                                                  max=100_000)] = None,
        shard: Annotated[int, typer.Option(help="Redis Streams with stream_shards = N: the shard (0..N-1) this "
                                                "updater applies.", min=0)] = 0,
        data_dir: DataDir = None,
    ) -> None:
        """Apply the event stream (Redis Streams or Kafka) to the shared Redis state, until stopped.

        Examples:
          pulserec updater --state redis://127.0.0.1:6379/0 --stream redis://127.0.0.1:6379/0
          pulserec updater --state redis://127.0.0.1:6379/0 --stream kafka://127.0.0.1:9092
        """
        from pulserec.online.redis.connection import TRANSIENT, StateUnavailable
        from pulserec.online.redis.state import RedisState
        from pulserec.online.streams import make_updater
        from pulserec.online.streams.updater import DEFAULT_BATCH

        settings = settings_for(data_dir, state_url=state, stream_url=stream)
        if not settings.state_url or not settings.stream_url:
            raise typer.BadParameter("the updater needs both --state (redis://) and --stream (redis:// or kafka://)")
        name = consumer or f"{socket.gethostname()}-{os.getpid()}"
        target = RedisState(settings)
        with contextlib.suppress(StateUnavailable, *TRANSIENT):  # down or being rebuilt: the first batch loads it
            target.catalog.synced()  # the catalogue mirror, loaded once now rather than inside the first batch
        # What is loaded by now (modules, the catalogue mirror: ~200k objects) lives as long as the
        # process: kept out of the cyclic collector's full passes, which otherwise cost ~8 us an
        # event at batches of 2,000 (measured with gc.callbacks on MovieLens).
        gc.freeze()
        try:
            worker = make_updater(settings, target, group, name, batch=batch or DEFAULT_BATCH, min_idle_ms=min_idle_ms,
                                  session_timeout_ms=session_timeout_ms, shard=shard)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        console.print(f"updater {name} consuming {worker.description} (group {group}); Ctrl-C to stop")
        try:
            worker.run(stop)
        finally:
            worker.close()
        console.print(f"stopped: {worker.stats.summary()}")

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
