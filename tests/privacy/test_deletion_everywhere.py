"""DELETE /users/{id} over real HTTP leaves the id nowhere: not in any file under the data dir
(SQLite file and WAL, saved models), not in the served models, search or the Redis keyspace."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from threadpoolctl import threadpool_limits

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.recommend.aligned import AlignedModel
from pulserec.serving.server import BackgroundServer

VICTIM = "victim-7f3a9c"
#: Batch models that keep a row per user (factor rows, user-item matrices); quick on the shop.
MODELS = ["als", "user_knn"]


def files_with(root: Path, needle: bytes) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes())


def redis_with(state, needle: bytes) -> list[str]:
    """Keys of the state's namespace whose name or value contains `needle`."""
    client, found = state.client, []
    for key in client.scan_iter(match=state.keys.pattern, count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            values = [client.get(key)]
        elif kind == "hash":
            values = [b for pair in client.hgetall(key).items() for b in pair]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = client.zrange(key, 0, -1)
        else:
            values = [repr(client.xrange(key)).encode()] if kind == "stream" else []
        if needle in key or any(needle in (v or b"") for v in values):
            found.append(key.decode(errors="replace"))
    return found


def wait_for_jobs(engine: Engine, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while any(job.state == "running" for job in engine.jobs.jobs()):
        assert time.monotonic() < deadline, [job.as_dict() for job in engine.jobs.jobs()]
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def one_blas_thread():
    """The retrains run ALS in a job thread: with several BLAS threads per fit on a loaded
    2-core machine one fit took minutes (measured: 240 s+ where it takes 1 s alone)."""
    with threadpool_limits(limits=1):
        yield


def engine_with_victim(settings: Settings, fill, shop) -> Engine:
    """The shop, the victim's six purchases and record, and MODELS trained on them."""
    engine = Engine(settings)
    fill(engine)
    t0 = float(shop.events["ts"].max())
    engine.ingest([Event(f"v{i}", VICTIM, shop.items[i].item_id, "purchase", t0 + i) for i in range(6)])
    engine.put_user(VICTIM, {"email": f"{VICTIM}@example.com"})
    engine.training.train(MODELS)
    return engine


@pytest.fixture
def victim_engine(tmp_path, backend, fill, shop):
    engine = engine_with_victim(Settings.load(tmp_path / "data", **backend), fill, shop)
    yield engine
    engine.close()


def test_a_deleted_user_is_nowhere_under_the_data_dir_nor_in_redis(victim_engine, tmp_path):
    engine, needle = victim_engine, VICTIM.encode()
    served = [m for m in engine.service.strategies.values() if isinstance(m, AlignedModel)]
    assert {m.name for m in served} == set(MODELS) and all(VICTIM in m.model_users for m in served)
    assert files_with(tmp_path / "data", needle)  # the check below can find it
    with BackgroundServer(engine) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        shown = http.get(f"/users/{VICTIM}/recommendations", params={"strategy": "als"}).json()
        assert http.post("/impressions", json={"recommendation_id": shown["recommendation_id"]}).status_code == 200
        assert http.get("/dashboard/api/search", params={"q": "victim"}).json()["users"] == [{"user_id": VICTIM, "event_count": 6}]
        assert http.delete(f"/users/{VICTIM}").json()["deleted_events"] == 6
        late = http.post("/impressions", json={"recommendation_id": shown["recommendation_id"]})
        assert late.status_code == 422  # what was served to them is forgotten too: no impression stores their id
        # Until the retrain is done the old models never use the victim's row...
        assert http.get(f"/users/{VICTIM}/recommendations", params={"strategy": "als"}).json()["history_size"] == 0
        wait_for_jobs(engine)
        assert http.get("/dashboard/api/search", params={"q": "victim"}).json()["users"] == []
        assert http.get(f"/users/{VICTIM}/profile").status_code == 404
    # ...and then they are replaced by models trained without them, on disk too.
    served = [m for m in engine.service.strategies.values() if isinstance(m, AlignedModel)]
    assert {m.name for m in served} == set(MODELS) and not any(VICTIM in m.model_users for m in served)
    assert all(m.meta["version"] == 2 for m in served)
    assert files_with(tmp_path / "data", needle) == []
    if engine.state.shared:
        assert redis_with(engine.state, needle) == []


def test_a_training_racing_the_deletion_is_retrained(victim_engine, monkeypatch):
    """A training that read the log before the deletion installs a model holding the user: it is
    marked at once and trained again."""
    engine = victim_engine
    original = engine.training._train_once
    calls = []

    def delete_midway(names, save, progress, *params):
        calls.append(list(names))
        if len(calls) == 1:  # the log is read, then the user is deleted before the model installs
            from pulserec.recommend import training

            read = training.snapshot

            def read_then_delete(store, weights):
                snapshot = read(store, weights)
                monkeypatch.setattr(training, "snapshot", read)
                engine.delete_user(VICTIM)
                return snapshot

            monkeypatch.setattr(training, "snapshot", read_then_delete)
        return original(names, save, progress, *params)

    monkeypatch.setattr(engine.training, "_train_once", delete_midway)
    engine.training.train(["als"])
    wait_for_jobs(engine)
    als = engine.service.strategies["als"]
    assert len(calls) >= 2 and not als.holds(VICTIM) and not als.forgotten
    assert len(engine.training.forgotten) == 0


def test_a_deletion_whose_retrain_never_ran_is_retrained_at_the_next_start(tmp_path, fill, shop, backend):
    """The process stopped between the deletion and the retrain: the saved files still hold the
    user; the next start finds them absent from the log and retrains. Both states (the check
    reads the log, not the state)."""
    settings = Settings.load(tmp_path / "data", **backend)
    first = engine_with_victim(settings, fill, shop)
    first.training.retrain_forgotten = lambda *args, **kwargs: None  # the process stops before it retrains
    first.delete_user(VICTIM)
    first.close()
    assert files_with(tmp_path / "data" / "models", VICTIM.encode())
    engine = Engine(settings)
    try:
        wait_for_jobs(engine)
        assert files_with(tmp_path / "data", VICTIM.encode()) == []
        assert not any(VICTIM in m.model_users for m in engine.service.strategies.values() if isinstance(m, AlignedModel))
    finally:
        engine.close()


def test_a_retrain_refused_for_max_jobs_runs_when_the_job_in_its_way_ends(tmp_path, fill, shop):
    """With max_jobs = 1 and a rebuild running, the deletion's retrain is refused; it starts by
    itself when the rebuild ends (not at some later deletion)."""
    engine = engine_with_victim(Settings.load(tmp_path / "data", max_jobs=1), fill, shop)
    try:
        release = threading.Event()
        engine.jobs.start("rebuild", ("online-state",), lambda report: release.wait(60))
        engine.delete_user(VICTIM)
        assert [job.kind for job in engine.jobs.jobs()] == ["rebuild"]  # the retrain was refused
        assert all(m.forgotten for m in engine.service.strategies.values() if isinstance(m, AlignedModel))
        release.set()
        deadline = time.monotonic() + 240
        while any(m.holds(VICTIM) for m in engine.service.strategies.values() if isinstance(m, AlignedModel)):
            assert time.monotonic() < deadline, [job.as_dict() for job in engine.jobs.jobs()]
            time.sleep(0.05)
        wait_for_jobs(engine)
        assert "train" in [job.kind for job in engine.jobs.jobs()]
    finally:
        engine.close()
