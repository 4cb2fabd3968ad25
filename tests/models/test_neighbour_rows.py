"""Item-kNN's scored rows kept per revision (models/neighbour_rows.py), on both states: a kept
row reads back exactly as a fresh read (order and bits), a write anywhere is in the very next
read, answers are the same with or without kept rows, and the bound holds."""

from __future__ import annotations

import numpy as np

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.ingest.synthetic import as_events
from pulserec.models.neighbour_rows import ENTRY_BYTES, NeighbourRows


def users_of(shop, n):
    return shop.events["user_id"].iloc[:1500].unique()[:n].tolist()


def assert_same_entries(got, want):
    for a, b in zip(got, want):
        assert a.dtype.kind == b.dtype.kind and np.array_equal(a, b)


def test_kept_rows_read_back_as_a_fresh_read(shop_engine, shop):
    knn = shop_engine.service.models.item_knn
    users = users_of(shop, 8)
    for user in users:  # the first request makes the state quiet "since the previous request"
        shop_engine.recommend(user, 10)
    asked = 0
    with shop_engine.lock:
        for user in users:
            with shop_engine.state.reading(user):
                items = shop_engine.service.query_for(user).items
                asked += len(items)
                assert_same_entries(knn._gathered(items), knn._read_rows(items))
                assert_same_entries(knn._gathered(items[::-1].copy()), knn._read_rows(items[::-1].copy()))
    assert 0 < knn.rows.rows_read < asked  # rows shared between users were read once
    assert knn.rows.nbytes > 0


def test_a_write_anywhere_is_in_the_next_read(shop_engine, shop):
    """Another user's event on an item of the user's history moves degrees that the kept rows
    were normalised by: the next read is a fresh one, equal to reading the rows again."""
    knn = shop_engine.service.models.item_knn
    user, other = users_of(shop, 2)
    for _ in range(2):
        shop_engine.recommend(user, 10)
    with shop_engine.lock, shop_engine.state.reading(user):
        items = shop_engine.service.query_for(user).items
        before = knn._gathered(items)
    ts = float(shop.events["ts"].iloc[1499])
    item_id = shop_engine.state.catalog.record(int(items[0])).item_id
    shop_engine.ingest([Event("fresh-0", other, item_id, "purchase", ts + 1)])
    with shop_engine.lock, shop_engine.state.reading(user):
        revision = knn.cooc.revision
        kept = knn.rows.gather(items, revision, knn._read_rows)
        fresh = knn._read_rows(items)
    assert_same_entries(kept, fresh)
    assert not np.array_equal(before[1], fresh[1])  # the write did change the scored rows


def test_answers_are_the_same_with_or_without_kept_rows(shop_engine, shop):
    knn = shop_engine.service.models.item_knn
    users = users_of(shop, 6)
    for user in users:
        shop_engine.recommend(user, 10)
    kept = {user: [r.to_dict() for r in shop_engine.recommend(user, 10).items] for user in users}
    rows, knn.rows = knn.rows, None
    knn.long_term_cache.clear()
    try:
        plain = {user: [r.to_dict() for r in shop_engine.recommend(user, 10).items] for user in users}
    finally:
        knn.rows = rows
    assert kept == plain


def fake_rows(lengths: dict[int, int]):
    """A `read` over rows of the given lengths whose entries name their row (and count calls)."""
    calls = []

    def read(rows: np.ndarray):
        calls.append(rows.tolist())
        n = [lengths.get(int(r), 0) for r in rows]
        src = np.repeat(np.arange(len(rows), dtype=np.int32), n)
        idx = np.concatenate([np.arange(k, dtype=np.int32) + 100 * int(r) for r, k in zip(rows, n)] or [np.empty(0, np.int32)])
        return idx, idx * 0.5 + 1.0 / (1 + src), src

    return read, calls


def test_the_bound_holds_and_an_overflow_starts_again():
    lengths = {0: 3, 1: 5, 2: 0, 3: 4, 4: 6}
    read, calls = fake_rows(lengths)
    rows = NeighbourRows(max_bytes=10 * ENTRY_BYTES)

    def check(items, revision="r1"):
        items = np.array(items, dtype=np.int64)
        got = rows.gather(items, revision, read)
        want_idx = np.concatenate([np.arange(lengths[i], dtype=np.int32) + 100 * i for i in items.tolist()])
        assert np.array_equal(got[0], want_idx)
        assert np.array_equal(got[2], np.repeat(np.arange(len(items)), [lengths[i] for i in items.tolist()]))
        assert rows.nbytes <= 10 * ENTRY_BYTES

    check([1, 0, 2])  # 8 entries kept
    check([0, 2, 1])
    assert calls == [[0, 1, 2]]  # the second read was all kept
    check([3, 1])  # 4 more would overflow: dropped, this read is a plain one
    assert rows.nbytes == 0
    check([3, 1])  # kept again
    assert rows.nbytes == 9 * ENTRY_BYTES
    check([3], revision="r2")  # another revision: nothing kept from r1
    assert calls[-1] == [3] and rows.nbytes == 4 * ENTRY_BYTES
    check([4, 4, 0])  # repeats: one read of each row
    assert calls[-1] == [0, 4]


def test_a_started_process_serves_first_requests_from_rows_kept_at_start(shop, backend, tmp_path):
    """A start warms the rows (bounded, before serving): the first requests of every user read
    and normalise no row (on Redis: no ROWS call), with the answers of a process keeping none."""
    settings = Settings.load(tmp_path, **backend)
    engine = Engine(settings)
    engine.put_items(shop.items)
    engine.ingest(as_events(shop.events.iloc[:1500]))
    engine.close()
    users = users_of(shop, 12)
    plain = Engine(settings.with_overrides(neighbour_rows_mb=0))
    try:
        want = {user: [r.to_dict() for r in plain.recommend(user, 10).items] for user in users}
    finally:
        plain.close()
    engine = Engine(settings)
    try:
        knn = engine.service.models.item_knn
        assert knn.rows.nbytes > 0 and knn.rows.rows_read == 0
        calls = []
        if backend:
            rows_script = engine.state.scripts.rows
            engine.state.scripts.rows = lambda *a, **k: calls.append("rows") or rows_script(*a, **k)
        got = {user: [r.to_dict() for r in engine.recommend(user, 10).items] for user in users}
        assert got == want
        assert knn.rows.rows_read == 0 and calls == []
    finally:
        engine.close()


def test_warming_stops_at_the_bound_and_at_its_time():
    lengths = {i: 3 for i in range(10)}
    read, calls = fake_rows(lengths)
    rows = NeighbourRows(max_bytes=7 * ENTRY_BYTES)
    assert rows.warm(np.arange(10), "r1", read, chunk=2, seconds=60) == 2  # a third chunk of 6 would not fit
    assert rows.nbytes == 6 * ENTRY_BYTES
    read, calls = fake_rows(lengths)
    rows = NeighbourRows(max_bytes=100 * ENTRY_BYTES)
    assert rows.warm(np.arange(10)[::-1].copy(), "r1", read, chunk=3, seconds=0) == 3  # one chunk, then its time is up
    assert calls == [[7, 8, 9]]
