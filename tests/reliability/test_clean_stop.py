"""Issue 13.12: SIGTERM stops `pulserec serve` cleanly: engine closed, WAL checkpointed, exit 0.

On main uvicorn re-raised the signal after its graceful shutdown, the process died with 143
before `engine.close()`, and pulserec.db alone (a backup, or the file after its -wal was
deleted) missed the recent writes: 2,000 acknowledged events in the issue."""

from __future__ import annotations

from pathlib import Path

import httpx

from pulserec.runtime.process import ServerProcess
from pulserec.store import SQLiteStore


def test_sigterm_closes_the_engine_and_checkpoints_the_wal(tmp_path):
    data = tmp_path / "data"
    server = ServerProcess(data).start()
    # Issue 13.19: an empty data dir is said to be one (it used to serve "items": [] silently).
    assert "holds no events and no items" in server.log_tail()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for start in range(0, 2000, 500):
                batch = [{"event_id": f"e{k}", "user_id": f"u{k % 40}", "item_id": f"i{k % 90}", "type": "view"}
                         for k in range(start, start + 500)]
                assert http.post("/events", json={"events": batch}).status_code == 200
    finally:
        server.stop()  # SIGTERM to the process group
    assert server.process.returncode == 0, server.log_tail()
    assert "stopped cleanly" in server.log_tail()
    wal = Path(f"{data}/pulserec.db-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # everything is in pulserec.db
    wal.unlink(missing_ok=True)
    Path(f"{data}/pulserec.db-shm").unlink(missing_ok=True)
    store = SQLiteStore(data / "pulserec.db")  # pulserec.db alone: every acknowledged event
    assert store.event_count() == 2000
    store.close()
