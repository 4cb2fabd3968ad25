"""The hot routes run their engine call on the event loop when the engine's lock is free
(serving/routes/deps.py:on_engine, Engine.runs_here / turn_now), and never block the loop
while another thread holds the lock: they wait beside it, then in the thread pool."""

from __future__ import annotations

import sys
import threading
import time

import httpx

from pulserec.engine import Engine


def test_turn_now_holds_the_lock_only_when_no_other_thread_has_it(engine: Engine):
    with engine.turn_now() as now:
        assert now
        held_elsewhere = []
        probe = threading.Thread(target=lambda: held_elsewhere.append(engine.lock.acquire(blocking=False)))
        probe.start()
        probe.join()
        assert held_elsewhere == [False]  # held for the block
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with engine.lock:
            taken.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait(5)
    try:
        with engine.turn_now() as now:
            assert not now
    finally:
        release.set()
        holder.join()
    assert engine.lock.acquire(blocking=False)  # nothing left held by turn_now
    engine.lock.release()


def test_writes_run_here_only_without_a_bulk_import(engine: Engine):
    assert engine.runs_here() and engine.runs_here(writes=True)
    engine.bulk.depth += 1  # what BulkIngest.ingest counts while its writer may hold SQLite's write lock
    try:
        assert engine.runs_here() and not engine.runs_here(writes=True)
    finally:
        engine.bulk.depth -= 1


def _listen(engine: Engine) -> list[str]:
    threads: list[str] = []
    engine.ingest_listeners.append(lambda *_: threads.append(threading.current_thread().name))
    return threads


def test_events_and_reads_run_on_the_loop_when_the_lock_is_free(engine, fill, shop, server):
    fill(engine)
    ingested_in = _listen(engine)
    user, item = str(shop.events["user_id"].iloc[0]), shop.items[0].item_id
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for k in range(5):
            assert http.post("/events", json={"user_id": user, "item_id": item, "type": "view"}).status_code == 200
            assert http.get(f"/users/{user}/recommendations?n=5").status_code == 200
            assert http.get(f"/users/{user}/profile").status_code == 200
    assert ingested_in == [server.thread.name] * 5  # the uvicorn loop's thread, no worker thread


def test_a_lock_held_elsewhere_does_not_block_the_loop(engine, fill, shop, server):
    fill(engine)
    ingested_in = _listen(engine)
    user, item = str(shop.events["user_id"].iloc[0]), shop.items[0].item_id
    answers: dict[str, httpx.Response] = {}

    def ask(name: str, method: str, path: str, **kwargs) -> threading.Thread:
        def run() -> None:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                answers[name] = http.request(method, path, **kwargs)
        thread = threading.Thread(target=run)
        thread.start()
        return thread

    with engine.lock:  # another thread's hold: a snapshot's fork, a model install, a plain-def write
        waiting = [ask("recommend", "GET", f"/users/{user}/recommendations?n=5"),
                   ask("similar", "GET", f"/items/{item}/similar?n=5"),
                   ask("events", "POST", "/events", json={"user_id": user, "item_id": item, "type": "view"})]
        deadline = time.monotonic() + 10
        while len(_waiting_in_engine()) < len(waiting) and time.monotonic() < deadline:
            time.sleep(0.05)  # the requests poll on the loop first, then wait in worker threads
        assert len(_waiting_in_engine()) == len(waiting)
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert http.get("/health").status_code == 200  # answered by the loop while the lock is held
        assert all(t.is_alive() for t in waiting)
    for thread in waiting:
        thread.join(10)
    assert {name: r.status_code for name, r in answers.items()} == {"recommend": 200, "similar": 200, "events": 200}
    assert ingested_in and ingested_in[0].startswith("AnyIO worker thread")


def _waiting_in_engine() -> list[str]:
    """Names of the threads (not this one) inside an engine method: waiting for its lock here."""
    names = {t.ident: t.name for t in threading.enumerate()}
    found = []
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident():
            continue
        while frame is not None and not frame.f_code.co_filename.endswith("engine/core.py"):
            frame = frame.f_back
        if frame is not None:
            found.append(names.get(ident, "?"))
    return found
