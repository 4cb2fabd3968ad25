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


def stored(store: SQLiteStore) -> list[tuple]:
    """Every stored row with each value's SQLite type (NULL vs '' vs a number matter)."""
    columns = ", ".join(f"{c}, typeof({c})" for c in ("event_id", "user_id", "item_id", "type", "ts", "value",
                                                       "session_id", "query", "context", "rec_id", "dwell_seconds"))
    with store.connection() as db:
        return db.execute(f"SELECT seq, {columns} FROM events ORDER BY seq").fetchall()


@pytest.mark.parametrize("empty_query", [False, True])
def test_a_bulk_insert_stores_exactly_the_rows_one_by_one_inserts_store(tmp_path, empty_query):
    """append_frame binds missing REAL values as NaN and missing texts as '' under NULLIF (faster
    than None); the rows stored are the same as append_events' tuples store, NULL for missing,
    also when a text column holds '' itself (it then binds None), and duplicates are skipped."""
    rows = [("a", "u1", "i1", "view", 1.7e9 + 0.123456789, None, None, None, '{"device":"mobile"}', None, None),
            ("b", None, None, "search", 1.7e9 + 1, None, "s1", "red shoes", None, None, None),
            ("c", "u2", "i2", "purchase", 1.7e9 + 2, 19.99, None, "" if empty_query else None, None, "r1", 3.5),
            ("a", "u3", "i3", "view", 1.7e9 + 3, None, None, None, None, None, None),
            ("d", "u2", "i2", "rating", 1.7e9 + 4, 4, None, float("nan"), None, None, None)]
    one_by_one = SQLiteStore(tmp_path / "rows.db")
    assert one_by_one.append_events([tuple(None if v != v else v for v in r) for r in rows]) == [1, 2, 3, None, 4]
    bulk = SQLiteStore(tmp_path / "bulk.db")
    frame = pd.DataFrame(rows, columns=["event_id", "user_id", "item_id", "type", "ts", "value", "session_id", "query",
                                        "context", "rec_id", "dwell_seconds"])
    assert bulk.append_frame(frame).tolist() == [1, 2, 3, -1, 4]
    assert stored(bulk) == stored(one_by_one)
    assert [r[16] for r in stored(bulk)] == (["null", "text", "text", "null"] if empty_query else ["null", "text", "null", "null"])


def test_a_bulk_insert_across_statements_keeps_order_and_duplicates(tmp_path):
    """append_frame puts ROWS_PER_INSERT rows in one INSERT (a multi-row VALUES list) and the
    rest in single-row ones: every row is stored in frame order with the seq the one-by-one
    path gives it, duplicates (of a row in the same statement, of an earlier statement, of an
    earlier write) are skipped with -1, and what is left over after the last full statement too."""
    from pulserec.store import sqlite as sqlite_module

    per = sqlite_module.ROWS_PER_INSERT
    n = 2 * per + 7  # two full statements and a tail
    ids = [f"e{i}" for i in range(n)]
    ids[5] = "e1"  # duplicate inside the first statement
    ids[per + 3] = "e2"  # in the second statement, of the first
    ids[-1] = "old"  # in the tail, of an earlier write
    rows = [(eid, f"u{i % 7}", f"i{i % 11}", "view" if i % 3 else "purchase", 1.7e9 + i, float(i) if i % 3 == 0 else None,
             None, None, None, None, None) for i, eid in enumerate(ids)]
    old = ("old", "u0", "i0", "view", 1.6e9, None, None, None, None, None, None)
    one_by_one, bulk = SQLiteStore(tmp_path / "rows.db"), SQLiteStore(tmp_path / "bulk.db")
    one_by_one.append_events([old])
    bulk.append_events([old])
    expected = [-1 if seq is None else seq for seq in one_by_one.append_events(rows)]
    assert expected.count(-1) == 3
    frame = pd.DataFrame(rows, columns=["event_id", "user_id", "item_id", "type", "ts", "value", "session_id", "query",
                                        "context", "rec_id", "dwell_seconds"])
    assert bulk.append_frame(frame).tolist() == expected
    assert stored(bulk) == stored(one_by_one)
    fresh = SQLiteStore(tmp_path / "fresh.db")  # no duplicates at all: the seqs are computed, not read back
    assert fresh.append_frame(frame.drop_duplicates("event_id")).tolist() == list(range(1, n - 1))
