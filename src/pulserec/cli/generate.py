"""`pulserec generate`: write the synthetic e-commerce sample to files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pulserec.cli.common import console


def register(app: typer.Typer) -> None:
    @app.command()
    def generate(
        out: Annotated[Path, typer.Option(help="Output directory.")] = Path("sample-data"),
        users: Annotated[int, typer.Option(min=1, max=10_000_000)] = 300,
        items: Annotated[int, typer.Option(min=1, max=10_000_000)] = 400,
        events: Annotated[int, typer.Option(min=1, max=100_000_000)] = 20_000,
        days: Annotated[float, typer.Option(min=0.01, max=3650.0, help="Days of history the events span.")] = 30.0,
        seed: Annotated[int, typer.Option()] = 7,
        end_ts: Annotated[float, typer.Option(
            "--end-ts", min=0.0, help="Time of the last event (Unix seconds; default: the start of today, UTC).")] = 0.0,
        fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    ) -> None:
        """Generate a synthetic shop (items, users, events with context) as CSV or Parquet.

        The same seed and --end-ts give the same files. Vectorised: 10M events take seconds.
        Example: pulserec generate --out sample --users 100000 --items 20000 --events 1000000 --format parquet
        """
        import time

        from pulserec.ingest.synthetic import generate_tables, write

        if fmt not in ("csv", "parquet"):
            raise typer.BadParameter("--format must be csv or parquet")
        started = time.perf_counter()
        end = end_ts or (time.time() // 86_400) * 86_400  # a whole day: reruns within a day give the same files
        data = generate_tables(n_users=users, n_items=items, n_events=events, days=days, seed=seed, end_ts=end)
        for name, path in write(data, out, fmt).items():
            console.print(f"{name}: {path}")
        console.print(f"{events:,} events, {users:,} users, {items:,} items in {time.perf_counter() - started:.1f}s")
