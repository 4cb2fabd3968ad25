"""The background check each API process runs over a shared Redis state.

Every `interval_s` it asks Redis for the namespace's identity (`meta.state_id`, `ready`):

* unreachable or stalled past the client timeout: *unreachable* (readiness fails);
* no state id or not ready, and nobody loading it (Redis restarted empty, or a loader died):
  *resyncing* while this process replays the log into it (one process wins the init lock;
  the others wait), never serving the empty namespace as if it were the state;
* a state id other than the one attached to: another process reloaded it; adopt it;
* otherwise: apply the stored events no process applied (`sync.sync`): those an outage or a
  crash left between store and apply, and those a lost stream will never deliver. With a
  stream, events younger than `grace_s` are left to the updaters.

`health()` is what readiness and the Prometheus gauges report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pulserec.online.redis import sync
from pulserec.online.redis.connection import TRANSIENT, StateBackendError

if TYPE_CHECKING:
    from pulserec.online.redis.state import RedisState
    from pulserec.store import SQLiteStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    #: "ok", "unreachable" (Redis does not answer) or "resyncing" (the state is being rebuilt).
    status: str
    detail: str = ""
    since: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class StateSupervisor:
    """Checks the Redis state, repairs it from the log, and knows whether it can serve."""

    def __init__(self, state: RedisState, store: SQLiteStore, interval_s: float, grace_s: float | None = None) -> None:
        self.state = state
        self.store = store
        self.interval_s = interval_s
        self.grace_s = grace_s
        self._health = Health("ok", since=time.time())
        #: (monotonic time, log head) of recent checks: the head `grace_s` ago bounds a stream-mode sync.
        self._heads: deque[tuple[float, int]] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def health(self) -> Health:
        return self._health

    def _set(self, status: str, detail: str = "") -> None:
        if status != self._health.status:
            (log.info if status == "ok" else log.warning)("Redis state %s%s", status, f": {detail}" if detail else "")
            self._health = Health(status, detail, time.time())
        elif detail != self._health.detail:
            self._health = Health(status, detail, self._health.since)

    def note_failure(self, exc: BaseException) -> None:
        """A request found Redis unreachable: report it now rather than at the next check."""
        self._set("unreachable", str(exc))

    # -- the check ---------------------------------------------------------------------------
    def check(self) -> Health:
        """One round (see the module doc); never raises for an unreachable Redis."""
        try:
            self._check()
        except TRANSIENT as exc:
            self._set("unreachable", f"{type(exc).__name__}: {exc}")
        except StateBackendError as exc:
            self._set("resyncing", str(exc))
        return self._health

    def _check(self) -> None:
        state = self.state
        state_id, ready = state.identity()
        if not ready:
            self._set("resyncing", "the Redis state is lost or incomplete; rebuilding it from the event log")
            if state.recover(self.store):
                log.warning("rebuilt the lost Redis state from the log (%d events)", state.applied)
            else:
                return  # another process is loading it: wait for it
        elif state_id != state.state_id:
            state.check_identity(state_id, ready)
        sync.sync(state, self.store, upto_seq=self._bound())
        self._set("ok")

    def _bound(self) -> int | None:
        """The newest seq a sync may apply: all of them, or with a stream those stored at least
        `grace_s` ago (the updaters apply the rest)."""
        if self.grace_s is None:
            return None
        now = time.monotonic()
        self._heads.append((now, self.store.max_seq()))
        while len(self._heads) > 1 and self._heads[1][0] <= now - self.grace_s:
            self._heads.popleft()
        at, head = self._heads[0]
        return head if at <= now - self.grace_s else 0

    # -- the thread --------------------------------------------------------------------------
    def start(self) -> StateSupervisor:
        self._thread = threading.Thread(target=self._run, name="pulserec-state-supervisor", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the loop must outlive one bad round; logged
                log.exception("Redis state check failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
