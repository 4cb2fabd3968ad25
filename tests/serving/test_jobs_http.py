"""Trainings and rebuilds over HTTP are jobs: 202 with an id to poll, 409 naming the running job
for its target, 429 past `max_jobs`; a burst of train calls grows neither threads nor memory."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from pulserec.config import Settings


@pytest.fixture
def settings(tmp_path):
    return Settings.load(tmp_path / "data", max_jobs=2)


def poll(url: str, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/jobs/{job_id}").json()
        if job["state"] != "running":
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still running")


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def test_train_returns_a_job_to_poll_until_it_succeeds(server, engine, fill):
    fill(engine, upto=800)
    answer = httpx.post(f"{server.url}/models/als/train")
    assert answer.status_code == 202 and answer.headers["location"] == f"/jobs/{answer.json()['job_id']}"
    body = answer.json()
    assert body["model"] == "als" and body["job"]["kind"] == "train" and body["job"]["target"] == "als"
    job = poll(server.url, body["job_id"])
    assert job["state"] == "succeeded" and job["progress"] == 1.0 and job["duration_s"] > 0
    assert job["result"][0].startswith("als: trained on")
    assert "als" in engine.service.strategies
    listing = httpx.get(f"{server.url}/jobs").json()
    assert listing["max_jobs"] == 2 and listing["jobs"][0]["id"] == body["job_id"]
    rebuild = httpx.post(f"{server.url}/admin/rebuild").json()
    done = poll(server.url, rebuild["job_id"])
    assert done["kind"] == "rebuild" and done["state"] == "succeeded" and done["result"]["events"] == 800


def test_a_second_job_for_a_target_gets_409_and_past_the_limit_429(server, engine, fill):
    fill(engine, upto=300)
    release = threading.Event()
    running = engine.jobs.start("train", ("als",), lambda report: release.wait(30))
    try:
        busy = httpx.post(f"{server.url}/models/als/train")
        assert busy.status_code == 409
        assert busy.json()["running"][0]["id"] == running.id and running.id in busy.json()["detail"]
        engine.jobs.start("train", ("bpr",), lambda report: release.wait(30))
        for path in ("/models/content/train", "/admin/rebuild"):
            full = httpx.post(f"{server.url}{path}")
            assert full.status_code == 429 and full.headers["retry-after"]
            assert "max_jobs" in full.json()["detail"] and len(full.json()["running"]) == 2
        assert httpx.get(f"{server.url}/jobs/{running.id}").json()["state"] == "running"
    finally:
        release.set()
    assert poll(server.url, running.id)["state"] == "succeeded"
    assert httpx.post(f"{server.url}/models/als/train").status_code == 202  # free again


def test_job_ids_and_model_names_are_validated(server):
    assert httpx.get(f"{server.url}/jobs/0123abcd").status_code == 404
    assert "no job" in httpx.get(f"{server.url}/jobs/0123abcd").json()["detail"]
    assert httpx.get(f"{server.url}/jobs/not-hex!").status_code == 422
    assert httpx.post(f"{server.url}/models/nope/train").status_code == 404


def test_a_burst_of_train_calls_grows_neither_threads_nor_memory(server, engine, fill):
    fill(engine)
    codes, peak = [], 0
    with httpx.Client(base_url=server.url) as client:
        client.get("/jobs")  # the server's worker thread for plain-def routes starts here
        threads_before, rss_before = threading.active_count(), rss_mib()
        for k in range(60):  # bounded: 60 calls, as fast as they come
            path = ("/models/als/train", "/models/bpr/train", "/admin/rebuild")[k % 3]
            codes.append(client.post(path).status_code)
            peak = max(peak, threading.active_count())
    engine.jobs.close(wait_s=120)
    assert set(codes) <= {202, 409, 429} and codes.count(202) >= 2
    assert codes.count(409) + codes.count(429) > 30  # most were refused, not started
    assert peak <= threads_before + engine.settings.max_jobs + 1  # + the heartbeat of the jobs' leases
    assert rss_mib() - rss_before < 150  # MiB; 20 unbounded trainings once took +1.5 GiB


def test_the_schedulers_turn_waits_for_a_running_training_of_its_models(engine, fill):
    fill(engine, upto=300)
    release = threading.Event()
    running = engine.jobs.start("train", ("als",), lambda report: release.wait(30))
    try:
        (line,) = engine.training.train_in_turn(["als", "content"])
        assert line.startswith("postponed:") and running.id in line
    finally:
        release.set()
    engine.jobs.close()
    lines = engine.training.train_in_turn(["als"])
    assert lines[0].startswith("als: trained on") and engine.jobs.jobs()[0].state == "succeeded"
