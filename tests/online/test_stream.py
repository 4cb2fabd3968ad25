"""The Redis event stream: published by the API engine, applied by updaters exactly once."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.online.redis.connection import StateBackendError
from pulserec.online.redis.state import RedisState
from pulserec.online.streams import make_updater
from pulserec.online.streams.codec import decode_event
from pulserec.online.streams.redis_streams import StreamUpdater
from pulserec.online.streams.redis_streams import shard_of
from pulserec.serving.server import free_port
from pulserec.urls import stream_key
from stream_helpers import CrashingState, counts, events

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def settings(tmp_path, redis_server) -> Settings:
    return Settings(data_dir=tmp_path, state_url=redis_server.url, stream_url=redis_server.url,
                    state_namespace=redis_server.namespace())


def updater(settings: Settings, state, consumer: str, min_idle_ms: int = 0) -> StreamUpdater:
    return StreamUpdater(state, settings.stream_url, stream_key(settings), consumer=consumer, min_idle_ms=min_idle_ms,
                         block_ms=0)


def test_the_updater_applies_what_the_api_publishes(settings):
    engine = Engine(settings)
    assert not engine.applies_locally
    engine.ingest(events(6))
    assert engine.state.applied == 0  # stored and published, not applied by the API process
    worker = updater(settings, RedisState(settings), "c1")
    assert worker.step() == 6
    assert counts(engine.state) == (6, 6, 6)
    assert not engine.recommend("u", 3).cold_start
    assert worker.client.xpending(worker.key, worker.group)["pending"] == 0
    engine.close()


def test_a_crashed_consumers_pending_messages_are_reclaimed_and_applied_once(settings):
    engine = Engine(settings)
    engine.ingest(events(10))
    crashing = updater(settings, CrashingState(RedisState(settings), survive=4), "doomed")
    with pytest.raises(RuntimeError, match="crashed"):
        crashing.step()
    assert crashing.client.xpending(crashing.key, crashing.group)["pending"] == 10
    patient = updater(settings, RedisState(settings), "patient", min_idle_ms=60_000)
    assert patient.step() == 0  # not idle long enough to be taken over yet
    time.sleep(0.05)
    rescuer = updater(settings, RedisState(settings), "rescuer", min_idle_ms=20)
    assert rescuer.step() == 10
    assert (rescuer.stats.reclaimed, rescuer.stats.applied, rescuer.stats.duplicates) == (10, 6, 4)
    assert counts(engine.state) == (10, 10, 10)
    assert rescuer.client.xpending(rescuer.key, rescuer.group)["pending"] == 0
    engine.close()


def test_duplicate_deliveries_never_double_count(settings):
    engine = Engine(settings)
    batch = events(5)
    engine.ingest(batch)
    engine.publisher.publish([(e, 100 + i) for i, e in enumerate(batch)])  # a producer retried its publish
    worker = updater(settings, RedisState(settings), "c1")
    assert worker.step() == 10
    assert (worker.stats.applied, worker.stats.duplicates) == (5, 5)
    assert counts(engine.state) == (5, 5, 5)
    engine.close()


def test_forgetting_a_user_wins_over_their_undelivered_events(settings):
    engine = Engine(settings)
    engine.ingest(events(3, "keeper"))
    updater(settings, RedisState(settings), "c1").step()
    engine.ingest(events(4, "leaver"))  # published, not applied yet
    assert engine.delete_user("leaver") == 4  # their entries are deleted from the stream (XDEL)
    worker = updater(settings, RedisState(settings), "c2")
    assert worker.step() == 0 and worker.stats.applied == worker.stats.duplicates == 0
    assert counts(engine.state, "leaver") == (3, 3, 0)
    engine.close()


def test_a_failed_publish_is_applied_in_process(settings, monkeypatch):
    engine = Engine(settings)

    def broken(_events):
        raise redis.ConnectionError("stream unreachable")

    monkeypatch.setattr(engine.publisher, "publish", broken)
    engine.ingest(events(2))
    assert counts(engine.state) == (2, 2, 2)
    engine.close()


def test_stream_down_at_start_is_one_clear_error(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(StateBackendError, match=f"cannot use Redis stream at {url}"):
        Engine(Settings(data_dir=tmp_path, stream_url=url))


def test_updater_command_applies_until_stopped(settings):
    engine = Engine(settings)
    env = {**os.environ, "PYTHONPATH": SRC, "COLUMNS": "200"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pulserec.cli.main", "updater", "--state", settings.state_url, "--stream",
         settings.stream_url, "--data-dir", str(settings.data_dir), "--consumer", "cli"],
        env={**env, "PULSEREC_STATE_NAMESPACE": settings.state_namespace}, stdout=subprocess.PIPE, text=True,
    )
    try:
        # Events only once it consumes (its stop handlers installed): under load the engine applied
        # them itself after stream_grace_s while the updater was still importing, and the SIGTERM
        # then came before its handler (-15, nothing applied by it).
        readable, _, _ = select.select([process.stdout], [], [], 60)
        line = process.stdout.readline() if readable else ""
        assert "consuming" in line, f"the updater did not start: {line!r}"
        engine.ingest(events(5))
        deadline = time.monotonic() + 30
        while engine.state.applied < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.state.applied == 5
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0 and "stopped: 5 applied" in out
    engine.close()


def test_owner_sharded_streams_each_applied_by_its_own_updater(settings):
    sharded = Settings(**{**settings.__dict__, "stream_shards": 2})
    engine = Engine(sharded)
    workers = [make_updater(sharded, RedisState(sharded), consumer=f"s{k}", shard=k) for k in (0, 1)]
    engine.ingest(events(40, users=6))
    handled = [worker.step(block_ms=0) for worker in workers]
    assert sum(handled) == 40 and all(handled)  # both shards carry events
    for k, worker in enumerate(workers):  # one owner's events all in one shard
        owners = {decode_event(fields)[0].owner for _, fields in worker.client.xrange(worker.key)}
        assert all(shard_of(owner, 2) == k for owner in owners)
    assert engine.state.applied == 40
    with pytest.raises(ValueError, match="shard 2 does not exist"):
        make_updater(sharded, engine.state, shard=2)
    engine.close()
