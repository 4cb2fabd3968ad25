"""Snapshots of the online state: a start from a snapshot and the log's tail equals a full
replay, structure by structure; damaged, foreign or stale snapshots are never loaded."""

from __future__ import annotations

import json
import logging
import zipfile
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from dataclasses import replace
import pytest

from pulserec import background, frozen
from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.ingest.synthetic import as_events
from pulserec.online import snapshot_file, snapshots, strings
from pulserec.online.state import OnlineState
from pulserec.online.state_arrays import from_arrays

sys.path.insert(0, str(Path(__file__).parent))
from state_equality import assert_same_state  # noqa: E402


def full_replay(engine: Engine) -> OnlineState:
    state = OnlineState(engine.settings)
    state.restore(engine.store)
    return state


def frame_of(shop, start: int, end: int):
    """Rows of the shop as a stored-event frame for the bulk path (context as JSON)."""
    rows = shop.events.iloc[start:end]
    context = [json.dumps({"device": d, "location": loc}) for d, loc in zip(rows["device"], rows["location"])]
    frame = rows.assign(context=context, session_id=None, rec_id=None)
    frame["value"] = frame["value"].astype(object).where(frame["value"].notna(), None)
    frame["query"] = frame["query"].astype(object).where(frame["query"].notna(), None)
    return frame[["event_id", "user_id", "item_id", "type", "ts", "value", "session_id", "query", "context", "rec_id"]]


@pytest.fixture
def engine(tmp_path, shop):
    engine = Engine(Settings.load(tmp_path / "data"))
    engine.put_items(list(shop.items)[:-10])  # the last 10 are first seen in events
    engine.ingest_frame(frame_of(shop, 0, 1500))  # bulk path (seq watermark from the writer)
    engine.ingest(as_events(shop.events.iloc[1500:2000]))  # per-event path
    yield engine
    engine.close()


def reopen(engine: Engine, **overrides) -> Engine:
    return Engine(engine.settings.with_overrides(**overrides))


def test_snapshot_plus_tail_equals_a_full_replay(engine, shop):
    written = engine.checkpoints.write()
    assert written["watermark"] == engine.store.max_seq() == 2000
    engine.ingest(as_events(shop.events.iloc[2000:2600]))
    engine.put_items([replace(r, price=1.5, title="new") for r in shop.items[:5]])  # catalogue changes after it
    engine.ingest_frame(frame_of(shop, 2600, 3000))
    restarted = reopen(engine)
    try:
        assert restarted.snapshots.latest["watermark"] == 2000  # loaded, then 1000 events replayed
        stats = restarted.stats()["snapshot"]
        assert stats["watermark"] == 2000 and stats["events_since"] == 1000 and stats["age_s"] >= 0
        restarted.close()  # a snapshot of a state that was itself loaded from one, plus a tail
        restarted = reopen(engine)
        assert restarted.snapshots.latest["watermark"] == 3000
        assert_same_state(full_replay(restarted), restarted.state)
        users = shop.users["user_id"].tolist()[:15]
        assert [[r.item_id for r in restarted.recommend(u, 10).items] for u in users] == \
               [[r.item_id for r in engine.recommend(u, 10).items] for u in users]
    finally:
        restarted.close()


def test_a_clean_shutdown_writes_one_and_a_background_one_equals_it(engine, shop):
    assert engine.checkpoints.write(background=True) is not None
    engine.snapshots.wait()
    assert engine.snapshots.latest["watermark"] == 2000 and engine.snapshots.last_error is None
    engine.ingest(as_events(shop.events.iloc[2000:2200]))
    engine.close()
    restarted = reopen(engine)
    try:
        assert restarted.snapshots.latest["watermark"] == 2200
        assert_same_state(full_replay(restarted), restarted.state)
    finally:
        restarted.close()


