"""A bulk import at least as large as the log builds the events indexes once, after it; a small
one keeps them; an import that fails or a process that dies never leaves them missing."""

from __future__ import annotations

import sqlite3

import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.ingest.importer import import_events, import_items
from pulserec.ingest.synthetic import write
from pulserec.store import bulk_load


def event_indexes(path) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
                               "AND sql IS NOT NULL"))


@pytest.fixture
def files(shop, tmp_path):
    return write(shop, tmp_path / "shop", "parquet")


@pytest.fixture
def engine(tmp_path, files):
    engine = Engine(Settings.load(tmp_path / "data"))
    import_items(engine, files["items"])
    yield engine
    engine.close()


def test_a_large_import_drops_and_rebuilds_every_events_index(engine, files, monkeypatch):
    monkeypatch.setattr(bulk_load, "MIN_ROWS", 100)
    before = event_indexes(engine.store.path)
    assert {"events_user", "events_session", "events_ts", "events_item"} <= before.keys()  # the dashboard's too
    during: list[dict] = []
    report = import_events(engine, files["events"], chunk_size=1000,
                           progress=lambda n: during.append(event_indexes(engine.store.path)))
    assert report.accepted == 3000 and during and all(seen == {} for seen in during)
    assert event_indexes(engine.store.path) == before
    assert len(engine.store.user_events("u0001")) > 0 and engine.history.item_activity("sku-00001", "day") is not None


def test_a_small_import_into_a_larger_log_keeps_the_indexes(engine, files, shop, tmp_path, monkeypatch):
    monkeypatch.setattr(bulk_load, "MIN_ROWS", 100)
    import_events(engine, files["events"])
    before = event_indexes(engine.store.path)
    small = write(shop.__class__(items=shop.items, users=shop.users, events=shop.events.iloc[:500].assign(
        event_id=lambda f: "again-" + f["event_id"])), tmp_path / "small", "parquet")
    during: list[dict] = []
    import_events(engine, small["events"], progress=lambda n: during.append(event_indexes(engine.store.path)))
    assert during == [before] and event_indexes(engine.store.path) == before


def test_a_failed_import_still_rebuilds_them(engine, files, monkeypatch):
    monkeypatch.setattr(bulk_load, "MIN_ROWS", 100)
    before = event_indexes(engine.store.path)

    def fail(n: int) -> None:
        raise RuntimeError("stopped by the test")

    with pytest.raises(RuntimeError, match="stopped by the test"):
        import_events(engine, files["events"], chunk_size=1000, progress=fail)
    assert event_indexes(engine.store.path) == before


def test_indexes_lost_with_a_killed_import_come_back_at_the_next_open(engine, tmp_path):
    before = event_indexes(engine.store.path)
    with engine.store.connection() as db:  # what a process killed inside the bulk load leaves
        for name in before:
            db.execute(f'DROP INDEX "{name}"')
    engine.close()
    reopened = Engine(Settings.load(tmp_path / "data"))
    try:
        assert event_indexes(reopened.store.path) == before
    finally:
        reopened.close()
