"""Issue 13.15: storage failures are JSON 507/503 naming the cause, readiness reports them, and
the server recovers when the storage does.

On main a full disk or a read-only database gave a plain-text 500 "Internal Server Error" (the
log showed "cannot rollback - no transaction is active", which hid the real error) and
/health said ok. A real server on 127.0.0.1 over a real SQLite file; the disk fills up by
SQLite's own page limit (`PRAGMA max_page_count`, the same SQLITE_FULL as a full disk, without
needing root for a small tmpfs) and the file turns read-only by `PRAGMA query_only`."""

from __future__ import annotations

import httpx
import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.serving.server import BackgroundServer


def _events(prefix: str, n: int) -> dict:
    return {"events": [{"event_id": f"{prefix}{k}", "user_id": f"u{k % 9}", "item_id": f"i{k}", "type": "view",
                        "context": {"note": "x" * 200}} for k in range(n)]}


@pytest.fixture
def served(tmp_path):
    engine = Engine(Settings.load(tmp_path))
    with BackgroundServer(engine) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        yield engine, http
    engine.close()


def _fill_up(engine: Engine) -> int:
    """Let the database grow no more; returns the old limit."""
    db = engine.store._db  # the engine's own connection: the limit is per connection
    limit = db.execute("PRAGMA max_page_count").fetchone()[0]
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    return limit


def test_a_full_disk_is_a_507_naming_it_and_readiness_recovers(served):
    engine, http = served
    assert http.post("/events", json=_events("a", 10)).status_code == 200
    assert http.get("/health/ready").json()["status"] == "ok"
    limit = _fill_up(engine)
    answer = http.post("/events", json=_events("b", 2000))
    assert answer.status_code == 507, answer.text
    body = answer.json()
    assert body["cause"] == "disk_full" and "disk holding the database is full" in body["detail"]
    assert "rollback" not in body["detail"]
    ready = http.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["checks"]["storage"]["cause"] == "disk_full"
    assert http.get("/health").status_code == 200  # liveness: the process itself is fine
    assert engine.store.event_count() == 10  # nothing half-written, nothing applied
    assert engine.stats()["events_applied"] == 10
    engine.store._db.execute(f"PRAGMA max_page_count = {limit}")  # space returns
    assert http.get("/health/ready").json()["status"] == "ok"
    assert http.post("/events", json=_events("b", 2000)).status_code == 200
    assert engine.store.event_count() == 2010


def test_a_read_only_database_is_a_503_naming_it(served):
    engine, http = served
    engine.store._db.execute("PRAGMA query_only = 1")
    answer = http.put("/items/i1", json={"title": "x"})
    assert answer.status_code == 503, answer.text
    assert answer.json()["cause"] == "read_only" and "read-only" in answer.json()["detail"]
    assert answer.headers["content-type"] == "application/json"
    assert http.post("/events", json=_events("c", 1)).json()["cause"] == "read_only"
    assert http.get("/health/ready").json()["checks"]["storage"]["ok"] is False
    engine.store._db.execute("PRAGMA query_only = 0")
    assert http.get("/health/ready").status_code == 200
    assert http.put("/items/i1", json={"title": "x"}).status_code == 200


def test_readiness_fails_below_the_free_space_threshold(tmp_path):
    """A small probe may fit on a nearly full disk where the next batch does not (seen on a full
    1 MiB tmpfs): readiness also compares the data dir's free space with `min_free_bytes`."""
    engine = Engine(Settings.load(tmp_path, min_free_bytes=1 << 62))
    with BackgroundServer(engine) as server:
        answer = httpx.get(f"{server.url}/health/ready")
    engine.close()
    assert answer.status_code == 503
    storage = answer.json()["checks"]["storage"]
    assert storage["cause"] == "disk_full" and "min_free_bytes" in storage["detail"]
