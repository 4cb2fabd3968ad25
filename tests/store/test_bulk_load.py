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
    """The events table's indexes, and the search index's insert trigger (a bulk load defers both)."""
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') "
                               "AND tbl_name = 'events' AND sql IS NOT NULL"))


def indexed_searches(path, checked: bool = True) -> list[tuple[int, str]]:
    """Every (seq, query) the search index finds for the stored queries' words, after FTS5's own
    check that the index is consistent (`checked`; rank 0: not against every row of the log,
    whose rows without a query are not documents, as the insert trigger indexes them)."""
    with sqlite3.connect(path) as db:
        if checked:
            db.execute("INSERT INTO search_terms(search_terms, rank) VALUES ('integrity-check', 0)")
        words = {w.lower() for (q,) in db.execute("SELECT query FROM events WHERE query IS NOT NULL") for w in q.split()}
        return sorted(hit for w in words for hit in db.execute(
            "SELECT rowid, query FROM search_terms WHERE search_terms MATCH ?", (f'"{w}"',)))


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
    # the shop's file has no session or rec_id column: their partial indexes get no row and stay
    assert report.accepted == 3000 and during and all(seen.keys() == {"search_terms_drop", "events_session", "events_rec"}
                                                      for seen in during)
    assert event_indexes(engine.store.path) == before and "search_terms_add" in before
    searches = indexed_searches(engine.store.path)
    with sqlite3.connect(engine.store.path) as db:  # every stored query is found, by its own row
        stored = db.execute("SELECT seq, query FROM events WHERE query IS NOT NULL").fetchall()
    assert stored and set(stored) <= set(searches)
    assert engine.searches.clicks_after(stored[0][1], ["view", "purchase"], 3600.0)
    assert len(engine.store.user_events("u0001")) > 0 and engine.history.item_activity("sku-00001", "day") is not None


def search_index(path) -> tuple[int, list[tuple[int, float]]]:
    """The search index's documents and every stored query's BM25 ranking (what clicks_after sums)."""
    with sqlite3.connect(path) as db:
        queries = [q for (q,) in db.execute("SELECT DISTINCT query FROM events WHERE query IS NOT NULL ORDER BY query")]
        ranked = [hit for q in queries for hit in db.execute(
            "SELECT rowid, round(bm25(search_terms), 9) FROM search_terms WHERE search_terms MATCH ? ORDER BY rowid",
            (" AND ".join(f'"{w}"' for w in q.split()),))]
        return db.execute("SELECT COUNT(*) FROM search_terms_docsize").fetchone()[0], ranked


def test_a_bulk_load_indexes_the_searches_as_one_by_one_inserts_do(engine, files, tmp_path, monkeypatch):
    """FTS5's 'rebuild' added an empty document for every row without a query, and BM25 counts
    documents: every search's similarity differed from the same log stored without the bulk
    load. Now the same documents, the same scores, and the same after a re-index at open."""
    monkeypatch.setattr(bulk_load, "MIN_ROWS", 100)
    import_events(engine, files["events"], chunk_size=1000)
    monkeypatch.setattr(bulk_load, "MIN_ROWS", 10**9)
    plain = Engine(Settings.load(tmp_path / "plain"))
    import_items(plain, files["items"])
    import_events(plain, files["events"], chunk_size=1000)
    documents, ranked = search_index(engine.store.path)
    with sqlite3.connect(engine.store.path) as db:
        assert documents == db.execute("SELECT COUNT(*) FROM events WHERE query IS NOT NULL").fetchone()[0] > 0
    assert (documents, ranked) == search_index(plain.store.path) and ranked
    query = ranked and next(q for (q,) in sqlite3.connect(plain.store.path).execute(
        "SELECT query FROM events WHERE query IS NOT NULL LIMIT 1"))
    assert engine.searches.clicks_after(query, ["view"], 3600.0) == plain.searches.clicks_after(query, ["view"], 3600.0)
    plain.close()
    with engine.store.connection() as db:  # what a killed bulk load leaves: the next open re-indexes the whole log
        db.execute("DROP TRIGGER search_terms_add")
    engine.close()
    reopened = Engine(Settings.load(tmp_path / "data"))
    try:
        assert search_index(reopened.store.path) == (documents, ranked)
    finally:
        reopened.close()


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
        for name, sql in before.items():
            db.execute(f'DROP {"TRIGGER" if sql.startswith("CREATE TRIGGER") else "INDEX"} "{name}"')
    engine.close()
    reopened = Engine(Settings.load(tmp_path / "data"))
    try:
        assert event_indexes(reopened.store.path) == before
    finally:
        reopened.close()


