import sqlite3

import pandas as pd
import pytest

from pulserec.events import Event
from pulserec.records import ItemRecord
from pulserec.store import SQLiteStore


def ev(eid, user="u1", item="i1", ts=1_700_000_000.0, type_="view"):
    return Event(eid, user, item, type_, ts).row()


def test_wal_mode_and_schema(tmp_path):
    store = SQLiteStore(tmp_path / "x.db")
    mode = sqlite3.connect(tmp_path / "x.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert store.event_count() == 0


def test_duplicates_are_stored_once_even_within_a_batch(tmp_path):
    store = SQLiteStore(tmp_path / "x.db")
    assert store.append_events([ev("a"), ev("b"), ev("a")]) == [1, 2, None]
    assert store.append_events([ev("b"), ev("c")]) == [None, 3]
    assert store.event_count() == 3


def test_failed_batch_stores_nothing_and_keeps_earlier_data(tmp_path):
    store = SQLiteStore(tmp_path / "x.db")
    store.append_events([ev("a")])
    bad = ("b", "u1", "i1", "view", 1.0)  # wrong arity: fails after "c" was written in the transaction
    with pytest.raises(sqlite3.ProgrammingError):
        store.append_events([ev("c"), bad])
    assert store.event_count() == 1
    assert store.append_events([ev("c")])[0] is not None


def test_constraint_violations_other_than_duplicates_raise(tmp_path):
    store = SQLiteStore(tmp_path / "x.db")
    with pytest.raises(sqlite3.IntegrityError):
        store.append_events([("a", "u1", "i1", None, 1.0, None, None, None, None, None, None)])  # type is NOT NULL
    assert store.event_count() == 0


def test_iter_events_in_chunks_and_delete_user(tmp_path):
    store = SQLiteStore(tmp_path / "x.db")
    store.append_events([ev(f"e{i}", user=f"u{i % 3}") for i in range(10)])
    frames = list(store.iter_events(chunk=4))
    assert [len(f) for f in frames] == [4, 4, 2]
    assert pd.concat(frames)["seq"].is_monotonic_increasing
    removed = store.delete_user("u1")
    assert len(removed) == 3 and set(removed["user_id"]) == {"u1"}
    assert store.event_count() == 7
    assert store.user_events("u1").empty


def test_items_and_users_round_trip(tmp_path):
    path = tmp_path / "x.db"
    store = SQLiteStore(path)
    store.upsert_items([ItemRecord("i1", title="A", category="c", tags=("x", "y"), price=3.5, attrs={"k": 1})])
    store.upsert_items([ItemRecord("i1", title="B", category="c", tags=("x",), price=4.0)])
    store.upsert_users([("u1", {"plan": "pro"}, 5.0)])
    store.close()
    again = SQLiteStore(path)
    [item] = again.load_items()
    assert (item.title, item.tags, item.price) == ("B", ("x",), 4.0)
    assert again.get_user("u1") == {"attrs": {"plan": "pro"}, "created_ts": 5.0}
    assert again.get_user("nobody") is None


def test_iter_events_stops_at_a_watermark(tmp_path):
    store = SQLiteStore(tmp_path / "x.db")
    store.append_events([ev(f"e{i}") for i in range(10)])
    frames = list(store.iter_events(after_seq=2, chunk=3, upto_seq=7))
    assert pd.concat(frames)["seq"].tolist() == [3, 4, 5, 6, 7]
