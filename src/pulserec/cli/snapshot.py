"""`pulserec snapshot`: write a snapshot of the online state now (restarts replay only what follows)."""

from __future__ import annotations

import json

import typer

from pulserec.cli.common import DataDir, console, open_engine


def register(app: typer.Typer) -> None:
    @app.command()
    def snapshot(data_dir: DataDir = None) -> None:
        """Write a snapshot of the online state under <data-dir>/snapshots/ and print where.

        A start then loads it and replays only the events stored after it. The server also
        writes them by itself (settings snapshot_every_events / snapshot_every_s, and on shutdown).
        Example: pulserec snapshot --data-dir pulserec-data
        """
        engine = open_engine(data_dir)
        try:
            written = engine.checkpoints.write()
        finally:
            engine.close()
        if written is None:
            raise typer.BadParameter("a bulk import is running in this process; try again when it is done")
        console.print(json.dumps({k: written[k] for k in ("path", "watermark", "applied", "bytes", "write_seconds")}))
