"""A deleted user's events do not survive in the event stream (issue 13.7): Redis Streams entries
are deleted (XDEL), and Kafka records, which cannot be deleted, are never applied again, even when
the topic is replayed from its start into a rebuilt state. Real redis-server and Kafka broker."""

from __future__ import annotations

import time

import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.online.redis.state import RedisState
from pulserec.online.streams import make_updater
from pulserec.urls import stream_key


NOW = time.time() - 3600
VICTIM = "victim-5e91b7"


def whole_redis_with(client, needle: bytes) -> list[str]:
    """Keys anywhere in this Redis (every namespace, the streams) whose name or value holds `needle`."""
    found = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        values = {"string": lambda: [client.get(key)], "list": lambda: client.lrange(key, 0, -1),
                  "set": lambda: list(client.smembers(key)), "zset": lambda: client.zrange(key, 0, -1),
                  "hash": lambda: [b for pair in client.hgetall(key).items() for b in pair],
                  "stream": lambda: [repr(client.xrange(key)).encode()]}.get(kind, lambda: [])()
        if needle in key or any(needle in (v or b"") for v in values):
            found.append(key.decode(errors="replace"))
    return found


def seeded(settings: Settings) -> Engine:
    """Events of three users, the victim's among them, anonymous ones they merge at login too."""
    engine = Engine(settings)
    engine.ingest([Event(f"o{i}", f"other{i % 2}", f"item-{i % 5}", "view", NOW + i) for i in range(20)]
                  + [Event(f"s{i}", None, f"item-{i}", "view", NOW + 30 + i, session_id="victim-tab") for i in range(3)])
    engine.ingest([Event(f"v{i}", VICTIM, f"item-{i % 5}", "purchase", NOW + 40 + i, session_id="victim-tab")
                   for i in range(6)])
    return engine


def drain(settings: Settings, group: str, state: RedisState, idle_reads: int = 50, session_timeout_ms: int = 10_000):
    """Step an updater until a read comes back empty after some delivery, or `idle_reads` empty
    reads of 200 ms with none (a Kafka group needs about half its session timeout to join: the
    test broker's short one, not the 10 s default; a Redis Streams group reads at once, so a few
    empty reads there mean the stream holds nothing for it)."""
    updater = make_updater(settings, state, group, "test-updater", batch=100, session_timeout_ms=session_timeout_ms)
    updater.block_ms = 200
    try:
        idle = 0
        for _ in range(50):
            if updater.step(200):
                continue
            if updater.stats.applied + updater.stats.duplicates + updater.stats.forgotten:
                break
            idle += 1
            if idle >= idle_reads:
                break
        return updater.stats
    finally:
        updater.close()


# Both tests read the whole server (whole_redis_with): a server of the module's own, not the session's
# (which holds every earlier test's namespace: scanning those took most of these tests' time).
def test_redis_streams_entries_of_a_deleted_user_are_deleted(tmp_path, own_redis_server):
    settings = Settings.load(tmp_path / "data", state_url=own_redis_server.url, stream_url=own_redis_server.url,
                             state_namespace=own_redis_server.namespace())
    engine = seeded(settings)
    try:
        stats = drain(settings, "g1", engine.state)
        assert stats.applied + stats.duplicates == 29  # the login merge applied the session's three itself
        engine.ingest([Event("v-late", VICTIM, "item-1", "view", NOW + 50)])  # published, not applied yet
        stream = engine.state.client.xrange(stream_key(settings))
        assert sum(VICTIM.encode() in fields[b"event"] for _, fields in stream) == 7
        assert engine.delete_user(VICTIM) == 10  # six purchases, the late view, three merged session views
        left = engine.state.client.xrange(stream_key(settings))
        assert len(left) == len(stream) - 10
        assert not any(VICTIM.encode() in f[b"event"] or b"victim-tab" in f[b"event"] for _, f in left)
        assert drain(settings, "g1", engine.state, idle_reads=3).applied == 0  # the late view is gone, not applied
        assert whole_redis_with(engine.state.client, VICTIM.encode()) == []
        assert engine.profile("other0")["event_count"] == 10
    finally:
        engine.close()


def test_a_replayed_kafka_topic_never_applies_a_deleted_users_events(tmp_path, own_redis_server, kafka_broker):
    pytest.importorskip("confluent_kafka")
    settings = Settings.load(tmp_path / "data", state_url=own_redis_server.url, stream_url=kafka_broker.url(),
                             state_namespace=own_redis_server.namespace())
    joins = kafka_broker.session_timeout_ms
    engine = seeded(settings)
    try:
        first = drain(settings, "first", engine.state, session_timeout_ms=joins)
        assert first.applied + first.duplicates == 29
        assert engine.delete_user(VICTIM) == 9
        engine.state.rebuild(engine.store)  # e.g. `pulserec rebuild-state`: the applied-id set starts over
        replayed = drain(settings, "replay", engine.state, session_timeout_ms=joins)  # a new group reads the topic from its start
        assert replayed.forgotten == 9 and replayed.applied == 0 and replayed.duplicates == 20
        assert engine.profile(VICTIM) is None
        assert whole_redis_with(engine.state.client, VICTIM.encode()) == []
    finally:
        engine.close()
