"""`pulserec import`: bulk-load events, items and users from CSV/Parquet, or MovieLens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pulserec.cli.common import AppName, DataDir, advancing, console, open_engine, progress_bar


def register(app: typer.Typer) -> None:
    @app.command("import")
    def import_command(
        events: Annotated[Path | None, typer.Option(help="Events file (.csv/.parquet).", exists=True, dir_okay=False)] = None,
        items: Annotated[Path | None, typer.Option(help="Items file (.csv/.parquet).", exists=True, dir_okay=False)] = None,
        users: Annotated[Path | None, typer.Option(help="Users file (.csv/.parquet).", exists=True, dir_okay=False)] = None,
        follows: Annotated[Path | None, typer.Option(help="Social ties (.csv/.parquet: follower, followee, weight).",
                                                     exists=True, dir_okay=False)] = None,
        movielens: Annotated[Path | None, typer.Option(help="A MovieLens directory (ratings.csv, movies.csv, tags.csv).",
                                                        exists=True, file_okay=False)] = None,
        on_error: Annotated[str, typer.Option(help="skip: report and skip bad rows; fail: abort before storing.")] = "skip",
        data_dir: DataDir = None,
        app: AppName = None,
    ) -> None:
        """Import events, items and users in bulk (validated, deduplicated, time-ordered).

        Examples:
          pulserec import --items items.csv --events events.parquet
          pulserec import --movielens ../shared/data/ml-latest-small
          pulserec import --follows ties.csv
        """
        from pulserec.ingest.importer import count_rows, import_events, import_items, import_users

        if not any((events, items, users, movielens, follows)):
            raise typer.BadParameter("give at least one of --events, --items, --users, --movielens, --follows")
        engine = open_engine(data_dir, app)
        try:
            if items:
                show("items", import_items(engine, items))
            if users:
                show("users", import_users(engine, users))
            if follows:
                from pulserec.ingest.follows import import_follows

                show("follows", import_follows(engine, follows, on_error=on_error))
            if movielens:
                show("MovieLens ratings", import_movielens(engine, movielens))
            if events:
                with progress_bar(f"importing {events.name}", count_rows(events), threaded=False) as progress:
                    report = import_events(engine, events, on_error=on_error, progress=advancing(progress), snapshot=True)
                show("events", report)
        finally:
            engine.close()


def import_movielens(engine, directory: Path):  # noqa: ANN001, ANN201 - Engine, ImportReport (imported lazily)
    """movies.csv into the catalogue, then the checked ratings in one bulk pipeline."""
    import time

    from pulserec.ingest.importer import ImportReport
    from pulserec.ingest.movielens import read_checked_ratings, read_movies

    engine.put_items(read_movies(directory))
    frame, errors = read_checked_ratings(directory, engine.settings.value_rules)
    started = time.perf_counter()
    report = ImportReport(rows=len(frame) + len(errors), rejected=len(errors), errors=errors[:50])
    with progress_bar("importing MovieLens ratings", len(frame), threaded=False) as progress:
        step = advancing(progress)

        def parts():  # noqa: ANN202
            for start in range(0, len(frame), 100_000):
                yield frame.iloc[start : start + 100_000]
                step(min(100_000, len(frame) - start))

        report.accepted, report.duplicates = engine.ingest_frames(parts())
    report.seconds = time.perf_counter() - started
    return report


def show(what: str, report) -> None:
    console.print(
        f"[green]{what}[/]: {report.rows:,} rows, {report.accepted:,} stored, {report.duplicates:,} duplicates, "
        f"{report.rejected:,} rejected in {report.seconds:.2f}s"
        + (f" ({report.rate:,.0f} rows/s)" if report.seconds else "")
    )
    if getattr(report, "unknown_items", 0):
        console.print(f"[yellow]note[/]: {report.unknown_items:,} event items are not in the catalogue (kept, without metadata)")
    for error in report.errors[:10]:
        console.print(f"  [red]row {error['row']}[/] {error['field']}: {error['message']}")
