"""Several engines over one data dir (what `serve --workers N` runs): each is a replica of the log.

In-process, two ReplicaEngines stand for two worker processes (separate SQLite connections)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.records import ItemRecord
from pulserec.replica import BULK_BACKLOG, ReplicaEngine

USERS = [f"u{k}" for k in range(6)]
ITEMS = [f"i{k}" for k in range(15)]


@pytest.fixture
def workers(tmp_path):
    settings = Settings.load(tmp_path, follow_log=True)
    a, b = ReplicaEngine(settings), ReplicaEngine(settings)
    yield a, b
    a.close()
    b.close()


def events(prefix: str, count: int, seed: int, start: float = 1.7e9) -> list[Event]:
    rng = random.Random(seed)
    return [Event(f"{prefix}-{k}", rng.choice(USERS), rng.choice(ITEMS), rng.choice(["view", "click", "purchase"]),
                  start + k) for k in range(count)]


def assert_same_state(engine: ReplicaEngine, reference: Engine) -> None:
    engine.sync()  # reads through the engine's methods sync by themselves; raw state access does not
    assert engine.state.applied == reference.state.applied
    for user in USERS:
        assert engine.profile(user) == reference.profile(user), user
        assert [r.item_id for r in engine.recommend(user, 5).items] == [r.item_id for r in reference.recommend(user, 5).items]
    for item in ITEMS:
        assert engine.item(item) == reference.item(item), item
    n = len(reference.state.popularity.total)
    np.testing.assert_allclose(engine.state.popularity.total[:n], reference.state.popularity.total[:n])
    for item in ITEMS:  # co-occurrence, compared through what it serves (its storage layout may differ)
        mine, theirs = engine.similar(item, 10) or [], reference.similar(item, 10) or []
        np.testing.assert_allclose([r.score for r in mine], [r.score for r in theirs], rtol=1e-6)


def rebuilt(settings: Settings) -> Engine:
    return Engine(settings.with_overrides(follow_log=False))


def test_a_write_on_one_worker_is_read_on_the_other(workers):
    a, b = workers
    a.ingest([Event("e1", "alice", "i1", "purchase", 1.7e9)])
    assert b.profile("alice")["counts_by_type"] == {"purchase": 1}
    assert b.item("i1")["events"] == 1
    assert b.recommend("alice", 5).cold_start is False


def test_interleaved_writes_converge_to_the_log(workers):
    a, b = workers
    for round_ in range(6):
        a.ingest(events(f"a{round_}", 15, seed=round_, start=1.7e9 + 100 * round_))
        b.ingest(events(f"b{round_}", 10, seed=100 + round_, start=1.7e9 + 100 * round_ + 50))
    reference = rebuilt(a.settings)
    assert_same_state(a, reference)
    assert_same_state(b, reference)
    reference.close()


def test_duplicates_across_workers_count_once(workers):
    a, b = workers
    batch = events("dup", 40, seed=7)
    assert a.ingest(batch).accepted == 40
    assert b.ingest(batch).accepted == 0
    assert a.ingest(batch[::-1]).accepted == 0
    assert a.state.applied == b.state.applied == 40


def test_catalogue_changes_reach_every_worker(workers):
    a, b = workers
    a.put_items([ItemRecord(item_id=item, title=item.upper(), category="c") for item in ITEMS])
    b.ingest(events("x", 50, seed=1))
    a.put_items([ItemRecord(item_id="i1", title="Gone", category="c", active=False)])
    assert b.item("i1")["active"] is False and b.item("i1")["title"] == "Gone"
    assert "i1" not in {r.item_id for r in b.recommend("u1", 15).items}
    assert a.item("i2")["title"] == "I2"


def test_a_deletion_reaches_every_worker(workers):
    a, b = workers
    a.ingest(events("x", 60, seed=2))
    assert b.profile("u1") is not None
    a.delete_user("u1")
    assert b.profile("u1") is None and a.profile("u1") is None
    b.ingest(events("y", 10, seed=3, start=1.8e9))  # may reuse the deleted seqs: still applied
    reference = rebuilt(a.settings)
    assert_same_state(a, reference)
    assert_same_state(b, reference)
    reference.close()


def test_a_large_backlog_uses_the_bulk_path(workers):
    a, b = workers
    a.ingest(events("big", BULK_BACKLOG + 500, seed=4))
    reference = rebuilt(a.settings)
    assert_same_state(b, reference)
    reference.close()


def test_a_read_runs_on_the_event_loop_only_while_its_sync_is_short(workers):
    a, b = workers
    a.ingest([Event("e1", "alice", "i1", "purchase", 1.7e9)])
    assert b.runs_here()  # one event behind: the sync applies it where the read runs
    assert not b.runs_here(writes=True)  # a write may wait for another worker's SQLite write lock
    a.delete_user("alice")
    assert not b.runs_here()  # the sync rebuilds the state after another worker's deletion: in a thread
    b.sync()
    assert b.runs_here()
