"""Issue 13.13: a store that lost committed events refuses to start instead of serving less.

On main a deleted or truncated -wal file, or a 0-byte pulserec.db, opened silently with fewer
(or zero) events. Each case here writes real SQLite files, crashes the writer where the case
needs it (a subprocess that exits without closing, so recent commits stay in the WAL only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.runtime.process import SRC_DIR
from pulserec.store import SQLiteStore
from pulserec.store.watermark import StoreWentBackwards, sidecar_path

CRASHING_WRITER = """
import os, sys
from pulserec.store import SQLiteStore
store = SQLiteStore(sys.argv[1])
for k in range(int(sys.argv[2])):
    store.append_events([(f"e{k}", "u", f"i{k % 7}", "view", 1.7e9 + k, None, None, None, None, None, None)])
os._exit(0)  # a crash: no close, no checkpoint
"""


def crash_after_writing(db: Path, n: int) -> None:
    subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(db), str(n)], check=True, timeout=60,
                   env={"PYTHONPATH": str(SRC_DIR)})


def test_a_deleted_wal_is_refused(tmp_path):
    db = tmp_path / "pulserec.db"
    crash_after_writing(db, 50)
    assert Path(f"{db}-wal").stat().st_size > 0
    Path(f"{db}-wal").unlink()
    Path(f"{db}-shm").unlink(missing_ok=True)
    with pytest.raises(StoreWentBackwards, match=r"records seq 50 as committed.*--accept-data-loss"):
        SQLiteStore(db)


def test_a_truncated_wal_is_refused(tmp_path):
    db = tmp_path / "pulserec.db"
    crash_after_writing(db, 50)
    wal = Path(f"{db}-wal")
    with open(wal, "r+b") as fh:
        fh.truncate(wal.stat().st_size // 2)
    with pytest.raises(StoreWentBackwards):
        SQLiteStore(db)


def test_an_emptied_or_deleted_database_is_refused_and_can_be_accepted(tmp_path):
    settings = Settings.load(tmp_path)
    engine = Engine(settings)
    engine.ingest([Event(f"e{k}", "u", "i", "view", 1.7e9 + k) for k in range(20)])
    engine.close()
    settings.db_path.write_bytes(b"")  # 0 bytes, as after a failed copy
    with pytest.raises(StoreWentBackwards, match="holds events up to seq 0"):
        Engine(settings)
    engine = Engine(settings.with_overrides(accept_data_loss=True))  # the one-off override
    assert engine.store.event_count() == 0
    engine.close()
    Engine(settings).close()  # accepted once: later starts are normal again
    for name in ("pulserec.db", "pulserec.db-wal", "pulserec.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    Engine(settings).close()  # the mark was reset by the accepted start, so a new empty store is fine


def test_deletions_and_clean_restarts_are_not_data_loss(tmp_path):
    settings = Settings.load(tmp_path)
    engine = Engine(settings)
    engine.ingest([Event("e1", "a", "i", "view", 1.7e9), Event("e2", "b", "i", "view", 1.7e9 + 1)])
    engine.delete_user("b")  # the event with the highest seq goes: MAX(seq) drops, the mark does not
    engine.close()
    engine = Engine(settings)
    assert engine.store.event_count() == 1
    engine.ingest([Event("e3", "a", "j", "view", 1.7e9 + 2)])
    engine.close()
    assert sidecar_path(settings.db_path).read_bytes().startswith(b"pulserec last_seq ")
    sidecar_path(settings.db_path).unlink()  # losing the sidecar loses no events: it is recreated
    Engine(settings).close()


def test_serve_refuses_with_a_clear_error_and_starts_with_the_flag(tmp_path):
    data = tmp_path / "data"
    crash_after_writing(data / "pulserec.db", 30)
    Path(f"{data}/pulserec.db-wal").unlink()
    command = [sys.executable, "-m", "pulserec.cli.main", "serve", "--data-dir", str(data), "--port", "1"]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(SRC_DIR)})
    assert refused.returncode == 1
    assert "records seq 30 as committed" in refused.stdout and "Traceback" not in refused.stdout + refused.stderr
    store = SQLiteStore(data / "pulserec.db", accept_data_loss=True)  # what --accept-data-loss does
    store.close()
    SQLiteStore(data / "pulserec.db").close()
