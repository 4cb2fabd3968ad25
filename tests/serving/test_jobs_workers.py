"""Job limits across processes: `pulserec serve --workers 2` runs one training per model and
`max_jobs` jobs in all over both workers (jobs.db), and either worker answers for any job.

This test process holds a third registry on the same data dir: its job, claimed before the
requests and released after them, is what both workers must see (a real training could end
before the second request arrives)."""

from __future__ import annotations

import threading
import time

import httpx

from pulserec.recommend.jobs import JobRegistry
from pulserec.runtime.process import ServerProcess
from pulserec.store.job_table import LOST, JobTable


def test_two_workers_share_one_training_per_model_and_max_jobs(tmp_path):
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, workers=2, env={"PULSEREC_MAX_JOBS": "2"})
    with server:
        workers = server.connection_per_worker()
        now = time.time()
        events = [{"user_id": f"u{k % 7}", "item_id": f"i{k % 11}", "type": "view", "timestamp": now - 1000 + k} for k in range(200)]
        assert workers[0].post("/events", json={"events": events}).status_code == 200
        outside, release = JobRegistry(max_jobs=2, table=JobTable(data_dir / "jobs.db")), threading.Event()
        held = outside.start("train", ("als",), lambda report: release.wait(60))
        try:
            for http in workers:
                busy = http.post("/models/als/train")
                assert busy.status_code == 409 and [job["id"] for job in busy.json()["running"]] == [held.id]
                assert http.get(f"/jobs/{held.id}").json()["state"] == "running"
            second = outside.start("rebuild", ("online-state",), lambda report: release.wait(60))
            for http in workers:  # max_jobs = 2 run, neither in these workers
                full = http.post("/models/bpr/train")
                assert full.status_code == 429 and {job["id"] for job in full.json()["running"]} == {held.id, second.id}
        finally:
            release.set()
            outside.close(wait_s=30)
            outside.table.close()
        started = workers[0].post("/models/user_knn/train")
        assert started.status_code == 202, started.text
        job_id = started.json()["job_id"]
        deadline = time.monotonic() + 120
        while (job := workers[1].get(f"/jobs/{job_id}").json())["state"] == "running":  # the other worker's job
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        assert job["state"] == "succeeded", job
        assert workers[1].post("/models/als/train").status_code == 202  # free again, on any worker
        for http in workers:
            http.close()


def test_a_job_whose_process_stopped_expires_and_frees_its_target(tmp_path):
    stopped = JobTable(tmp_path / "jobs.db", lease_s=0.2)  # the process that claims it, then stops renewing
    body = {"id": "a1", "kind": "train", "target": "als", "state": "running", "progress": 0.0, "note": "",
            "started_at": time.time(), "finished_at": None, "result": None, "error": None}
    assert stopped.claim(body, ["als"], max_jobs=1) == (None, [])
    other = JobTable(tmp_path / "jobs.db", lease_s=0.2)
    refusal, running = other.claim({**body, "id": "b2"}, ["als"], max_jobs=1)
    assert refusal == "busy" and [job["id"] for job in running] == ["a1"]
    time.sleep(0.3)
    assert other.claim({**body, "id": "b2"}, ["als"], max_jobs=1) == (None, [])
    lost = other.get("a1")
    assert lost["state"] == "failed" and lost["error"] == LOST
    stopped.close()
    other.close()
