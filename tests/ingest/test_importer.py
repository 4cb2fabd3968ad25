import pandas as pd
import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.ingest.importer import ImportAborted, import_events, import_items, import_users
from pulserec.ingest.synthetic import items_frame, write


def test_csv_and_parquet_import_store_the_same_events(shop, tmp_path):
    counts = {}
    for fmt in ("csv", "parquet"):
        paths = write(shop, tmp_path / fmt, fmt)
        engine = Engine(Settings.load(tmp_path / f"data-{fmt}"))
        import_items(engine, paths["items"])
        report = import_events(engine, paths["events"])
        assert report.rejected == 0 and report.accepted == len(shop.events)
        counts[fmt] = (engine.store.event_count(), engine.stats()["cooccurrence_nnz"], engine.recommend("u0001", 5).items)
        engine.close()
    assert counts["csv"] == counts["parquet"]


def test_bad_rows_are_reported_and_skipped(tmp_path):
    path = tmp_path / "events.csv"
    pd.DataFrame({
        "user_id": ["u1", "", "u3", "u4", "u5", "u6"],
        "item_id": ["i1", "i2", "", "i4", "i5", "i6"],
        "type": ["view", "view", "view", "fly", "view", "purchase"],
        "timestamp": ["1700000000", "1700000001", "1700000002", "1700000003", "-1", "2023-11-14T22:13:30Z"],
        "device": ["mobile"] * 6,
    }).to_csv(path, index=False)
    engine = Engine(Settings.load(tmp_path / "d"))
    report = import_events(engine, path)
    assert (report.accepted, report.rejected) == (2, 4)
    assert {(e["row"], e["field"]) for e in report.errors} == {(2, "user_id"), (3, "item_id"), (4, "type"), (5, "ts")}
    stored = engine.store.user_events("u6")
    assert stored["ts"].iloc[0] == pytest.approx(1700000010.0)
    assert engine.profile("u1")["favourite_device"] == "mobile"
    with pytest.raises(ImportAborted, match="row 2 user_id"):
        import_events(engine, path, on_error="fail")
    assert engine.store.event_count() == 2


def test_reimporting_a_file_without_event_ids_is_idempotent(shop, tmp_path):
    path = tmp_path / "events.csv"
    shop.events.drop(columns=["event_id"]).head(500).to_csv(path, index=False)
    engine = Engine(Settings.load(tmp_path / "d"))
    first = import_events(engine, path)
    second = import_events(engine, path)
    assert first.accepted == 500 and (second.accepted, second.duplicates) == (0, 500)


def test_items_and_users_import(shop, tmp_path):
    items = tmp_path / "items.csv"
    frame = items_frame(shop.items)
    frame.loc[0, "price"] = -3
    frame.to_csv(items, index=False)
    users = tmp_path / "users.csv"
    shop.users.to_csv(users, index=False)
    engine = Engine(Settings.load(tmp_path / "d"))
    report = import_items(engine, items)
    assert (report.accepted, report.rejected) == (len(frame) - 1, 1)
    record = engine.state.catalog.get(shop.items[1].item_id)
    assert record.tags == shop.items[1].tags and record.price == shop.items[1].price
    assert import_users(engine, users).accepted == len(shop.users)
    assert engine.store.get_user("u0001")["attrs"]["city"] == shop.users.loc[1, "city"]


@pytest.mark.movielens
def test_movielens_ratings_import(movielens, tmp_path):
    from pulserec.ingest.movielens import read_movies, read_ratings

    engine = Engine(Settings.load(tmp_path / "d"))
    engine.put_items(read_movies(movielens))
    ratings = read_ratings(movielens)
    accepted, duplicates = engine.ingest_frame(ratings)
    assert accepted == len(ratings) and duplicates == 0
    assert ratings["ts"].is_monotonic_increasing
    answer = engine.recommend("1", 10)
    assert len(answer.items) == 10 and answer.items[0].reason.startswith("because you rated")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_item_rows_are_read_value_by_value_as_before(tmp_path, fmt):
    """Rows come from column lists and prices from one column-wise conversion: text prices,
    missing, unparseable (kept without a price), negative and infinite (rejected) alike. An
    empty id cell is rejected in both formats (a CSV's was read as NaN and stored as item "nan")."""
    frame = pd.DataFrame({"sku": ["a", " b ", "", "c", "d", "e"], "price": ["1.5", "-2", "3", "abc", None, "inf"],
                          "tags": ["x|y", '["p", "q"]', None, "", "z", "u"], "active": ["true", "0", "no", None, "yes", "1"],
                          "color": ["red", None, "blue", "3", "2.5", None], "title": [" T ", None, "x", "y", "z", "w"]})
    path = tmp_path / f"items.{fmt}"
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path)
    engine = Engine(Settings.load(tmp_path / "d"))
    report = import_items(engine, path)
    assert (report.accepted, report.rejected) == (3, 3)
    assert [(e["row"], e["field"]) for e in report.errors] == [(2, "price"), (3, "item_id"), (6, "price")]
    a, c, d = (engine.state.catalog.get(i) for i in ("a", "c", "d"))
    assert (a.title, a.tags, a.price, a.active, a.attrs) == ("T", ("x", "y"), 1.5, True, {"color": "red"})
    assert (c.price, c.tags, c.active, c.attrs) == (None, (), True, {"color": "3"})
    assert (d.price, d.tags, d.attrs) == (None, ("z",), {"color": "2.5"})
    assert sorted(r.item_id for r in engine.store.load_items()) == ["a", "c", "d"]
    users = tmp_path / f"users.{fmt}"
    people = pd.DataFrame({"user_id": ["u1", "", 7], "city": ["Rome", "Oslo", "Lima"]}).astype({"user_id": str})
    people.to_csv(users, index=False) if fmt == "csv" else people.to_parquet(users)
    assert (import_users(engine, users).accepted, engine.store.user_count()) == (2, 2)
    assert engine.store.get_user("7")["attrs"] == {"city": "Lima"} and engine.store.get_user("nan") is None
    engine.close()


