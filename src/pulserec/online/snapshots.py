"""Snapshots of the in-memory online state under `<data_dir>/snapshots/`, so a start loads the
newest valid one and replays only the log after its watermark instead of the whole log.

A snapshot is used only if it is intact (checksum), of this format, made with the settings that
shape the state, from this store, and no event at or below its watermark has been rewritten
since (deletions and session merges bump the store's deletion version). Anything else is
logged in one line and the previous snapshot, or a full replay, is used instead.

Background snapshots fork: the child writes a copy-on-write image of the state while the
parent goes on serving, so writes are blocked only for the fork itself (Redis' BGSAVE)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pulserec.online import snapshot_file
from pulserec.online.snapshot_file import SnapshotError
from pulserec.online.state_arrays import from_arrays, to_arrays

if TYPE_CHECKING:
    from pulserec.config import Settings
    from pulserec.online.state import OnlineState
    from pulserec.store import SQLiteStore

log = logging.getLogger(__name__)

#: Settings that change what the state holds: a snapshot made under others is not loaded.
SHAPING_SETTINGS = ("event_weights", "trending_halflife", "interest_halflife", "cooc_window", "cooc_gap_tau",
                    "cooc_max_neighbours", "cooc_evict_halflife", "history_len", "pseudonymize_users", "dwell_types",
                    "dwell_bounce_s", "dwell_bounce_factor", "dwell_cap_s", "dwell_max_factor")
STORE_ID = "store_id"


def fingerprint(settings: Settings) -> str:
    values = {name: getattr(settings, name) for name in SHAPING_SETTINGS}
    return hashlib.blake2b(json.dumps(values, sort_keys=True).encode(), digest_size=8).hexdigest()


class Snapshots:
    """Writes, finds, checks and loads the snapshots of one data directory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = Path(settings.data_dir) / "snapshots"
        #: Header of the newest snapshot written or loaded by this process (for /stats).
        self.latest: dict[str, Any] | None = None
        self.last_error: str | None = None
        self._child: int | None = None
        self._discard_child = False  # set by `invalidate`: what the running child writes is stale
        self._lock = threading.Lock()
        self._store_id: tuple[SQLiteStore, str] | None = None

    def files(self) -> list[Path]:
        """Snapshot files, newest watermark first."""
        if not self.dir.is_dir():
            return []
        return sorted(self.dir.glob("state-*.npz"), reverse=True)

    # -- reading ----------------------------------------------------------------------------
    def load(self, store: SQLiteStore) -> OnlineState | None:
        """The state of the newest usable snapshot (None: replay the whole log)."""
        self._remove_leftovers()
        for path in self.files():
            try:
                header = snapshot_file.read_header(path)
                self._check(header, store)
                header, arrays = snapshot_file.read(path)
                state = from_arrays(self.settings, arrays)
            except SnapshotError as exc:
                log.warning("snapshot %s not used: %s; falling back to an older snapshot or a full replay", path.name, exc)
                continue
            self.latest = {**header, "path": str(path), "bytes": path.stat().st_size}
            return state
        return None

    def _remove_leftovers(self) -> None:
        """Temporary files of writers that died (SIGKILL, power loss) before their rename."""
        for tmp in self.dir.glob(".*.tmp") if self.dir.is_dir() else ():
            pid = tmp.name.rsplit(".", 2)[-2]
            if pid.isdigit() and not _alive(int(pid)):
                tmp.unlink(missing_ok=True)

    def _check(self, header: dict[str, Any], store: SQLiteStore) -> None:
        max_seq, _, deletions = store.head()
        if header.get("store_id") != self.store_id(store):
            raise SnapshotError("made from another event store")
        if header.get("fingerprint") != fingerprint(self.settings):
            raise SnapshotError("made with other settings (event weights, windows, half-lives or history length)")
        if int(header.get("watermark", -1)) > max_seq:
            raise SnapshotError(f"watermark {header.get('watermark')} is past the log's end ({max_seq})")
        if int(header.get("deletion_version", -1)) != deletions:
            raise SnapshotError("users were deleted or sessions merged after it was taken")

    def store_id(self, store: SQLiteStore) -> str:
        """The store's random id, set on first use. Read once per store: the header is built under
        the engine lock, and this write transaction was ~15 of a background snapshot's ~50 ms
        pause on the loaded box (the id never changes for a store file)."""
        if self._store_id is None or self._store_id[0] is not store:
            self._store_id = (store, store.ensure_meta(STORE_ID, os.urandom(8).hex()))
        return self._store_id[1]

    # -- writing ----------------------------------------------------------------------------
    def header(self, state: OnlineState, store: SQLiteStore) -> dict[str, Any]:
        """What a snapshot of `state` records (read under the engine lock, with the state)."""
        _, catalog_version, deletions = store.head()
        return {"watermark": state.last_seq, "applied": state.applied, "created_at": time.time(),
                "store_id": self.store_id(store), "fingerprint": fingerprint(self.settings),
                "deletion_version": deletions, "catalog_version": catalog_version}

    def write(self, state: OnlineState, header: dict[str, Any]) -> dict[str, Any]:
        """Write one snapshot now (the caller keeps the state still meanwhile)."""
        self.wait()
        started = time.perf_counter()
        path = self._write(state, header)
        return self._written(path, header, time.perf_counter() - started)

    def _write(self, state: OnlineState, header: dict[str, Any]) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"state-{header['watermark']:015d}-{time.time_ns()}.npz"
        snapshot_file.write(path, to_arrays(state), header)
        return path

    def _written(self, path: Path, header: dict[str, Any], seconds: float) -> dict[str, Any]:
        self.latest = {**header, "path": str(path), "bytes": path.stat().st_size, "write_seconds": round(seconds, 3)}
        self.last_error = None
        for old in self.files()[max(self.settings.snapshot_keep, 1):]:
            old.unlink(missing_ok=True)
        log.info("snapshot %s written in %.2fs (%d events, watermark %d)", path.name, seconds, header["applied"],
                 header["watermark"])
        return self.latest

    def write_in_background(self, state: OnlineState, header: dict[str, Any]) -> bool:
        """Fork a child that writes the snapshot (False: one is still being written). Call with
        the state still (under the engine lock): the fork is the only pause writers see."""
        if not hasattr(os, "fork"):
            self.write(state, header)
            return True
        with self._lock:
            if self._child is not None:
                return False
            started = time.perf_counter()
            self.dir.mkdir(parents=True, exist_ok=True)
            pid = os.fork()
            if pid == 0:  # the child: no locks, no logging (another thread may have held them)
                code = 1
                try:
                    path = self._write(state, header)
                    os.write(self._report(), str(path).encode())
                    code = 0
                finally:
                    os._exit(code)
            self._child, self._discard_child = pid, False
        threading.Thread(target=self._reap, args=(pid, header, started), daemon=True,
                         name="pulserec-snapshot").start()
        return True

    def _report(self) -> int:
        """A file the child names its snapshot in (the parent reads it once the child exits)."""
        return os.open(self.dir / f".written-{os.getpid()}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)

    def _reap(self, pid: int, header: dict[str, Any], started: float) -> None:
        _, status = os.waitpid(pid, 0)
        report = self.dir / f".written-{pid}"
        try:
            if self._discard_child and report.is_file():
                Path(report.read_text()).unlink(missing_ok=True)
            elif os.waitstatus_to_exitcode(status) == 0 and report.is_file():
                path = Path(report.read_text())
                if path.is_file():  # else `invalidate` deleted it meanwhile
                    self._written(path, header, time.perf_counter() - started)
            else:
                self.last_error = f"the snapshot writer exited with status {os.waitstatus_to_exitcode(status)}"
                log.error("background snapshot failed: %s", self.last_error)
        finally:
            report.unlink(missing_ok=True)
            with self._lock:
                self._child = None

    def wait(self, timeout: float = 600.0) -> None:
        """Until a background snapshot being written is done."""
        deadline = time.monotonic() + timeout
        while self._child is not None and time.monotonic() < deadline:
            time.sleep(0.01)

    def invalidate(self) -> None:
        """Delete every snapshot, and the one being written if any (they hold a user who was
        just deleted); does not wait for a running writer."""
        with self._lock:
            self._discard_child = self._child is not None
        for path in self.files():
            path.unlink(missing_ok=True)
        self.latest = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
