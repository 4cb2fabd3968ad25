"""`pulserec replay`: prequential evaluation of static vs online vs online+retrain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pulserec.cli.common import console


def register(app: typer.Typer) -> None:
    @app.command()
    def replay(
        movielens: Annotated[Path | None, typer.Option(help="MovieLens directory (default: $PULSEREC_MOVIELENS or ../shared).")] = None,
        events: Annotated[Path | None, typer.Option(help="Events file instead of MovieLens (.csv/.parquet).", exists=True)] = None,
        items: Annotated[Path | None, typer.Option(help="Items file to go with --events.", exists=True)] = None,
        modes: Annotated[str, typer.Option(help="Comma-separated: static, retrained, online, online+retrain.")] = "static,retrained,online,online+retrain",
        k: Annotated[int, typer.Option(min=1, max=100)] = 10,
        warmup: Annotated[float, typer.Option(min=0.05, max=0.95, help="Share of the log used before the replay starts.")] = 0.5,
        evaluations: Annotated[int, typer.Option(min=100, max=1_000_000, help="How many replayed events are scored.")] = 5000,
        retrain_every: Annotated[int, typer.Option(min=100, help="Events between batch retrains (retrained, online+retrain).")] = 10_000,
        models: Annotated[str, typer.Option(help="Batch models retrained in online+retrain mode.")] = "als",
        report: Annotated[Path | None, typer.Option(help="Write replay.md and replay.png into this directory.")] = None,
    ) -> None:
        """Replay a time-ordered log; before each event, score the user's top-K against it.

        Example: pulserec replay --movielens ../shared/data/ml-latest-small --report reports/replay
        """
        from pulserec.evaluation.replay import MODES, replay as run
        from pulserec.evaluation.replay_report import write_replay_report

        chosen = [m.strip() for m in modes.split(",") if m.strip()]
        unknown = set(chosen) - set(MODES)
        if unknown:
            raise typer.BadParameter(f"unknown modes {', '.join(sorted(unknown))}; choose from {', '.join(MODES)}")
        frame, records = _load(movielens, events, items)
        console.print(f"replaying {len(frame):,} events ({warmup:.0%} warm-up), scoring {evaluations:,} of them at K={k}")
        results = []
        for mode in chosen:
            with console.status(f"replaying: {mode}"):
                results.append(run(frame, records, mode, k=k, warmup=warmup, max_evaluations=evaluations,
                                   retrain_every=retrain_every, batch_models=[m for m in models.split(",") if m]))
        table = Table(title=f"replay @ {k}")
        # The fair baseline is the same model retrained every N events without online updates;
        # a model frozen before most users existed (static) makes any online mode look good.
        baseline = "retrained" if any(r.mode == "retrained" for r in results) else "static"
        for column in ("mode", f"HitRate@{k}", f"NDCG@{k}", f"vs {baseline}", "retrains", "seconds"):
            table.add_column(column, justify="right" if column != "mode" else "left")
        base = next((r.hit_rate for r in results if r.mode == baseline), None)
        for r in results:
            lift = f"{r.hit_rate / base:.2f}x" if base else "-"
            table.add_row(r.mode, f"{r.hit_rate:.4f}", f"{r.mean_ndcg:.4f}", lift, str(r.retrains), f"{r.seconds:.1f}")
        console.print(table)
        for r in results:
            for note in r.notes:
                console.print(f"[yellow]{r.mode}[/]: {note}")
        if report:
            for path in write_replay_report(results, report):
                console.print(f"wrote {path}")


def _load(movielens: Path | None, events: Path | None, items: Path | None):
    import pandas as pd

    if events is None:
        from pulserec.ingest.movielens import read_movies, read_ratings

        return read_ratings(movielens), read_movies(movielens)
    from pulserec.config import Settings
    from pulserec.ingest.importer import checks_of, normalise_events, read_table

    settings = Settings()
    frames = [normalise_events(chunk, settings.event_weights, **checks_of(settings))[0] for chunk in read_table(events)]
    records = []
    if items is not None:
        from pulserec.engine import Engine
        from pulserec.ingest.importer import import_items
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            engine = Engine(Settings.load(tmp))
            import_items(engine, items)
            records = engine.read(lambda state: list(state.catalog.records()))
            engine.close()
    return pd.concat(frames, ignore_index=True), records
