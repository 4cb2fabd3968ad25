"""Deleting users while the online state is rebuilt, over real HTTP: one rebuild at a time (409 for a
second), and the users stay deleted with every count exactly as if they had never been there."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np

from pulserec.events import Event
from pulserec.online.state import OnlineState

#: Rows per chunk while the gated rebuild reads its snapshot (the shop has 3,000 events).
CHUNK = 500


def gate_rebuild(engine, building: threading.Event, release: threading.Event) -> None:
    """Make the next rebuild pause after its first chunk of the log until `release` is set."""
    original = engine.rebuilds._fresh_state

    def gated(source, upto, *rest):
        read = source.iter_events

        def iter_events(**kwargs):
            chunks = read(chunk=CHUNK, **kwargs)
            yield next(chunks)
            building.set()
            assert release.wait(timeout=30), "the test never released the rebuild"
            yield from chunks

        source.iter_events = iter_events
        return original(source, upto, *rest)

    engine.rebuilds._fresh_state = gated


def wait_until_idle(engine, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while any(job.state == "running" for job in engine.jobs.jobs()):
        assert time.monotonic() < deadline, "the rebuild did not finish"
        time.sleep(0.02)


def assert_state_equals_a_fresh_replay(engine) -> None:
    replay = OnlineState(engine.settings)
    replay.restore(engine.store)
    state = engine.state
    assert state.applied == replay.applied == engine.store.event_count()
    ids = [state.catalog.item_ids.id_of(i) for i in range(len(state.catalog))]
    mine = dict(zip(ids, state.popularity.total[: len(ids)]))
    theirs = {replay.catalog.item_ids.id_of(i): replay.popularity.total[i] for i in range(len(replay.catalog))}
    assert set(theirs) <= set(mine)
    assert np.allclose([mine[i] for i in theirs], list(theirs.values()), atol=1e-9)
    assert np.allclose([v for i, v in mine.items() if i not in theirs], 0.0, atol=1e-9)
    with engine.lock:  # stored pairs, each once: bulk updates may still wait in the middle level
        state.cooc.compact()
        replay.cooc.compact()
        assert state.cooc.nnz == replay.cooc.nnz


def test_deleted_users_stay_deleted_through_a_rebuild_and_a_second_rebuild_is_refused(engine, fill, shop, server):
    fill(engine)
    victims = [str(u) for u in shop.events["user_id"].value_counts().index[:5]]
    building, release = threading.Event(), threading.Event()
    gate_rebuild(engine, building, release)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.post("/admin/rebuild").status_code == 202
        assert building.wait(timeout=30)
        second = http.post("/admin/rebuild")
        assert second.status_code == 409 and "already running" in second.json()["detail"]
        for user in victims:
            assert http.delete(f"/users/{user}").json()["deleted_events"] > 0
        release.set()
        wait_until_idle(engine)
        assert engine.counters["state.rebuilds"] == 1
        for user in victims:
            assert http.get(f"/users/{user}/profile").status_code == 404
            assert http.get(f"/users/{user}/recommendations").json()["history_size"] == 0
        assert_state_equals_a_fresh_replay(engine)
        assert http.post("/admin/rebuild").status_code == 202  # the next one may start
        wait_until_idle(engine)
    assert engine.counters["state.rebuilds"] == 2


def test_a_user_who_returns_after_deletion_during_a_rebuild_keeps_the_new_events(engine, fill, shop):
    fill(engine)
    user = str(shop.events["user_id"].value_counts().index[0])
    building, release = threading.Event(), threading.Event()
    gate_rebuild(engine, building, release)
    worker = threading.Thread(target=engine.rebuilds.rebuild)
    worker.start()
    assert building.wait(timeout=30)
    engine.delete_user(user)
    engine.ingest([Event("back-1", user, shop.items[0].item_id, "purchase", float(shop.events["ts"].max()) + 1)])
    release.set()
    worker.join(timeout=30)
    assert engine.profile(user)["counts_by_type"] == {"purchase": 1}
    assert_state_equals_a_fresh_replay(engine)
