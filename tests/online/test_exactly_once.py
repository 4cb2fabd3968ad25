"""Every stored event is applied to the Redis state exactly once, whatever fails: Redis killed
(with and without persistence), stalled past the client timeout, restarted empty. At the end
`events_applied == events_stored` and the answers equal those of a state rebuilt from the log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from pulserec.config import Settings
from pulserec.engine import Engine, StoredNotApplied
from pulserec.events import Event
from pulserec.records import ItemRecord
from pulserec.online.redis.connection import StateUnavailable
from pulserec.serving.server import BackgroundServer

from redis_faults import RedisProcess

NOW = time.time() - 3600
USERS, ITEMS = 12, 30


def batch(start: int, n: int) -> list[Event]:
    """n events of 12 users over 30 items (deterministic)."""
    return [Event(f"e{i}", f"u{i % USERS}", f"item-{(i * 7 + i // USERS) % ITEMS}", ("view", "click", "add_to_cart")[i % 3],
                  NOW + i) for i in range(start, start + n)]


def engine_on(tmp_path, url: str, **overrides) -> Engine:
    # A long interval: the tests run the supervisor's check themselves, at the moments they choose.
    settings = Settings(data_dir=tmp_path, state_url=url, state_namespace="exact", state_timeout_s=0.5,
                        state_sync_interval_s=3600, **overrides)
    engine = Engine(settings)
    if not engine.state.catalog.get("item-0"):
        engine.put_items([ItemRecord(f"item-{i}", title=f"Item {i}", category=f"c{i % 3}") for i in range(ITEMS)])
    return engine


@contextmanager
def redis_and_engine(tmp_path, aof: bool = False) -> Iterator[tuple[RedisProcess, Engine]]:
    """A fresh redis-server and an engine on it; both stopped at the end (the server resumed
    first if a test left it paused, so that closing the engine does not wait on it)."""
    server = RedisProcess(tmp_path, aof)
    engine = engine_on(tmp_path, server.url)
    try:
        yield server, engine
    finally:
        if server.process is not None and server.process.poll() is None:
            server.resume()
        engine.close()
        server.stop()


def ingest_through(engine: Engine, events: list[Event], size: int = 10) -> int:
    """POST-like batches; returns how many were answered 'stored, not applied'."""
    refused = 0
    for start in range(0, len(events), size):
        try:
            engine.ingest(events[start:start + size])
        except StoredNotApplied as exc:
            assert exc.result.accepted == len(events[start:start + size])
            refused += 1
    return refused


def listing(engine: Engine) -> dict[str, list[tuple[str, float]]]:
    return {f"u{u}": [(r.item_id, round(r.score, 9)) for r in engine.recommend(f"u{u}", 8).items] for u in range(USERS)}


def assert_level_with_the_log(engine: Engine, tmp_path) -> None:
    stats = engine.stats()
    assert stats["events_applied"] == stats["events_stored"]
    rebuilt = Engine(Settings(data_dir=tmp_path))  # in memory, replayed from the same log
    try:
        assert listing(engine) == listing(rebuilt)
        assert engine.stats()["events_applied"] == rebuilt.stats()["events_applied"]
    finally:
        rebuilt.close()


@pytest.mark.parametrize("aof", [False, True], ids=["no-persistence", "aof"])
def test_redis_killed_mid_stream_and_restarted(tmp_path, aof):
    with redis_and_engine(tmp_path, aof) as (server, engine):
        assert ingest_through(engine, batch(0, 200)) == 0
        server.kill()
        assert ingest_through(engine, batch(200, 60)) == 6  # stored, answered 'not applied'
        assert engine.supervisor.check().status == "unreachable"
        assert engine.health.readiness()["status"] == "degraded"
        with pytest.raises(Exception):  # noqa: B017 - a read cannot be served (503 over HTTP)
            engine.recommend("u1", 5)
        server.start()  # empty without persistence; the AOF's state (up to a second old) with it
        health = engine.supervisor.check()
        assert health.status == "ok", health
        assert ingest_through(engine, batch(260, 40)) == 0
        assert engine.health.readiness()["status"] == "ok"
        assert_level_with_the_log(engine, tmp_path)


def test_a_lost_state_is_never_served_as_if_it_were_real(tmp_path):
    with redis_and_engine(tmp_path) as (server, engine):
        ingest_through(engine, batch(0, 100))
        server.kill()
        server.start()  # back, empty
        with pytest.raises(StateUnavailable, match="lost"):
            engine.recommend("u1", 5)
        with pytest.raises(StoredNotApplied):
            engine.ingest(batch(100, 5))
        assert engine.supervisor.check().status == "ok"  # rebuilt from the log
        assert engine.item("item-3")["title"] == "Item 3"
        assert_level_with_the_log(engine, tmp_path)


def test_redis_stalled_past_the_client_timeout(tmp_path):
    with redis_and_engine(tmp_path) as (server, engine):
        ingest_through(engine, batch(0, 50))
        server.pause()
        started = time.monotonic()
        assert ingest_through(engine, batch(50, 20)) == 2
        assert time.monotonic() - started < 6  # each write gave up after the 0.5 s timeout (+1 retry)
        assert engine.supervisor.check().status == "unreachable"
        server.resume()
        assert engine.supervisor.check().status == "ok"
        assert_level_with_the_log(engine, tmp_path)


def test_a_process_killed_between_store_and_apply_is_repaired_by_another(tmp_path):
    server = RedisProcess(tmp_path, aof=False)
    first, second = engine_on(tmp_path, server.url), engine_on(tmp_path, server.url)
    try:
        ingest_through(first, batch(0, 40))
        first.store.append_events([e.row() for e in batch(40, 15)])  # stored; the process died before applying
        ingest_through(second, batch(55, 30))  # later events: applied after the orphans, in log order
        assert second.stats()["events_applied"] == 85
        assert_level_with_the_log(second, tmp_path)
    finally:
        first.close()
        second.close()
        server.stop()


def as_json(events: list[Event]) -> list[dict]:
    return [{"event_id": e.event_id, "user_id": e.user_id, "item_id": e.item_id, "type": e.type, "timestamp": e.ts}
            for e in events]


def test_http_answers_honestly_while_redis_is_down(tmp_path):
    with redis_and_engine(tmp_path) as (server, engine):
        http = BackgroundServer(engine).start()
        try:
            body = as_json(batch(0, 3))
            assert httpx.post(f"{http.url}/events", json=body).status_code == 200
            assert httpx.get(f"{http.url}/health/ready").json()["status"] == "ok"
            server.kill()
            answer = httpx.post(f"{http.url}/events", json=as_json(batch(3, 2)), timeout=10)
            assert answer.status_code == 503 and answer.headers["Retry-After"].isdigit()
            assert answer.json()["stored"] is True and answer.json()["event_ids"] == ["e3", "e4"]
            read = httpx.get(f"{http.url}/users/u1/recommendations", timeout=10)
            assert read.status_code == 503 and "online state unavailable" in read.json()["detail"]
            assert httpx.get(f"{http.url}/health").status_code == 200  # liveness
            ready = httpx.get(f"{http.url}/health/ready")
            assert ready.status_code == 503 and ready.json()["checks"]["state"]["status"] == "unreachable"
            metrics = httpx.get(f"{http.url}/metrics", timeout=10).text
            assert "pulserec_state_backend_up 0.0" in metrics and "pulserec_state_ready 0.0" in metrics
            server.start()
            assert engine.supervisor.check().ok
            retried = httpx.post(f"{http.url}/events", json=as_json(batch(3, 2))).json()
            assert (retried["accepted"], retried["duplicates"]) == (0, 2)  # stored the first time, applied since
            assert httpx.get(f"{http.url}/health/ready").status_code == 200
            metrics = httpx.get(f"{http.url}/metrics").text
            assert "pulserec_state_backend_up 1.0" in metrics and "pulserec_state_unapplied_events 0.0" in metrics
            assert_level_with_the_log(engine, tmp_path)
        finally:
            http.stop()