def writes_between_steps(engine: Engine, shop, monkeypatch, fail_after: int | None = None,
                         switches: set[float] | None = None) -> list[int]:
    """Make the background writer apply events at every pause of its Python work (per-event
    and bulk batches in turn, 20 events each, from seq 2001 on), with small frozen chunks;
    with `fail_after`, the pause after that many raises (a disk error mid-write); `switches`
    collects the interpreter's switch interval at each pause."""
    monkeypatch.setattr(frozen, "CHUNK_BYTES", 256)
    monkeypatch.setattr(strings, "PAUSE_EVERY_S", 0.0)
    starts = iter(range(2000, 3000, 20))
    applied: list[int] = []

    def writing() -> None:
        if fail_after is not None and len(applied) >= fail_after:
            raise OSError(28, "No space left on device")
        if switches is not None:
            switches.add(sys.getswitchinterval())
        start = next(starts, None)
        if start is not None:
            if len(applied) % 2:
                engine.ingest_frame(frame_of(shop, start, start + 20))
            else:
                engine.ingest(as_events(shop.events.iloc[start : start + 20]))
            applied.append(start)

    monkeypatch.setattr(snapshots, "gil_pause", writing)
    return applied


def test_a_background_snapshot_under_writes_is_the_state_at_its_watermark(engine, shop, monkeypatch):
    """Writes go on while the thread writes (they change profiles' columns and tables in place,
    add co-occurrence pairs, touches, items and counts): the file is the state at the capture's
    watermark, and a start from it and the tail equals a full replay."""
    switches: set[float] = set()
    applied = writes_between_steps(engine, shop, monkeypatch, switches=switches)
    before = sys.getswitchinterval()
    assert engine.checkpoints.write(background=True)["watermark"] == 2000
    engine.snapshots.wait()
    assert switches == {background.SWITCH_INTERVAL_S} and sys.getswitchinterval() == before  # lowered while it wrote
    assert len(applied) >= 6 and engine.store.max_seq() == 2000 + 20 * len(applied)
    assert engine.snapshots.last_error is None
    path = Path(engine.snapshots.latest["path"])
    header, arrays = snapshot_file.read(path)
    assert header["watermark"] == 2000
    at_watermark = OnlineState(engine.settings)
    at_watermark.load(engine.store, upto_seq=2000)
    assert_same_state(at_watermark, from_arrays(engine.settings, arrays))
    monkeypatch.undo()
    restarted = reopen(engine)  # no clean shutdown of `engine`: the background snapshot + tail
    try:
        assert restarted.snapshots.latest["path"] == str(path)
        assert_same_state(full_replay(restarted), restarted.state)
    finally:
        restarted.close()


def test_a_background_snapshot_failing_midway_leaves_the_previous_one(engine, shop, monkeypatch):
    previous = engine.checkpoints.write()
    writes_between_steps(engine, shop, monkeypatch, fail_after=3)
    assert engine.checkpoints.write(background=True) is not None
    engine.snapshots.wait()
    assert "No space left on device" in engine.snapshots.last_error
    assert [p.name for p in engine.snapshots.files()] == [Path(previous["path"]).name]
    assert not list(engine.snapshots.dir.glob(".*.tmp"))  # the half-written file is gone
    assert engine.stats()["snapshot"]["watermark"] == 2000
    monkeypatch.undo()
    engine.ingest(as_events(shop.events.iloc[2100:2200]))  # the state is whole: writes go on
    restarted = reopen(engine)
    try:
        assert restarted.snapshots.latest["path"] == previous["path"]
        assert_same_state(full_replay(restarted), restarted.state)
    finally:
        restarted.close()


def test_a_flipped_byte_falls_back_to_the_previous_snapshot(engine, shop, caplog):
    engine.checkpoints.write()
    engine.ingest(as_events(shop.events.iloc[2000:2300]))
    newest = Path(engine.checkpoints.write()["path"])
    data = bytearray(newest.read_bytes())
    # A byte in the middle of the largest array (the middle of the file may fall on a zip header
    # field that readers ignore, such as a local header's size, and then nothing is damaged).
    with zipfile.ZipFile(newest) as archive:
        largest = max(archive.infolist(), key=lambda info: info.compress_size)
    data[largest.header_offset + 30 + len(largest.filename) + largest.compress_size // 2] ^= 0x40
    newest.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="pulserec.online.snapshots"):
        restarted = reopen(engine)
    try:
        lines = [r.getMessage() for r in caplog.records if newest.name in r.getMessage()]
        assert len(lines) == 1 and "not used" in lines[0]
        assert restarted.snapshots.latest["watermark"] == 2000
        assert_same_state(full_replay(restarted), restarted.state)
    finally:
        restarted.close()


