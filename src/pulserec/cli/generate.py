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
        users: Annotated[int, typer.Option(min=1, max=1_000_000)] = 300,
        items: Annotated[int, typer.Option(min=1, max=1_000_000)] = 400,
        events: Annotated[int, typer.Option(min=1, max=50_000_000)] = 20_000,
        seed: Annotated[int, typer.Option()] = 7,
        fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    ) -> None:
        """Generate a synthetic shop (items, users, events with context) as CSV or Parquet.

        Example: pulserec generate --out sample --events 100000 --format parquet
        """
        import time

        from pulserec.ingest.synthetic import generate as make, write

        if fmt not in ("csv", "parquet"):
            raise typer.BadParameter("--format must be csv or parquet")
        data = make(n_users=users, n_items=items, n_events=events, seed=seed, end_ts=time.time() - 3600)
        for name, path in write(data, out, fmt).items():
            console.print(f"{name}: {path}")
