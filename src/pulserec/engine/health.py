"""Whether the process can serve: the shared state's supervisor and the store's readiness.

`GET /health/ready` and the metrics read :meth:`Health.readiness`; the write path tells the
supervisor about a failed apply (`note_failure`) so that it repairs the shared state sooner."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

from pulserec.config import Settings
from pulserec.online.base import State
from pulserec.store import SQLiteStore

if TYPE_CHECKING:
    from pulserec.online.redis.supervisor import StateSupervisor
    from pulserec.online.streams import Publisher


def start_supervisor(state: State, store: SQLiteStore, settings: Settings, publisher: Publisher | None) -> StateSupervisor | None:
    """A shared state gets a background check that repairs it from the log (see supervisor.py);
    with a stream, a grace period lets the updater apply what was just published."""
    if not state.shared:
        return None
    from pulserec.online.redis.supervisor import StateSupervisor  # noqa: PLC0415 - Redis only

    grace = settings.stream_grace_s if publisher else None
    return StateSupervisor(state, store, settings.state_sync_interval_s, grace).start()


class Health:
    """Readiness of the online state (memory: always; Redis: the supervisor's last check) and of
    the store (the last write, and free space in the data dir)."""

    def __init__(self, store: SQLiteStore, settings: Settings, supervisor: StateSupervisor | None) -> None:
        self.store, self.settings, self.supervisor = store, settings, supervisor

    def readiness(self) -> dict[str, Any]:
        """{"status": "ok" | "degraded", "checks": {name: {...}}}; each check says `ok` and,
        when it is not, why."""
        checks: dict[str, dict[str, Any]] = {}
        if self.supervisor is not None:
            health = self.supervisor.health()
            checks["state"] = {"ok": health.ok, "backend": "redis", "status": health.status, "detail": health.detail,
                               "since": health.since}
        else:
            checks["state"] = {"ok": True, "backend": "memory", "status": "ok"}
        checks["storage"] = self.storage()
        ok = all(check["ok"] for check in checks.values())
        return {"status": "ok" if ok else "degraded", "checks": checks}

    def storage(self) -> dict[str, Any]:
        """After a failed write the store is probed with a small real write, so readiness recovers
        by itself once space returns or the file is writable again; and the data dir's free space
        must be at least `min_free_bytes` (a probe fits where a batch may not)."""
        failure = self.store.probe() if self.store.failure else None
        free = shutil.disk_usage(self.settings.data_dir).free
        if failure is not None:
            storage: dict[str, Any] = {"ok": False, "cause": failure.kind, "detail": str(failure)}
        elif free < self.settings.min_free_bytes:
            storage = {"ok": False, "cause": "disk_full",
                       "detail": f"{free:,} bytes free for {self.settings.data_dir}, below min_free_bytes "
                                 f"({self.settings.min_free_bytes:,})"}
        else:
            storage = {"ok": True}
        return {**storage, "free_bytes": free}

    def note_failure(self, exc: BaseException) -> None:
        """A write could not be applied to the shared state: the supervisor checks it sooner."""
        if self.supervisor is not None:
            self.supervisor.note_failure(exc)

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