def test_a_search_index_left_without_its_trigger_is_rebuilt_at_the_next_open(engine, files, tmp_path):
    """What a bulk load killed before its end leaves: queries stored while the trigger was dropped
    are missing from the index; the next open re-indexes the log and puts the trigger back."""
    import_events(engine, files["events"])
    with engine.store.connection() as db:
        db.execute("DROP TRIGGER search_terms_add")
        db.execute("INSERT INTO events (event_id, user_id, item_id, type, ts, query) "
                   "VALUES ('late', 'u0001', NULL, 'search', 1.7e9, 'zebrafinch')")
        seq = db.execute("SELECT seq FROM events WHERE event_id = 'late'").fetchone()[0]
    assert (seq, "zebrafinch") not in indexed_searches(engine.store.path, checked=False)
    engine.close()
    reopened = Engine(Settings.load(tmp_path / "data"))
    try:
        assert (seq, "zebrafinch") in indexed_searches(reopened.store.path)
        assert "search_terms_add" in event_indexes(reopened.store.path)
    finally:
        reopened.close()


def test_an_import_asked_for_a_snapshot_writes_it_before_the_close(tmp_path, files, monkeypatch):
    """`snapshot=True` (the CLI's import): the snapshot is written once every chunk is applied, at
    the log's last seq, while the writer builds the deferred indexes; the close finds it current
    and writes none, and the next start replays nothing. Without snapshots it is a no-op."""
    monkeypatch.setattr(bulk_load, "MIN_ROWS", 100)
    settings = Settings.load(tmp_path / "data")
    engine = Engine(settings)
    import_items(engine, files["items"])
    report = import_events(engine, files["events"], chunk_size=1000, snapshot=True)
    written = engine.stats()["snapshot"]
    assert report.accepted == 3000 and written["watermark"] == engine.store.max_seq() and written["events_since"] == 0
    assert engine.counters["snapshots.written"] == 1
    engine.close()
    assert engine.counters["snapshots.written"] == 1 and len(list((tmp_path / "data" / "snapshots").glob("*.npz"))) == 1
    again = Engine(settings)
    assert again.stats()["snapshot"]["watermark"] == written["watermark"] and again.state.applied == 3000
    again.close()
    off = Engine(Settings.load(tmp_path / "off", snapshots=False))
    import_items(off, files["items"])
    assert import_events(off, files["events"], snapshot=True).accepted == 3000 and off.stats()["snapshot"] is None
    off.close()


def test_a_partial_index_is_kept_only_over_a_column_the_file_lacks(engine, shop, tmp_path, monkeypatch):
    """events_session (WHERE session_id IS NOT NULL) is dropped and built again when the file has
    a session column (under an alias too), kept through the load when it has none; either way
    it holds exactly the stored rows with a session afterwards."""
    monkeypatch.setattr(bulk_load, "MIN_ROWS", 100)
    events = shop.events.head(600).assign(sessionid=[f"s{n % 7}" if n % 3 else None for n in range(600)])
    path = tmp_path / "with_sessions.parquet"
    events.to_parquet(path)
    during: list[dict] = []
    import_events(engine, path, chunk_size=200, progress=lambda n: during.append(event_indexes(engine.store.path)))
    assert during and all("events_session" not in seen and "events_rec" in seen for seen in during)
    with sqlite3.connect(engine.store.path) as db:
        indexed = db.execute("SELECT COUNT(*) FROM events INDEXED BY events_session WHERE session_id IS NOT NULL").fetchone()
        assert indexed == db.execute("SELECT COUNT(*) FROM events WHERE session_id IS NOT NULL").fetchone() == (400,)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
