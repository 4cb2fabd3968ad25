"""A deletion made by one process is seen by another on the same Redis state (issue 13.7):
`pulserec serve` in a child process and an engine in this one, on one data dir and namespace.

The other process keeps per-process copies (owner indices, the read cache): before, it kept
mapping the deleted id to its old slot, so it wrote a returning user's events there, where the
deleting process could neither see nor delete them."""

from __future__ import annotations

import time

import httpx
import pytest
from threadpoolctl import threadpool_limits

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.runtime.process import ServerProcess

from test_deletion_everywhere import files_with, redis_with

VICTIM = "victim-2c81d0"


@pytest.fixture
def two_processes(tmp_path, redis_server, fill, shop):
    """This process's engine (the victim's six purchases, ALS trained on them and saved) and
    `pulserec serve` on the same data dir and Redis namespace (it loads the saved ALS)."""
    namespace = redis_server.namespace()
    settings = Settings.load(tmp_path / "data", state_url=redis_server.url, state_namespace=namespace)
    here = Engine(settings)
    fill(here, upto=600)
    t0 = float(shop.events["ts"].iloc[599])
    here.ingest([Event(f"v{i}", VICTIM, shop.items[i].item_id, "purchase", t0 + i) for i in range(6)])
    with threadpool_limits(limits=1):
        here.training.train(["als"])
    there = ServerProcess(tmp_path / "data", env={"PULSEREC_STATE_URL": redis_server.url,
                                                   "PULSEREC_STATE_NAMESPACE": namespace,
                                                   "PULSEREC_AUTO_TRAIN_MIN_EVENTS": "0", "OPENBLAS_NUM_THREADS": "1"})
    try:
        there.start()
        yield here, there, t0
    finally:
        there.stop()
        here.close()


def test_the_other_process_forgets_the_user_and_keeps_a_returning_one_deletable(two_processes, shop):
    here, there, t0 = two_processes
    with httpx.Client(base_url=there.url, timeout=60) as http:
        assert http.get(f"/users/{VICTIM}/profile").json()["event_count"] == 6
        assert http.get(f"/users/{VICTIM}/recommendations").json()["history_size"] > 0
        assert here.delete_user(VICTIM) == 6
        assert http.get(f"/users/{VICTIM}/profile").status_code == 404
        assert http.get(f"/users/{VICTIM}/recommendations").json()["history_size"] == 0
        # The user comes back through the other process, in one batch (its bulk path).
        back = [{"event_id": f"back{i}", "user_id": VICTIM, "item_id": shop.items[10 + i].item_id, "type": "view",
                 "timestamp": t0 + 100 + i} for i in range(20)]
        assert http.post("/events", json={"events": back}).status_code == 200
        assert http.get(f"/users/{VICTIM}/profile").json()["event_count"] == 20
        assert here.profile(VICTIM)["event_count"] == 20  # written where this process finds it
        assert here.delete_user(VICTIM) == 20
        assert redis_with(here.state, VICTIM.encode()) == []
        assert http.get(f"/users/{VICTIM}/profile").status_code == 404


def test_the_other_process_stops_using_and_retrains_a_model_holding_the_user(two_processes, tmp_path):
    """The deleting process stops before it retrains; the other one notices the deletion at its
    next read, stops using the victim's ALS row and retrains ALS without them (a job of its own)."""
    here, there, _ = two_processes
    here.training.retrain_forgotten = lambda *args, **kwargs: None  # this process never retrains
    assert files_with(tmp_path / "data" / "models", VICTIM.encode())
    with httpx.Client(base_url=there.url, timeout=60) as http:
        assert http.get(f"/users/{VICTIM}/recommendations", params={"strategy": "als"}).status_code == 200
        deleted_at = time.time()
        here.delete_user(VICTIM)
        assert http.get("/users/u0001/recommendations", params={"strategy": "als"}).status_code == 200

        def retrained() -> bool:
            return any(job["kind"] == "train" and job["state"] == "succeeded" and job["started_at"] >= deleted_at
                       for job in http.get("/jobs").json()["jobs"])

        deadline = time.monotonic() + 120
        while not retrained():
            assert time.monotonic() < deadline, http.get("/jobs").json()
            time.sleep(0.1)
    assert files_with(tmp_path / "data", VICTIM.encode()) == []
    assert "saved models hold 1 users the log no longer has" in there.log_tail()
