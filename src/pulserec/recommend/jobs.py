"""Background jobs (trainings, rebuilds of the online state): one at a time per target, a bounded
number at once, each with an id to poll.

Before this, every `POST /models/{name}/train` started a thread: 20 calls took the process from
375 MiB to 1.9 GiB, 108 gave 113 threads and 218 s per ALS fit. Now a second job for a target
that is still running is refused (`Busy`, naming the running job), and so is any job past
`max_jobs` running at once (`TooManyJobs`), so a burst of calls costs no thread and no memory.
A finished job stays listed (the newest `HISTORY` of them) with its result or error.

The limits hold across the processes of one data dir (`pulserec serve --workers N`): jobs are
claimed in a shared `JobTable` (store/job_table.py, `<data_dir>/jobs.db`; an in-memory one for
a registry on its own), and a heartbeat renews the leases of this process's running jobs.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulserec.store.job_table import JobTable

log = logging.getLogger(__name__)

#: Finished jobs kept for `GET /jobs` and the dashboard (each is a few hundred bytes).
HISTORY = 200
#: How long `close()` waits for running jobs (a rebuild or a fit cannot be interrupted midway).
CLOSE_WAIT_S = 30.0

#: How a job tells its progress: report(fraction done in [0, 1], what it is doing).
Report = Callable[[float, str], None]
#: A job's work: called with its `Report`, returns a JSON-able result.
Work = Callable[[Report], Any]


@dataclass
class Job:
    """One training (of one or more models) or rebuild. `progress` goes from 0 to 1; `note` says
    what it is doing."""

    kind: str
    targets: tuple[str, ...]
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    state: str = "running"  # running, succeeded or failed
    progress: float = 0.0
    note: str = "starting"
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    result: Any = None
    error: str | None = None

    @property
    def target(self) -> str:
        return ",".join(self.targets)

    def report(self, progress: float, note: str) -> None:
        self.progress, self.note = min(max(float(progress), 0.0), 1.0), note

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Job:
        """A job as another process stored it (`as_dict`)."""
        return cls(body["kind"], tuple(body["target"].split(",")), id=body["id"], state=body["state"],
                   progress=body["progress"], note=body["note"], started_at=body["started_at"],
                   finished_at=body["finished_at"], result=body["result"], error=body["error"])

    def as_dict(self) -> dict[str, Any]:
        end = self.finished_at if self.finished_at is not None else time.time()
        return {"id": self.id, "kind": self.kind, "target": self.target, "state": self.state,
                "progress": round(self.progress, 3), "note": self.note, "started_at": self.started_at,
                "finished_at": self.finished_at, "duration_s": round(end - self.started_at, 3),
                "result": self.result, "error": self.error}


def replay_progress(report: Report | None, total: int, share: float = 0.9) -> Callable[[int], None] | None:
    """A count callback (events replayed so far, in steps) that reports `share` of the job's progress."""
    if report is None:
        return None
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        report(share * done / max(total, 1), f"replayed {done:,} of {total:,} events")

    return advance


class JobRefused(Exception):
    """A job that was not started; `running` are the jobs in the way."""

    def __init__(self, message: str, running: list[Job]) -> None:
        super().__init__(message)
        self.running = running


class Busy(JobRefused):
    """A job for this kind and target is already running."""


class TooManyJobs(JobRefused):
    """`max_jobs` jobs are running already."""


