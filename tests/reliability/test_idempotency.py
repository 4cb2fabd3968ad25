"""Duplicate deliveries, concurrently from several threads, never double-count.

Run against one in-process server and against `pulserec serve --workers 2` (duplicates then
race across processes, through SQLite's unique event_id)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from pulserec.runtime.process import ServerProcess

THREADS = 6
EVENTS = 240
BASE_TS = time.time() - 3600


def the_events() -> list[dict]:
    rng = random.Random(11)
    return [{"event_id": f"dup-{k}", "user_id": f"u{rng.randrange(5)}", "item_id": f"i{rng.randrange(12)}",
             "type": rng.choice(["view", "click", "purchase"]), "timestamp": BASE_TS + k} for k in range(EVENTS)]


def deliver_concurrently(url: str, events: list[dict]) -> int:
    """Every thread sends every event (own order, own batch sizes, own connection); returns total accepted."""
    barrier = threading.Barrier(THREADS)

    def deliver(thread: int) -> int:
        rng = random.Random(thread)
        mine = events[:]
        rng.shuffle(mine)
        accepted = 0
        with httpx.Client(base_url=url, timeout=30) as http:
            barrier.wait()
            start = 0
            while start < len(mine):
                size = rng.randint(1, 25)
                answer = http.post("/events", json={"events": mine[start:start + size]})
                assert answer.status_code == 200, answer.text
                accepted += answer.json()["accepted"]
                start += size
        return accepted

    with ThreadPoolExecutor(THREADS) as pool:
        return sum(pool.map(deliver, range(THREADS)))


def check_counted_once(clients: list[httpx.Client], events: list[dict]) -> None:
    """Through each client (each worker): every event stored and applied exactly once."""
    per_user: dict[str, Counter[str]] = {}
    for event in events:
        per_user.setdefault(event["user_id"], Counter())[event["type"]] += 1
    per_item = Counter(event["item_id"] for event in events)
    for http in clients:
        stats = http.get("/stats").json()
        assert stats["events_stored"] == stats["events_applied"] == len(events)
        for user, counts in per_user.items():
            assert http.get(f"/users/{user}/profile").json()["counts_by_type"] == dict(counts)
        for item, count in per_item.items():
            assert http.get(f"/items/{item}").json()["events"] == count


def test_concurrent_duplicates_in_one_process(server):
    events = the_events()
    assert deliver_concurrently(server.url, events) == EVENTS
    with httpx.Client(base_url=server.url) as http:
        check_counted_once([http], events)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("workers") / "data", workers=2) as server:
        yield server


def test_concurrent_duplicates_across_worker_processes(two_workers):
    events = the_events()
    assert deliver_concurrently(two_workers.url, events) == EVENTS
    clients = two_workers.connection_per_worker()
    try:
        check_counted_once(clients, events)
    finally:
        for client in clients:
            client.close()


def test_every_worker_reads_every_write_at_once(two_workers):
    """Write through one worker, read through each: item, events and deletion visible at once."""
    readers = two_workers.connection_per_worker()
    try:
        for writer in readers:
            writer.put("/items/fresh-1", json={"title": f"Fresh {id(writer)}", "category": "new"}).raise_for_status()
            for reader in readers:
                assert reader.get("/items/fresh-1").json()["title"] == f"Fresh {id(writer)}"
        for k in range(12):
            writer = readers[k % 2]
            writer.post("/events", json={"user_id": "reader", "item_id": "fresh-1", "type": "view",
                                         "timestamp": BASE_TS + 10_000 + k}).raise_for_status()
            for reader in readers:
                assert reader.get("/users/reader/profile").json()["event_count"] == k + 1
                assert reader.get("/items/fresh-1").json()["events"] == k + 1
        readers[1].delete("/users/reader").raise_for_status()
        for reader in readers:
            assert reader.get("/users/reader/profile").status_code == 404
            assert reader.get("/items/fresh-1").json()["events"] == 0
    finally:
        for reader in readers:
            reader.close()
