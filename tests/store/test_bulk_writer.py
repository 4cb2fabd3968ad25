"""The pipelined bulk path stores and applies the same events whichever writer it uses."""

import pandas as pd
import pytest

from pulserec.config import Settings
from pulserec.engine import Engine


def as_frame(shop) -> pd.DataFrame:
    ev = shop.events
    return pd.DataFrame({"event_id": ev["event_id"], "user_id": ev["user_id"], "item_id": ev["item_id"], "type": ev["type"],
                         "ts": ev["ts"], "value": ev["value"], "session_id": None, "query": ev["query"], "context": None,
                         "rec_id": None})


@pytest.mark.parametrize("use_process", [True, False])
def test_process_and_thread_writers_agree_and_skip_duplicates(shop, tmp_path, use_process):
    frame = as_frame(shop)
    engine = Engine(Settings.load(tmp_path / str(use_process)))
    engine.put_items(list(shop.items))
    first = frame.iloc[:1000]
    assert engine.ingest_frames([first], chunk=300, use_process=use_process) == (1000, 0)
    accepted, duplicates = engine.ingest_frames([frame], chunk=700, use_process=use_process)  # overlaps the first 1000
    assert (accepted, duplicates) == (len(frame) - 1000, 1000)
    assert engine.store.event_count() == engine.state.applied == len(frame)
    reference = Engine(Settings.load(tmp_path / f"ref-{use_process}"))
    reference.put_items(list(shop.items))
    reference.ingest_frames([frame], chunk=len(frame), use_process=False)
    for user in shop.users["user_id"].head(20):
        assert [r.item_id for r in engine.recommend(user, 10).items] == [r.item_id for r in reference.recommend(user, 10).items]
    engine.close()
    reference.close()


@pytest.mark.parametrize("use_process", [True, False])
def test_the_writer_checkpoints_what_its_finishing_statements_wrote(shop, tmp_path, use_process):
    """After the statements run after the last chunk (a bulk load's index builds) the writer
    checkpoints the WAL: the database file itself holds every page (its size is the logical
    page count), before the importing process closes the store."""
    import os
    import sqlite3

    engine = Engine(Settings.load(tmp_path / str(use_process)))
    try:
        with engine.store.connection() as db:
            db.execute("PRAGMA wal_autocheckpoint=0")  # only an explicit checkpoint moves pages into the file
        engine.ingest_frames([as_frame(shop)], chunk=700, use_process=use_process,
                             finish=["CREATE INDEX built_after ON events(item_id, user_id, ts)"])
        with sqlite3.connect(engine.store.path) as db:
            pages, size = db.execute("PRAGMA page_count").fetchone()[0], db.execute("PRAGMA page_size").fetchone()[0]
            assert db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'built_after'").fetchone() == (1,)
        assert os.path.getsize(engine.store.path) == pages * size
    finally:
        engine.close()
