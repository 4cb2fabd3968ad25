"""The job registry: one job per target, `max_jobs` at once, ids to poll, bounded history."""

from __future__ import annotations

import threading

import pytest

from pulserec.recommend import jobs as jobs_module
from pulserec.recommend.jobs import Busy, Job, JobRegistry, TooManyJobs, replay_progress


def blocker(release: threading.Event, result="ok"):
    def work(report):
        report(0.5, "half way")
        assert release.wait(10)
        return result

    return work


def wait_done(registry, job):
    for thread in threading.enumerate():
        if thread.name == f"pulserec-{job.kind}-{job.target}":
            thread.join(10)
    return registry.get(job.id)


def test_one_job_per_target_and_max_jobs_in_all():
    registry, release = JobRegistry(max_jobs=2), threading.Event()
    als = registry.start("train", ("als",), blocker(release))
    assert als.state == "running"
    with pytest.raises(Busy) as busy:
        registry.start("train", ("als",), blocker(release))
    assert busy.value.running == [als] and als.id in str(busy.value)
    with pytest.raises(Busy):  # a scheduled training of several models overlaps it
        registry.run("train", ("content", "als"), blocker(release))
    rebuild = registry.start("rebuild", ("online-state",), blocker(release))
    with pytest.raises(TooManyJobs) as too_many:
        registry.start("train", ("content",), blocker(release))
    assert {j.id for j in too_many.value.running} == {als.id, rebuild.id} and "max_jobs" in str(too_many.value)
    assert registry.get(als.id).as_dict()["progress"] == 0.5 and registry.get(als.id).note == "half way"
    release.set()
    done = wait_done(registry, als)
    wait_done(registry, rebuild)
    assert done.state == "succeeded" and done.result == "ok" and done.progress == 1.0
    assert done.finished_at >= done.started_at and done.as_dict()["duration_s"] >= 0
    again = registry.start("train", ("als",), blocker(release))  # free again once it finished
    assert wait_done(registry, again).state == "succeeded"
    listed = registry.jobs()  # all finished: newest first
    assert listed[0].id == again.id and {j.id for j in listed} == {als.id, rebuild.id, again.id}


def test_a_failing_job_is_reported_not_raised():
    registry = JobRegistry(max_jobs=1)

    def broken(report):
        raise RuntimeError("no events to train on")

    job = registry.run("train", ("als",), broken)
    assert job.state == "failed" and job.error == "RuntimeError: no events to train on" and job.result is None
    assert registry.get(job.id) is job and registry.jobs() == [job]
    assert registry.run("train", ("als",), lambda report: 42).result == 42  # the slot was freed


def test_history_is_bounded_and_unknown_ids_are_none(monkeypatch):
    monkeypatch.setattr(jobs_module, "HISTORY", 3)
    registry = JobRegistry(max_jobs=1)
    ran = [registry.run("train", ("als",), lambda report, k=k: k) for k in range(5)]
    assert [j.result for j in registry.jobs()] == [4, 3, 2]
    assert registry.get(ran[0].id) is None and registry.get("nope") is None


def test_close_waits_for_running_jobs():
    registry, release = JobRegistry(max_jobs=1), threading.Event()
    job = registry.start("rebuild", ("online-state",), blocker(release))
    threading.Timer(0.2, release.set).start()
    registry.close(wait_s=10)
    assert registry.get(job.id).state == "succeeded"


def test_limits_are_validated_and_progress_is_clamped():
    with pytest.raises(ValueError):
        JobRegistry(max_jobs=0)
    seen = []
    advance = replay_progress(lambda fraction, note: seen.append((fraction, note)), total=200)
    advance(100)
    advance(100)
    assert seen == [(0.45, "replayed 100 of 200 events"), (0.9, "replayed 200 of 200 events")]
    assert replay_progress(None, 10) is None
    job = Job("train", ("x",))
    job.report(7.0, "over")
    assert job.progress == 1.0
    job.report(-1, "under")
    assert job.progress == 0.0
