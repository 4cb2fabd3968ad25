"""The Redis state is shared by several engines, survives restarts without a replay, and fails
clearly (what every state must do, the Redis one included, is test_state_contract.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.online.redis import bulk
from pulserec.online.redis.connection import VECTORS, StateBackendError
from pulserec.online.redis.state import RedisState
from pulserec.records import ItemRecord
from pulserec.serving.server import free_port
from pulserec.store import SQLiteStore
from pulserec.store.sqlite import EVENT_COLUMNS


NOW = time.time() - 3600
SRC = str(Path(__file__).resolve().parents[2] / "src")  # this checkout's code, for subprocesses


def redis_settings(redis_server, tmp_path=None, **overrides) -> Settings:
    data = {"data_dir": tmp_path} if tmp_path is not None else {}
    return Settings(state_url=redis_server.url, state_namespace=redis_server.namespace(), **data, **overrides)


def test_concurrent_writers_for_one_user_lose_nothing(redis_server):
    settings = redis_settings(redis_server)
    writers = [RedisState(settings), RedisState(settings)]

    def send(state: RedisState, k: int) -> None:
        for i in range(40):
            state.apply(Event(f"w{k}-{i}", "shared-user", f"item-{i % 7}", "view", NOW + i))

    threads = [threading.Thread(target=send, args=(w, k)) for k, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = writers[0]
    profile = state.profiles.get(state.owners.get("shared-user"))
    assert profile.event_count == 80 and state.applied == 80
    assert int(state.popularity.events.sum()) == 80
    assert len(state.histories.recent(state.owners.get("shared-user"))) == settings.history_len


def test_row_compaction_keeps_weights_and_refuses_a_stale_read(redis_server, monkeypatch):
    monkeypatch.setattr("pulserec.online.redis.state.COMPACT_BYTES", 12 * 8)
    state = RedisState(redis_settings(redis_server))
    for i in range(30):  # two items co-occur again and again: rows grow, COMMIT asks for compaction
        state.apply(Event(f"e{i}", "u", "a" if i % 2 else "b", "view", NOW + i))
    idx, vals = state.cooc.row(0)
    assert len(np.unique(idx)) == 1 and len(idx) < 20  # compacted along the way
    entries = 0
    for i in range(1, 30):  # every pair of the 30 alternating views, weighted as in CoOccurrence
        entries += sum(np.exp(-(i - j) / state.cooc.gap_tau) for j in range(max(0, i - 20), i) if (i - j) % 2)
    assert vals.sum() == pytest.approx(entries, rel=1e-12)
    gen = int(state.client.hget(state.keys.row_gen, 0) or 0)
    stale = [np.array([v], dtype="<i4").tobytes() for v in (0, gen + 1, 0, 0)]  # item 0 at a generation not its own
    assert state.scripts.compact_rows(args=[state.keys.prefix, state.state_id, *stale, b""]) == [0]
    assert state.cooc.row(0)[1].sum() == pytest.approx(entries, rel=1e-12)  # left alone
    current = [np.array([v], dtype="<i4").tobytes() for v in (0, gen, 0, 0)]  # its own generation, but
    assert state.scripts.compact_rows(args=[state.keys.prefix, "another-state", *current, b""]) == [0]  # reloaded since
    assert int(state.client.hget(state.keys.row_gen, 0) or 0) == gen
    assert state.cooc.row(0)[1].sum() == pytest.approx(entries, rel=1e-12)


def test_vectors_written_in_place_and_rewritten_whole_agree(redis_server, monkeypatch):
    """COMMIT updates a vector entry by entry or rewrites it whole (VECTOR_REWRITE): the same
    events, batched and one by one, with a user forgotten (clamped subtractions), must leave the
    same bytes either way."""
    items = [f"item-{i}" for i in range(300)]  # entries per change well below the item count
    log = [Event(f"v{k}", f"user-{k % 7}", items[(k * 37) % 300], "view", NOW + k) for k in range(400)]
    vectors = {}
    for rewrite in (0, 10**9):  # 0: always in place (once the vector exists); 10**9: always whole
        monkeypatch.setattr("pulserec.online.redis.plan.VECTOR_REWRITE", rewrite)
        state = RedisState(redis_settings(redis_server))
        state.apply_many([(e, 0) for e in log[:300]])  # batches: many entries per change
        for event in log[300:]:
            state.apply(event)  # one event: a few entries
        store_events = pd.DataFrame([e.row() for e in log if e.user_id == "user-3"], columns=list(EVENT_COLUMNS))
        state.forget("user-3", store_events.assign(seq=0))
        plan = state.new_plan()  # a repeated index, and a subtraction below zero that clamps to 0
        plan.add_to_vector("total", np.array([5, 5, 299, 299]), np.array([1.5, -100.0, -100.0, 2.0]), clamp=True)
        assert state.commit(plan) == "ok"
        vectors[rewrite] = {name: state.client.get(state.keys.vector(name)) for name in VECTORS}
    assert vectors[0] == vectors[10**9]
    total = np.frombuffer(vectors[0]["total"], dtype="<f8")
    assert total[5] == 0.0 and total[299] == 2.0  # each step clamps: w + 1.5 - 100 -> 0; w - 100 -> 0, + 2
    events = np.frombuffer(vectors[0]["events"], dtype="<f8")
    assert events.sum() == len(log) - sum(e.user_id == "user-3" for e in log) and (events >= 0).all()


def test_a_bounded_row_compaction_keeps_the_k_strongest_by_last_use(redis_server):
    """cooc_max_neighbours on Redis: a compacted row keeps its K entries of highest weight x
    2^(-(now - the neighbour's last event) / half-life), as the in-memory fold ranks them, and
    clips a subtraction below zero; the unbounded state keeps every pair."""
    halflife = 50.0
    log = [Event(f"b{k}", f"user-{k % 5}", f"item-{(k * 7 + k // 37) % 40}", "view", NOW + 3 * k) for k in range(600)]
    states = {k: RedisState(redis_settings(redis_server, cooc_max_neighbours=k, cooc_evict_halflife=halflife))
              for k in (0, 6)}
    for state in states.values():
        state.apply_many([(e, 0) for e in log])
        state.cooc.compact(range(40))  # rows this short wait for no compaction: fold them all now
    full, bounded = states[0], states[6]
    seen_at = np.frombuffer(full.client.get(full.keys.vector("seen_at")), dtype="<f8")
    last = {full.catalog.item_ids.get(e.item_id): e.ts for e in log}
    np.testing.assert_array_equal(seen_at[list(last)], list(last.values()))  # each item's last event
    ids = full.catalog.item_ids
    assert sum(len(full.cooc.row(item)[0]) > 12 for item in range(40)) > 20  # most rows are cut
    for item in range(40):
        others, weights = full.cooc.row(item)
        assert len(others) == len(np.unique(others))  # compacted: one entry per neighbour
        score = weights * np.exp2(-(seen_at.max() - seen_at[others]) / halflife)
        keep = sorted(np.argsort(-score, kind="stable")[:6])
        b_others, b_weights = bounded.cooc.row(bounded.catalog.item_ids.get(ids.id_of(item)))
        assert [bounded.catalog.item_ids.id_of(o) for o in b_others] == [ids.id_of(o) for o in others[keep]]
        np.testing.assert_allclose(b_weights, weights[keep], rtol=1e-12)
    plan = bounded.new_plan()  # a subtraction below zero: clipped, then the row ranked again
    plan.append_row(0, np.array([int(bounded.cooc.row(0)[0][0])]), np.array([-1e6]))
    assert bounded.commit(plan) == "ok"
    bounded.cooc.compact([0])
    assert (bounded.cooc.row(0)[1] > 0).all() and len(bounded.cooc.row(0)[0]) <= 6


def seed_engine(engine: Engine) -> None:
    engine.put_items([ItemRecord(f"shoe-{i}", title=f"Shoe {i}", category="shoes", price=50.0 + i) for i in range(5)]
                     + [ItemRecord(f"book-{i}", title=f"Book {i}", category="books", price=10.0 + i) for i in range(5)])
    engine.ingest([Event(f"s{u}-{i}", f"fan-{u}", f"{'shoe' if u % 2 else 'book'}-{i}", "view", NOW + u * 100 + i)
                   for u in range(8) for i in range(5)])


def listing(answer) -> list[tuple[str, float, str]]:
    return [(r.item_id, r.score, r.reason) for r in answer.items]


def test_two_engines_on_one_redis_serve_identical_results(tmp_path, redis_server):
    settings = redis_settings(redis_server, tmp_path)
    first, second = Engine(settings), Engine(settings)  # two API processes: same store, same Redis
    seed_engine(first)
    first.ingest([Event("n1", "newbie", "shoe-0", "view", NOW + 5000), Event("n2", "newbie", "shoe-3", "click", NOW + 5001)])
    for user in ("newbie", "fan-1", "fan-2", "nobody"):
        assert listing(second.recommend(user, 5)) == listing(first.recommend(user, 5))
    assert listing(second.recommend("newbie", 5))[0][2] == "because you clicked Shoe 3"
    assert second.similar("shoe-0", 3) == first.similar("shoe-0", 3)
    assert second.profile("newbie") == first.profile("newbie")
    first.put_items([ItemRecord("shoe-1", active=False)])
    assert "shoe-1" not in [r.item_id for r in second.recommend("newbie", 10).items]  # catalogue changes too
    assert second.stats()["events_applied"] == first.stats()["events_applied"] == 42
    first.close()
    second.close()


def test_restart_attaches_without_replaying_and_catches_up(tmp_path, redis_server, monkeypatch):
    settings = redis_settings(redis_server, tmp_path)
    engine = Engine(settings)
    seed_engine(engine)
    before = listing(engine.recommend("fan-1", 5))
    engine.close()
    # An event stored by a process that crashed before applying it: only it is applied on start.
    store = SQLiteStore(settings.db_path)
    store.append_events([Event("late", "fan-1", "book-0", "purchase", NOW + 9000).row()])
    store.close()
    replayed: list[int] = []
    original = bulk.apply_frame
    monkeypatch.setattr(bulk, "apply_frame", lambda state, frame, **kw: (replayed.append(len(frame)), original(state, frame, **kw))[1])
    engine = Engine(settings)
    assert replayed == [1]
    assert engine.state.applied == 41
    assert listing(engine.recommend("fan-1", 5)) != before
    engine.close()


def test_state_of_another_store_or_other_settings_is_refused_until_rebuilt(tmp_path, redis_server):
    settings = redis_settings(redis_server, tmp_path / "a")
    seed_engine(engine := Engine(settings))
    engine.close()
    other = Settings(**{**settings.__dict__, "data_dir": tmp_path / "b"})
    with pytest.raises(StateBackendError, match="holds the state of another store"):
        Engine(other)
    with pytest.raises(StateBackendError, match="different settings"):
        Engine(Settings(**{**settings.__dict__, "cooc_window": 5}))
    # Recovery: rebuild the namespace from the log of store b (empty).
    state = RedisState(other)
    store = SQLiteStore(other.db_path)
    state.rebuild(store)
    assert state.applied == 0
    store.close()
    state.close()
    Engine(other).close()


def test_rebuild_reproduces_the_same_answers(tmp_path, redis_server):
    settings = redis_settings(redis_server, tmp_path)
    engine = Engine(settings)
    seed_engine(engine)
    before = [listing(engine.recommend(f"fan-{u}", 5)) for u in range(8)]
    engine.state.rebuild(engine.store)
    assert [listing(engine.recommend(f"fan-{u}", 5)) for u in range(8)] == before
    engine.close()


def test_redis_down_at_start_is_one_clear_error(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(StateBackendError, match=f"cannot use Redis state at {url}"):
        Engine(Settings(data_dir=tmp_path, state_url=url))
    env = {**os.environ, "PULSEREC_STATE_URL": url, "PYTHONPATH": SRC, "COLUMNS": "300"}
    result = subprocess.run([sys.executable, "-m", "pulserec.cli.main", "stats", "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "cannot use Redis state" in lines[0], result.stdout + result.stderr


def test_bad_state_urls_are_rejected():
    with pytest.raises(ValueError, match="state_url must be a redis://"):
        Settings.load(None, state_url="http://localhost:6379")


def test_a_process_read_cache_never_serves_stale_rows_or_vectors(tmp_path, redis_server):
    """A process keeps the rows and vectors it read; another process's writes must show in its
    next answer exactly as in a fresh process's."""
    settings = redis_settings(redis_server, tmp_path)
    reader, writer = Engine(settings), Engine(settings)
    seed_engine(writer)
    users = [f"fan-{u}" for u in range(8)]
    for round_ in range(3):
        cached = {u: listing(reader.recommend(u, 5)) for u in users}  # fills the reader's cache
        with reader.state.reading():
            counts_before = reader.state.popularity.events.copy()  # cached until a write bumps vec_ver
        for i in range(200):  # one commit each: many appends per row
            writer.ingest([Event(f"w{round_}-{i}", f"other-{i % 30}", f"{'shoe' if i % 3 else 'book'}-{i % 5}", "click",
                                 NOW + 10_000 + round_ * 1000 + i)])
        fresh = Engine(settings)
        try:
            assert {u: listing(reader.recommend(u, 5)) for u in users} == {u: listing(fresh.recommend(u, 5)) for u in users}
            assert cached != {u: listing(fresh.recommend(u, 5)) for u in users}  # the writes did change answers
            with reader.state.reading(), fresh.state.reading():
                counts = reader.state.popularity.events
                assert (counts == fresh.state.popularity.events).all() and counts.sum() == counts_before.sum() + 200
        finally:
            fresh.close()
    assert reader.state.read_cache.rows and reader.state.read_cache.vec_ver
    reader.close()
    writer.close()


def test_per_event_writes_ask_no_script_exists_and_survive_a_script_flush(redis_server):
    """The per-event path pipelines EVALSHA as it is (redis-py asks SCRIPT EXISTS before every
    pipeline holding a registered script: a round trip per wave); after a SCRIPT FLUSH the
    calls answered NOSCRIPT are run again, once each."""
    import redis

    state = RedisState(redis_settings(redis_server))
    admin = redis.Redis.from_url(redis_server.url)
    try:
        state.apply(Event("warm", "u-0", "item-0", "view", NOW))
        before = admin.info("commandstats").get("cmdstat_script|exists", {}).get("calls", 0)
        assert state.apply_many([(Event(f"e{i}", f"u-{i}", f"item-{i}", "view", NOW + i), 0) for i in range(5)]) == [True] * 5
        assert admin.info("commandstats").get("cmdstat_script|exists", {}).get("calls", 0) == before
        admin.script_flush()
        assert state.apply_many([(Event(f"f{i}", f"u-{i}", f"item-{i}", "view", NOW + 10 + i), 0) for i in range(5)]) == [True] * 5
        assert state.apply_many([(Event("f0", "u-0", "item-0", "view", NOW + 10), 0)]) == [False]  # applied once
        assert state.applied == 11
    finally:
        admin.close()
        state.close()


def test_recent_columns_are_the_touches_as_columns(redis_server):
    """RedisHistories.recent_columns (what the query is built from) holds the same values as
    the touches `recent` decodes, in a request's view and outside one."""
    from pulserec.models.query import touch_columns

    state = RedisState(redis_settings(redis_server))
    try:
        state.apply_many([(Event(f"c{i}", "owner", f"item-{i % 4}", "view" if i % 3 else "click", NOW + i), 0)
                          for i in range(9)])
        owner = state.owners.get("owner")
        expected = touch_columns(state.histories.recent(owner))
        with state.reading("owner"):
            for columns in (state.histories.recent_columns(owner), state.histories.recent_columns(owner)):
                assert [c.tolist() for c in columns] == [c.tolist() for c in expected]
                assert columns[0].dtype == np.int64 and not columns[1].flags.writeable
        assert [c.tolist() for c in state.histories.recent_columns(owner)] == [c.tolist() for c in expected]
        assert [len(c) for c in state.histories.recent_columns(None)] == [0, 0, 0, 0]
    finally:
        state.close()
