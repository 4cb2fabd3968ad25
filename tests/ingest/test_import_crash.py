"""`pulserec import` killed (SIGKILL) in the middle: the log holds a prefix of the import in
order (never a later chunk without an earlier one), its indexes come back, a restart's state is
the log's, and importing the file again stores exactly the rest: the same store and state as
one uninterrupted import."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from online.state_equality import assert_same_state
from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.ingest.importer import import_events, import_items
from pulserec.ingest.synthetic import generate, write

#: The CLI with its bulk-load threshold lowered, so the killed import runs without its indexes.
CLI = "import sys; import pulserec.store.bulk_load as b; b.MIN_ROWS = 100; from pulserec.cli.main import main; sys.argv[0] = 'pulserec'; main()"


def stored_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet, or locked for a moment
        return 0


def kill_mid_import(files: dict[str, str], data: Path) -> int:
    """Start `pulserec import`, SIGKILL it once its first chunks are committed; returns how many
    rows it had stored."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    proc = subprocess.Popen([sys.executable, "-c", CLI, "import", "--items", files["items"], "--events", files["events"],
                             "-d", str(data)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while stored_count(data / "pulserec.db") == 0:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the import stored nothing in 120 s"
            time.sleep(0.02)
        writers = children_of(proc.pid)
        assert writers, "the import runs no writer process"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in writers):  # the writer dies with the importer (PR_SET_PDEATHSIG)
            assert time.monotonic() < deadline, f"writer processes {writers} outlived the killed import"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        proc.stderr.close()
    return stored_count(data / "pulserec.db")


def children_of(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    return [int(c) for task in tasks.iterdir() for c in (task / "children").read_text().split()]


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    shop = generate(n_users=400, n_items=150, n_events=60_000, seed=11)
    return write(shop, tmp_path_factory.mktemp("shop") / "files", "parquet")


def test_a_killed_import_leaves_an_ordered_prefix_and_resumes_to_the_same_state(files, tmp_path):
    data = tmp_path / "killed"
    killed_at = kill_mid_import(files, data)
    total = len(pd.read_parquet(files["events"]))
    assert 0 < killed_at < total, f"the kill came too late ({killed_at} of {total} stored)"

    engine = Engine(Settings.load(data))  # opens the store (no StoreWentBackwards) and replays it
    try:
        with engine.store.connection() as db:
            seqs = [s for (s,) in db.execute("SELECT seq FROM events ORDER BY seq")]
            stored_ids = [e for (e,) in db.execute("SELECT event_id FROM events ORDER BY seq")]
            indexes = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")}
        in_order = pd.read_parquet(files["events"]).sort_values("ts", kind="stable")["event_id"].tolist()
        assert seqs == list(range(1, len(seqs) + 1)) and stored_ids == in_order[: len(stored_ids)]
        assert {"events_user", "events_session", "events_ts", "events_item"} <= indexes
        assert engine.state.applied == len(seqs) == engine.state.last_seq
        report = import_events(engine, files["events"])
        assert (report.accepted, report.duplicates) == (total - len(seqs), len(seqs))
        assert engine.store.event_count() == engine.state.applied == total

        whole = Engine(Settings.load(tmp_path / "whole"))
        try:
            import_items(whole, files["items"])
            import_events(whole, files["events"])
            assert_same_state(engine.state, whole.state)
        finally:
            whole.close()
    finally:
        engine.close()