class JobRegistry:
    """Starts jobs in their own daemon threads, at most one per kind and target (a scheduled training
    of als and content blocks a training of als) and `max_jobs` in all, counted over every
    process that shares `table`."""

    def __init__(self, max_jobs: int, table: JobTable | None = None) -> None:
        if max_jobs < 1:
            raise ValueError("max_jobs must be at least 1")
        self.max_jobs = max_jobs
        self.table = table if table is not None else JobTable(Path(":memory:"))
        self._lock = threading.Lock()
        self._running: dict[str, tuple[Job, threading.Thread | None]] = {}
        self._finished: deque[Job] = deque(maxlen=HISTORY)
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        #: Called (in the finishing job's thread, its slot free) after every job of this process,
        #: until close: work refused for want of a slot (a retrain without deleted users) retries.
        self.on_finished: list[Callable[[], None]] = []

    def start(self, kind: str, targets: tuple[str, ...], work: Work) -> Job:
        """Run `work` in a new thread and return its job at once; raises Busy or TooManyJobs."""
        job = self._claim(kind, targets)
        thread = threading.Thread(target=self._execute, args=(job, work), name=f"pulserec-{kind}-{job.target}", daemon=True)
        with self._lock:
            self._running[job.id] = (job, thread)
        thread.start()
        return job

    def run(self, kind: str, targets: tuple[str, ...], work: Work) -> Job:
        """Run `work` in the calling thread (a scheduler's), under the same limits as `start`."""
        job = self._claim(kind, targets)
        self._execute(job, work)
        return job

    def _claim(self, kind: str, targets: tuple[str, ...]) -> Job:
        job = Job(kind, tuple(targets))
        with self._lock:
            refusal, rows = self.table.claim(job.as_dict(), job.targets, self.max_jobs)
            if refusal is None:
                self._running[job.id] = (job, None)
                self._beat()
                return job
            local = {held.id: held for held, _ in self._running.values()}
        running = [local.get(row["id"]) or Job.from_dict(row) for row in rows]
        if refusal == "busy":
            raise Busy(f"a {kind} of {running[0].target} is already running (job {running[0].id})", running)
        raise TooManyJobs(f"{len(running)} jobs are running, the limit (max_jobs) is {self.max_jobs}", running)

    def _beat(self) -> None:
        """Start the heartbeat that renews this process's leases (under self._lock)."""
        if self._heartbeat is None or not self._heartbeat.is_alive():
            self._heartbeat = threading.Thread(target=self._renew_leases, name="pulserec-job-leases", daemon=True)
            self._heartbeat.start()

    def _renew_leases(self) -> None:
        while not self._stop.wait(self.table.lease_s / 6):
            with self._lock:
                bodies = [job.as_dict() for job, _ in self._running.values()]
            try:
                self.table.renew(bodies)
            except Exception:  # noqa: BLE001 - a failed renewal is retried at the next beat
                log.exception("renewing the leases of %d running jobs failed", len(bodies))

    def _execute(self, job: Job, work: Work) -> None:
        try:
            job.result = work(job.report)
            job.state, job.note = "succeeded", "done"
            job.progress = 1.0
        except Exception as exc:  # noqa: BLE001 - a failed job is reported, never crashes the server
            job.state, job.error, job.note = "failed", f"{type(exc).__name__}: {exc}", "failed"
            log.exception("job %s (%s %s) failed", job.id, job.kind, job.target)
        finally:
            job.finished_at = time.time()
            with self._lock:
                self._running.pop(job.id, None)
                self._finished.appendleft(job)
            try:  # last: the slot is free for a new job (of any process) only now
                self.table.finish(job.as_dict(), keep=HISTORY)
            except Exception:  # noqa: BLE001 - its lease then expires and other processes see it failed
                log.exception("storing the end of job %s failed", job.id)
            for listener in list(self.on_finished) if not self._stop.is_set() else []:
                try:
                    listener()
                except Exception:  # noqa: BLE001 - a listener's failure is not the job's
                    log.exception("after job %s: %r failed", job.id, listener)

    def _local(self) -> dict[str, Job]:
        with self._lock:
            return {**{job.id: job for job in self._finished}, **{job.id: job for job, _ in self._running.values()}}

    def get(self, job_id: str) -> Job | None:
        """A job of this process (the live object), else one another process stored."""
        found = self._local().get(job_id)
        if found is not None:
            return found
        body = self.table.get(job_id)
        return None if body is None else Job.from_dict(body)

    def jobs(self) -> list[Job]:
        """Running jobs first (oldest first), then finished ones (newest first), of every process."""
        local = self._local()
        return [local.get(body["id"]) or Job.from_dict(body) for body in self.table.listing()[:HISTORY]]

    def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Wait (bounded) for running jobs, so none outlives the store it reads."""
        self._stop.set()
        deadline = time.monotonic() + wait_s
        with self._lock:
            threads = [thread for _, thread in self._running.values() if thread is not None]
        for thread in threads:
            thread.join(timeout=max(deadline - time.monotonic(), 0.0))
