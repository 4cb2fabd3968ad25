"""Load an interaction log (and catalogue) to train or evaluate on: the engine's SQLite store in
a data directory, or a MovieLens "latest" directory."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from pulserec.config import Settings
from pulserec.events import owner_keys
from pulserec.models.interactions import Interactions
from pulserec.online.catalog import Catalog
from pulserec.records import ItemRecord


def catalog_of(records: list[ItemRecord]) -> Catalog:
    catalog = Catalog()
    for record in records:
        catalog.upsert(record)
    return catalog


def load_training_data(
    data_dir: str | os.PathLike[str] | None = None, movielens: str | os.PathLike[str] | None = None,
    settings: Settings | None = None,
) -> tuple[Interactions, Catalog, Settings]:
    """(interactions, catalogue, settings) from MovieLens when `movielens` is given, else from
    the store in `data_dir`. Event weights come from the data directory's settings; anonymous
    sessions count as users (their owner key). `settings` (an app's, see runtime/apps.py) replace
    those of `data_dir`."""
    settings = settings or Settings.load(data_dir)
    if movielens is not None:
        from pulserec.ingest.movielens import read_movies, read_ratings

        frame = read_ratings(movielens)
        catalog = catalog_of(read_movies(movielens))
    else:
        from pulserec.store import EVENT_COLUMNS, SQLiteStore

        db = Path(settings.db_path)
        if not db.is_file():
            raise FileNotFoundError(f"no event store at {db} (pass --data-dir or --movielens)")
        store = SQLiteStore(db)
        try:
            frames = list(store.iter_events())
            catalog = catalog_of(store.load_items())
        finally:
            store.close()
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(EVENT_COLUMNS))
        frame = frame.assign(user_id=owner_keys(frame)).sort_values("ts", kind="stable")
    return Interactions.from_frame(frame, settings.weighting), catalog, settings