@pytest.mark.parametrize("damage", ["truncated", "foreign_version", "other_settings", "not_a_snapshot"])
def test_unusable_snapshots_mean_a_full_replay(engine, damage, caplog, monkeypatch):
    path = Path(engine.checkpoints.write()["path"])
    overrides = {}
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    elif damage == "foreign_version":
        header, arrays = snapshot_file.read(path)
        monkeypatch.setattr(snapshot_file, "FORMAT", 999)
        snapshot_file.write(path, arrays, header)
        monkeypatch.undo()
    elif damage == "other_settings":
        overrides = {"cooc_window": 7}
    else:
        path.write_bytes(b"PK\x03\x04 certainly not an npz")
    with caplog.at_level(logging.WARNING, logger="pulserec.online.snapshots"):
        restarted = reopen(engine, **overrides)
    try:
        assert restarted.snapshots.latest is None  # nothing loaded: the whole log was replayed
        assert any("not used" in r.getMessage() for r in caplog.records)
        assert_same_state(full_replay(restarted), restarted.state)
    finally:
        restarted.close()


def test_a_user_deleted_after_the_snapshot_stays_deleted(engine, shop, tmp_path):
    path = Path(engine.checkpoints.write()["path"])
    kept = tmp_path / "copy.npz"
    kept.write_bytes(path.read_bytes())  # as if the file had survived (a backup, a racing writer)
    victim = shop.events["user_id"].iloc[:2000].value_counts().index[0]
    assert engine.delete_user(victim) > 0
    assert not path.exists()  # the snapshot held the user: deleted with them
    kept.rename(path)
    restarted = reopen(engine)  # without a clean shutdown of `engine`: no newer snapshot
    try:
        assert restarted.snapshots.latest is None  # the stale copy was refused (deletion after it)
        assert restarted.state.owners.get(victim) is None or restarted.state.profiles.get(restarted.state.owners.get(victim)) is None
        assert restarted.profile(victim) is None
        assert_same_state(full_replay(restarted), restarted.state)
    finally:
        restarted.close()
    engine.close()  # a clean shutdown now writes a snapshot without the user
    again = reopen(engine)
    try:
        assert again.snapshots.latest is not None and again.profile(victim) is None
        assert_same_state(full_replay(again), again.state)
    finally:
        again.close()


WRITER = """
import sys
from pulserec.config import Settings
from pulserec.engine import Engine
engine = Engine(Settings.load(sys.argv[1], snapshot_keep=50))
print("ready", flush=True)
while True:
    if sys.argv[2] == "background":  # the thread writes while this one waits
        engine.checkpoints.write(background=True)
        engine.snapshots.wait()
    else:
        engine.checkpoints.write()
"""


@pytest.mark.parametrize("mode", ["foreground", "background"])
def test_sigkill_while_writing_a_snapshot_leaves_a_valid_state(engine, shop, mode):
    engine.ingest(as_events(shop.events.iloc[2000:]))
    engine.close()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(engine.settings.data_dir), mode], stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.05 + np.random.default_rng().random() * 0.3)  # somewhere in a write
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    restarted = reopen(engine)
    try:
        assert restarted.snapshots.latest is not None
        assert_same_state(full_replay(restarted), restarted.state)
    finally:
        restarted.close()


def test_the_snapshot_command_and_settings(tmp_path, engine):
    engine.close()
    result = subprocess.run([sys.executable, "-m", "pulserec.cli.main", "snapshot", "--data-dir", str(engine.settings.data_dir)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert '"watermark": 2000' in result.stdout
    with pytest.raises(ValueError, match="snapshot_keep"):
        Settings.load(tmp_path / "x", snapshot_keep=0)
    off = Engine(Settings.load(tmp_path / "off", snapshots=False))
    try:
        with pytest.raises(ValueError, match="snapshots are off"):
            off.checkpoints.write()
        assert off.stats()["snapshot"] is None
    finally:
        off.close()
