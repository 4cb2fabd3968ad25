"""Snapshots of the in-memory online state under `<data_dir>/snapshots/`, so a start loads the
newest valid one and replays only the log after its watermark instead of the whole log.

A snapshot is used only if it is intact (checksum), of this format, made with the settings that
shape the state, from this store, and no event at or below its watermark has been rewritten
since (deletions and session merges bump the store's deletion version). Anything else is
logged in one line and the previous snapshot, or a full replay, is used instead.

Background snapshots do not fork (a fork copies the page tables of the whole process under the
lock: 34-44 ms at 10M events): under the lock `state_arrays.capture` takes the state's levels
in O(structures) and freezes its in-place columns copy-on-write, and a thread writes them while
writers go on, each saving the before-image of the rows it is the first to change (the thread
shares the GIL with them at a 0.5 ms switch interval, `background.sharing_the_gil`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pulserec.background import sharing_the_gil
from pulserec.online import snapshot_file
from pulserec.online.snapshot_file import SnapshotError
from pulserec.online.state_arrays import StateImage, capture, from_arrays, gil_pause

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
        self._writer: threading.Thread | None = None  # the background snapshot being written
        self._discard = False  # set by `invalidate`: what the running writer writes is stale
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

    def write(self, state: OnlineState, header: dict[str, Any], durable: bool = True) -> dict[str, Any]:
        """Write one snapshot now (the caller keeps the state still meanwhile); `durable`: see
        `snapshot_file.write_members`."""
        self.wait()
        started = time.perf_counter()
        image = capture(state)
        try:
            path = self._write(image, header, durable=durable)
        finally:
            image.release()
        return self._written(path, header, time.perf_counter() - started)

    def _write(self, image: StateImage, header: dict[str, Any], pause: Callable[[], None] = lambda: None,
               durable: bool = True) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"state-{header['watermark']:015d}-{time.time_ns()}.npz"
        snapshot_file.write_members(path, image.members(pause), header, durable)
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
        """Start a thread that writes the snapshot (False: one is still being written). Call
        with the state still (under the engine lock): the capture, O(structures), is the only
        pause writers see; afterwards a writer's first change to a row of a frozen column
        saves that row once."""
        with self._lock:
            if self._writer is not None:
                return False
            started = time.perf_counter()
            image = capture(state)
            self._discard = False
            self._writer = threading.Thread(target=self._write_image, args=(image, header, started), daemon=True,
                                            name="pulserec-snapshot")
            self._writer.start()  # under the lock: `wait` never sees a thread not started yet
        return True

    def _write_image(self, image: StateImage, header: dict[str, Any], started: float) -> None:
        time.sleep(0.001)  # first let the starter take the GIL back and release the engine lock
        try:
            with sharing_the_gil():  # a writer waits for this thread's Python work 0.5 ms, not 5
                path = self._write(image, header, gil_pause)
            with self._lock:  # against `invalidate`, which deletes under it
                if self._discard:
                    path.unlink(missing_ok=True)
                else:
                    self._written(path, header, time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - reported in /stats; the log has every event
            self.last_error = f"the background snapshot failed: {type(exc).__name__}: {exc}"
            log.exception("background snapshot failed")
        finally:
            image.release()
            with self._lock:
                self._writer = None

    def wait(self, timeout: float = 600.0) -> None:
        """Until a background snapshot being written is done."""
        writer = self._writer
        if writer is not None and writer is not threading.current_thread():
            writer.join(timeout)

    def invalidate(self) -> None:
        """Delete every snapshot, and the one being written if any (they hold a user who was
        just deleted); does not wait for a running writer."""
        with self._lock:
            self._discard = self._writer is not None
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
