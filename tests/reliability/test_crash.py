"""Durability: every acknowledged event survives SIGKILL of the server, and its effects come back.

The server runs as a real `pulserec serve` process; the test streams events over HTTP, notes
every POST that got a 200, kills the process group mid-stream, restarts it on the same data
dir and compares the store and the rebuilt state with what was acknowledged."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from pulserec.runtime.process import SRC_DIR, ServerProcess

USERS = [f"u{k}" for k in range(8)]
ITEMS = [f"i{k}" for k in range(24)]
TYPES = ["view", "view", "click", "add_to_cart", "purchase"]
BASE_TS = time.time() - 86_400
STREAM_LIMIT_S = 8.0  # the stream stops by then even if the kill misfired


def make_batch(number: int, rng: random.Random) -> list[dict]:
    return [{"event_id": f"e{number}-{j}", "user_id": rng.choice(USERS), "item_id": rng.choice(ITEMS),
             "type": rng.choice(TYPES), "timestamp": BASE_TS + number + j / 10} for j in range(rng.randint(1, 3))]


def stream_until_killed(server: ServerProcess, kill_after_s: float, seed: int) -> tuple[dict[str, dict], set[str]]:
    """POST batches until the server dies; returns (acknowledged events by id, ids of every event sent)."""
    rng = random.Random(seed)
    acked: dict[str, dict] = {}
    sent: set[str] = set()
    killer = threading.Timer(kill_after_s, server.kill, args=(signal.SIGKILL,))
    killer.start()
    deadline = time.monotonic() + STREAM_LIMIT_S
    try:
        with httpx.Client(base_url=server.url, timeout=5.0) as http:
            for number in range(1_000_000):
                if time.monotonic() > deadline:
                    break
                batch = make_batch(number, rng)
                sent.update(e["event_id"] for e in batch)
                try:
                    answer = http.post("/events", json={"events": batch})
                except httpx.HTTPError:
                    break  # the server is gone
                assert answer.status_code == 200, answer.text
                acked.update((e["event_id"], e) for e in batch)
    finally:
        killer.join()
    return acked, sent


def stored_event_ids(data_dir: Path) -> set[str]:
    with sqlite3.connect(f"file:{data_dir / 'pulserec.db'}?mode=ro", uri=True) as db:
        return {row[0] for row in db.execute("SELECT event_id FROM events")}


def stored_events(data_dir: Path) -> list[dict]:
    with sqlite3.connect(f"file:{data_dir / 'pulserec.db'}?mode=ro", uri=True) as db:
        return [dict(zip(("event_id", "user_id", "item_id", "type"), row))
                for row in db.execute("SELECT event_id, user_id, item_id, type FROM events ORDER BY seq")]


def seed_catalogue(server: ServerProcess) -> None:
    items = [{"item_id": item, "title": item.upper(), "category": f"c{k % 3}"} for k, item in enumerate(ITEMS)]
    httpx.post(f"{server.url}/items", json={"items": items}, timeout=10).raise_for_status()


@pytest.mark.parametrize("workers", [1, 2])
def test_acknowledged_events_survive_sigkill(tmp_path, workers):
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, workers=workers).start()
    try:
        seed_catalogue(server)
        acked, sent = stream_until_killed(server, kill_after_s=1.5, seed=workers)
    finally:
        server.kill()
    assert len(acked) > 50, "the stream was too short to mean anything"
    assert len(sent) > len(acked), "the kill did not interrupt the stream"
    stored = stored_event_ids(data_dir)
    assert set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged events lost"
    assert stored <= sent

    expected = stored_events(data_dir)  # the effects must match the log: acknowledged + maybe in-flight
    with ServerProcess(data_dir, workers=workers) as restarted, httpx.Client(base_url=restarted.url, timeout=10) as http:
        stats = http.get("/stats").json()
        assert stats["events_stored"] == stats["events_applied"] == len(stored)
        check_state_matches(http, expected)
        again = http.post("/events", json={"events": list(acked.values())[:500]}).json()
        assert again["accepted"] == 0 and again["duplicates"] == min(len(acked), 500)


def check_state_matches(http: httpx.Client, events: list[dict]) -> None:
    """Profiles, item counts and recommendations reflect exactly `events`."""
    by_user: dict[str, Counter[str]] = {}
    seen: dict[str, set[str]] = {}
    for event in events:
        by_user.setdefault(event["user_id"], Counter())[event["type"]] += 1
        seen.setdefault(event["user_id"], set()).add(event["item_id"])
    for user, counts in by_user.items():
        assert http.get(f"/users/{user}/profile").json()["counts_by_type"] == dict(counts), user
        recs = http.get(f"/users/{user}/recommendations", params={"n": 5}).json()
        assert recs["cold_start"] is False and recs["history_size"] > 0
        assert not {r["item_id"] for r in recs["items"]} & seen[user], "a seen item was recommended"
    per_item = Counter(event["item_id"] for event in events)
    for item in ITEMS:
        assert http.get(f"/items/{item}").json()["events"] == per_item.get(item, 0), item


_CRASH_MID_TRANSACTION = """
import os, signal, sys
from pulserec.store import SQLiteStore

store = SQLiteStore(sys.argv[1])

def rows():
    for k in range(10_000):
        if k == 500:  # 500 rows inserted, not committed: die like a power cut of the process
            os.kill(os.getpid(), signal.SIGKILL)
        yield (f"doomed-{k}", "u1", "i1", "view", 1.7e9 + k, None, None, None, None, None, None)

store.append_events(rows())
"""


def test_a_write_killed_mid_transaction_leaves_nothing(tmp_path):
    from pulserec.config import Settings
    from pulserec.engine import Engine
    from pulserec.events import Event

    settings = Settings.load(tmp_path)
    engine = Engine(settings)
    engine.ingest([Event(f"kept-{k}", "u1", "i1", "view", 1.6e9 + k) for k in range(20)])
    engine.close()
    child = subprocess.run([sys.executable, "-c", _CRASH_MID_TRANSACTION, str(settings.db_path)],
                           env={**os.environ, "PYTHONPATH": str(SRC_DIR)}, capture_output=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()

    with sqlite3.connect(settings.db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM events WHERE event_id LIKE 'doomed-%'").fetchone()[0] == 0
    reopened = Engine(settings)
    assert reopened.store.event_count() == reopened.state.applied == 20
    assert reopened.profile("u1")["counts_by_type"] == {"view": 20}
    reopened.close()


def test_a_failing_batch_is_rolled_back_whole(engine):
    from pulserec.events import Event

    good = [Event(f"ok-{k}", "u1", "i1", "view", 1.6e9 + k).row() for k in range(10)]
    broken = (*good[0][:3], None, *good[0][4:])  # type NULL violates NOT NULL mid-batch
    with pytest.raises(sqlite3.IntegrityError):
        engine.store.append_events([*good[:5], ("bad", *broken[1:]), *good[5:]])
    assert engine.store.event_count() == 0
    engine.store.append_events(good)  # the store is usable afterwards and the good rows were not kept
    assert engine.store.event_count() == 10