def test_the_import_snapshot_is_not_fsynced_and_the_next_start_loads_it(shop, tmp_path, monkeypatch):
    """`import_events(snapshot=True)` writes the state's snapshot without waiting for the disk
    (no fsync: a torn file after a crash is refused by its checksum like any other), and the
    next start loads it and replays nothing: the state equals a full replay of the log. A
    snapshot on demand is still fsynced (file and directory)."""
    import os
    import sys
    from pathlib import Path

    from pulserec.online import snapshot_file
    from pulserec.online.state import OnlineState

    sys.path.insert(0, str(Path(__file__).parents[1] / "online"))
    from state_equality import assert_same_state

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(snapshot_file.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    paths = write(shop, tmp_path / "files", "parquet")
    engine = Engine(Settings.load(tmp_path / "d"))
    import_items(engine, paths["items"])
    import_events(engine, paths["events"], snapshot=True)
    assert engine.checkpoints.snapshots.latest["watermark"] == len(shop.events) and synced == []
    engine.close()  # the snapshot reflects the state: none is written on close
    assert synced == [] and len(engine.checkpoints.snapshots.files()) == 1
    again = Engine(Settings.load(tmp_path / "d"))
    try:
        assert again.checkpoints.snapshots.latest["watermark"] == len(shop.events)  # loaded, not replayed
        replayed = OnlineState(again.settings)
        replayed.restore(again.store)
        assert_same_state(again.state, replayed)
        again.ingest_frame(again.store.user_events("u0001").assign(event_id=lambda f: f["event_id"] + "-again")
                           .drop(columns=["seq"], errors="ignore"))
        again.checkpoints.write()
        assert len(synced) == 2  # the file, then its directory
    finally:
        again.close()


def test_event_items_not_in_the_catalogue_are_counted_once_each(tmp_path):
    """The report's unknown_items: the distinct event items the catalogue did not hold, once each
    however many read chunks name them before they are applied (chunks of 3 rows here)."""
    from pulserec.records import ItemRecord

    path = tmp_path / "events.csv"
    items = ["i1", "new1", "i2", "new2", "new1", "new3", "new2", "i1", "new3", "new1"]
    pd.DataFrame({"user_id": [f"u{n % 3}" for n in range(10)], "item_id": items, "type": ["view"] * 10,
                  "ts": [1_700_000_000 + n for n in range(10)]}).to_csv(path, index=False)
    engine = Engine(Settings.load(tmp_path / "d"))
    try:
        engine.put_items([ItemRecord("i1"), ItemRecord("i2")])
        report = import_events(engine, path, chunk_size=3)
        assert (report.accepted, report.unknown_items) == (10, 3)
        again = import_events(engine, path, chunk_size=3)  # all duplicates: nothing new
        assert (again.duplicates, again.unknown_items) == (10, 0)
    finally:
        engine.close()


@pytest.mark.parametrize("storage", ["object", "arrow", "arrow-slice"])
def test_id_checks_find_control_characters_and_lengths_in_any_text_storage(storage):
    """The id checks run on the UTF-8 bytes of the Arrow text (no regex per row): the same rows
    as the per-character rule, for Python strings (CSV), Arrow strings (Parquet) and a slice of
    an Arrow column (a read chunk past the first: its buffers start at an offset)."""
    import re

    import numpy as np

    from pulserec.ingest.importer import normalise_events

    max_id = 8
    ids = ["ok", " tab\tin ", "del\x7f", "ünïcødé", "€uro\x01", "ééééééé€", "ééééééé€€", "  ", None, "nul\x00", "\x1fx",
           "x\x1f", "fine-id", "é\u2028é"]
    pad = ["u0", "u1", "u2"]  # rows the slice drops
    users = pad + ids
    frame = pd.DataFrame({"user_id": users, "item_id": [f"i{k}" for k in range(len(users))], "type": "view",
                          "ts": 1.7e9 + np.arange(len(users)), "session_id": None})
    if storage != "object":
        frame["user_id"] = frame["user_id"].astype("str" if storage == "arrow" else "string[pyarrow]")
    if storage == "arrow-slice":
        frame = frame.iloc[len(pad):]
        users = ids
    valid, errors = normalise_events(frame, Settings().event_weights, 0, max_id=max_id)
    expected_bad = {k for k, u in enumerate(users) if u is not None and u.strip()
                    and (len(u.strip()) > max_id or re.search(r"[\x00-\x1f\x7f]", u.strip()))}
    missing = {k for k, u in enumerate(users) if u is None or not u.strip()}
    assert {e["row"] - 1 for e in errors if e["field"] == "user_id" and "printable" in e["message"]} == expected_bad
    assert {e["row"] - 1 for e in errors if e["field"] == "user_id" and "required" in e["message"]} == missing
    assert list(valid["user_id"]) == [u.strip() for k, u in enumerate(users) if k not in expected_bad | missing]
