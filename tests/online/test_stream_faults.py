"""The stream path (API process -> Redis stream -> `pulserec updater` -> Redis state) with real
processes killed: an updater killed -9 between apply and acknowledge, Redis killed -9 with and
without persistence (state, stream and consumer group gone), and everything restarted in a
random order. At the end `events_applied == events_stored` and recommendations equal those of
a state rebuilt from the log."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pulserec.config import Settings
from pulserec.engine import Engine, StoredNotApplied
from pulserec.online.redis.connection import StateBackendError

from redis_faults import RedisProcess
from test_exactly_once import ITEMS, assert_level_with_the_log, batch
from pulserec.records import ItemRecord

HERE = Path(__file__).resolve().parent
SRC = str(HERE.parents[1] / "src")


def stream_settings(tmp_path, url: str) -> Settings:
    return Settings(data_dir=tmp_path, state_url=url, stream_url=url, state_namespace="faults", state_timeout_s=0.5,
                    state_sync_interval_s=3600, stream_grace_s=0.3)


def start_api(settings: Settings) -> Engine:
    engine = Engine(settings)
    if not engine.store.load_items():
        engine.put_items([ItemRecord(f"item-{i}", title=f"Item {i}", category=f"c{i % 3}") for i in range(ITEMS)])
    return engine


def start_updater(settings: Settings, consumer: str = "updater-1") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC, "PULSEREC_STATE_NAMESPACE": settings.state_namespace,
           "PULSEREC_STATE_TIMEOUT_S": "0.5"}
    return subprocess.Popen([sys.executable, "-m", "pulserec.cli.main", "updater", "--state", settings.state_url,
                             "--stream", settings.stream_url, "--data-dir", str(settings.data_dir), "--consumer",
                             consumer, "--min-idle-ms", "300"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def kill(process: subprocess.Popen) -> None:
    process.kill()
    process.wait(timeout=10)


def post(engine: Engine, start: int, n: int) -> int:
    """Batches of 5; returns how many were answered 'stored, applied later' (a 503)."""
    refused = 0
    for first in range(start, start + n, 5):
        try:
            engine.ingest(batch(first, min(5, start + n - first)))
        except StoredNotApplied:
            refused += 1
    return refused


def settle(engine: Engine, timeout: float = 30.0) -> None:
    """Let the updater and the API process's check bring the state level with the log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        engine.supervisor.check()
        stats = engine.stats() if engine.supervisor.health().ok else None
        if stats and stats["events_applied"] == stats["events_stored"]:
            return
        time.sleep(0.2)
    raise AssertionError(f"not level after {timeout}s: {engine.supervisor.health()}, {engine.store.event_count()} stored")


def test_an_updater_killed_between_apply_and_acknowledge(tmp_path):
    server = RedisProcess(tmp_path, aof=False)
    settings = stream_settings(tmp_path, server.url)
    engine = start_api(settings)
    stalling = subprocess.Popen([sys.executable, str(HERE / "redis_stalling_updater.py"), server.url,
                                 settings.state_namespace, "doomed"], env={**os.environ, "PYTHONPATH": SRC},
                                stdout=subprocess.PIPE, text=True)
    rescuer = None
    try:
        post(engine, 0, 30)
        assert stalling.stdout.readline().startswith("applied 7")  # type: ignore[union-attr]
        kill(stalling)  # applied 7, acknowledged none
        rescuer = start_updater(settings, "rescuer")  # takes the 7 over after 300 ms idle: duplicates
        post(engine, 30, 20)
        settle(engine)
        assert_level_with_the_log(engine, tmp_path)
    finally:
        for process in (stalling, rescuer):
            if process is not None and process.poll() is None:
                kill(process)
        engine.close()
        server.stop()


@pytest.mark.parametrize("aof", [False, True], ids=["no-persistence", "aof"])
def test_redis_killed_under_the_stream_and_everything_restarted_in_random_order(tmp_path, aof):
    server = RedisProcess(tmp_path, aof)
    settings = stream_settings(tmp_path, server.url)
    engine: Engine | None = start_api(settings)
    updater: subprocess.Popen | None = start_updater(settings)
    rng, sent, refused = random.Random(int(aof)), 0, 0  # seeds whose orders kill Redis before the API once
    try:
        for _ in range(3):  # rounds: kill the three in a random order, then restart them in another
            post(engine, sent, 30)
            sent += 30
            for part in rng.sample(["redis", "updater", "api"], 3):
                if part == "redis":
                    server.kill()
                elif part == "updater":
                    kill(updater)
                else:
                    engine.supervisor.stop()  # an API process killed: its state in memory is gone
                    engine = None
                if engine is not None:
                    refused += post(engine, sent, 10)
                    sent += 10
            # Restart like a process manager: a process that cannot reach Redis at start exits
            # with one clear error and is started again after the next component is up.
            waiting: list[str] = []
            for part in rng.sample(["redis", "updater", "api"], 3):
                if part == "redis":
                    server.start()
                for name in [*waiting, part] if part != "redis" or waiting else []:
                    try:
                        if name == "api":
                            engine = start_api(settings)
                        elif name == "updater":
                            updater = start_updater(settings)
                            time.sleep(0.5)  # a process that will stop on 'Redis down' has by now
                            if updater.poll() is not None:
                                raise StateBackendError("updater exited")
                        waiting = [w for w in waiting if w != name]
                    except StateBackendError:
                        waiting = list(dict.fromkeys([*waiting, name]))
            assert not waiting and engine is not None
        settle(engine)
        assert refused > 0  # some writes did meet a dead Redis
        assert engine.store.event_count() == sent
        assert_level_with_the_log(engine, tmp_path)
    finally:
        if updater is not None and updater.poll() is None:
            kill(updater)
        if engine is not None:
            engine.close()
        server.stop()
