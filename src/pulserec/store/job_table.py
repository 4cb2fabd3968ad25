"""Background jobs in a SQLite file that every process on one data dir shares (`<data_dir>/jobs.db`).

Under `pulserec serve --workers N` each worker has its own engine and its own job threads; with
the limits kept per process, N workers ran N trainings of one model and N x max_jobs jobs at
once. Here a job is claimed in one `BEGIN IMMEDIATE` transaction that sees every worker's
running jobs, so "one job per target" and `max_jobs` hold across processes, and any worker
answers `GET /jobs/{id}` for a job another one runs.

A running job holds a lease that its process renews (`renew`, every few seconds); a process
that dies without finishing its jobs leaves leases that expire after `LEASE_S`, and the jobs
are then shown as failed instead of blocking their targets for ever. The file is its own
database, not the event log's: claims and heartbeats never wait for the log's writer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Seconds a running job's lease lasts without renewal: a job whose process died blocks its
#: target this long at most. Renewed every `LEASE_S / 6` (the registry's heartbeat).
LEASE_S = 30.0
#: Finished jobs kept (each a few hundred bytes).
HISTORY = 200
#: Seconds a process waits for another's claim (a transaction of a few statements).
BUSY_TIMEOUT_S = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    targets TEXT NOT NULL,   -- JSON list
    running INTEGER NOT NULL,
    lease_until REAL,        -- running jobs only
    started_at REAL NOT NULL,
    finished_at REAL,
    body TEXT NOT NULL       -- the job's as_dict(), as JSON
);
CREATE INDEX IF NOT EXISTS jobs_running ON jobs (running, started_at);
"""
LOST = "its process stopped before it finished (lease expired)"


class JobTable:
    """Claims, progress, results and leases of jobs, shared through one SQLite file."""

    def __init__(self, path: Path, lease_s: float = LEASE_S) -> None:
        self.lease_s = lease_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def claim(self, body: dict[str, Any], targets: Sequence[str], max_jobs: int) -> tuple[str | None, list[dict[str, Any]]]:
        """Insert the running job `body` (its `id`, `kind`, `started_at`) unless a running job of
        the same kind shares a target ("busy") or `max_jobs` run already ("full"); returns the
        refusal (None when claimed) and the running jobs in the way."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._expire(now)
                running = [(json.loads(t), json.loads(b)) for t, b in
                           self._db.execute("SELECT targets, body FROM jobs WHERE running = 1 ORDER BY started_at")]
                same = [job for held, job in running if job["kind"] == body["kind"] and set(held) & set(targets)]
                refusal = "busy" if same else "full" if len(running) >= max_jobs else None
                if refusal is None:
                    self._db.execute("INSERT INTO jobs VALUES (?, ?, ?, 1, ?, ?, NULL, ?)",
                                     (body["id"], body["kind"], json.dumps(list(targets)), now + self.lease_s,
                                      body["started_at"], json.dumps(body, default=str)))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return refusal, same if refusal == "busy" else [job for _, job in running]

    def renew(self, bodies: Sequence[dict[str, Any]]) -> None:
        """Extend the leases of these running jobs of this process and store their progress."""
        if not bodies:
            return
        until = time.time() + self.lease_s
        with self._lock:
            self._db.executemany("UPDATE jobs SET lease_until = ?, body = ? WHERE id = ? AND running = 1",
                                 [(until, json.dumps(b, default=str), b["id"]) for b in bodies])

    def finish(self, body: dict[str, Any], keep: int = HISTORY) -> None:
        """Store a job's end (state, result or error) and keep the newest `keep` finished jobs."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("UPDATE jobs SET running = 0, lease_until = NULL, finished_at = ?, body = ? WHERE id = ?",
                                 (body.get("finished_at") or time.time(), json.dumps(body, default=str), body["id"]))
                self._db.execute("DELETE FROM jobs WHERE running = 0 AND id NOT IN "
                                 "(SELECT id FROM jobs WHERE running = 0 ORDER BY finished_at DESC LIMIT ?)", (keep,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            self._expire(time.time())
            row = self._db.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else json.loads(row[0])

    def listing(self) -> list[dict[str, Any]]:
        """Running jobs (oldest first), then finished ones (newest first)."""
        with self._lock:
            self._expire(time.time())
            rows = self._db.execute("SELECT body FROM jobs ORDER BY running DESC, "
                                    "CASE WHEN running = 1 THEN started_at ELSE -finished_at END").fetchall()
        return [json.loads(body) for (body,) in rows]

    def _expire(self, now: float) -> None:
        """Running jobs whose process stopped renewing their lease become failed ones."""
        lost = self._db.execute("SELECT id, body FROM jobs WHERE running = 1 AND lease_until < ?", (now,)).fetchall()
        for job_id, body in lost:
            job = {**json.loads(body), "state": "failed", "note": "failed", "error": LOST, "finished_at": now}
            self._db.execute("UPDATE jobs SET running = 0, lease_until = NULL, finished_at = ?, body = ? WHERE id = ?",
                             (now, json.dumps(job, default=str), job_id))

    def close(self) -> None:
        with self._lock:
            self._db.close()
