"""Invalidation pushes (online/redis/pushes.py): a request whose inputs did not change asks Redis
nothing, any write (this process's or another's) shows in the very next answer, and a channel
that is lost, silent or refused falls back to one READ per request with the same answers."""

from __future__ import annotations

import time

import pytest
import redis

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.online.redis import pushes
from pulserec.online.redis.pushes import PushChannel
from pulserec.records import ItemRecord

NOW = time.time() - 3600
USERS = [f"fan-{u}" for u in range(6)]


def listing(answer) -> list[tuple[str, float, str]]:
    return [(r.item_id, r.score, r.reason) for r in answer.items]


@pytest.fixture
def engines(redis_server, tmp_path):
    """A reader (pushes on), a writer (another process's state) and a reference that reads every
    request (pushes off), on one store and one Redis namespace."""
    settings = Settings(state_url=redis_server.url, state_namespace=redis_server.namespace(), data_dir=tmp_path)
    reader, writer, reference = Engine(settings), Engine(settings), Engine(settings)
    reference.state.push_generation = lambda open_channel=True: None
    writer.put_items([ItemRecord(f"shoe-{i}", title=f"Shoe {i}", category="shoes") for i in range(6)]
                     + [ItemRecord(f"book-{i}", title=f"Book {i}", category="books") for i in range(6)])
    writer.ingest([Event(f"s{u}-{i}", user, f"{'shoe' if u % 2 else 'book'}-{i}", "view", NOW + u * 100 + i)
                   for u, user in enumerate(USERS) for i in range(4)])
    yield reader, writer, reference
    for engine in (reader, writer, reference):
        engine.close()


def counted_reads(engine: Engine) -> list[str]:
    calls: list[str] = []
    scripts = engine.state.scripts
    for name in ("read", "rows"):
        script = getattr(scripts, name)
        setattr(scripts, name, lambda *a, _s=script, _n=name, **k: calls.append(_n) or _s(*a, **k))
    return calls


def same_answers(reader: Engine, reference: Engine) -> None:
    for user in USERS + ["nobody"]:
        assert listing(reader.recommend(user, 5)) == listing(reference.recommend(user, 5)), user


def test_unchanged_inputs_cost_no_call_and_every_write_shows_in_the_next_answer(engines):
    reader, writer, reference = engines
    calls = counted_reads(reader)
    same_answers(reader, reference)
    calls.clear()
    same_answers(reader, reference)
    assert calls == []  # nothing changed: every view kept
    writes = [
        lambda: writer.ingest([Event("own", "fan-0", "shoe-5", "click", NOW + 9000)]),  # the user's own event
        lambda: writer.ingest([Event("other", "fan-3", "book-1", "view", NOW + 9001)]),  # someone else's
        lambda: writer.put_items([ItemRecord("shoe-1", active=False)]),  # the catalogue
        lambda: writer.delete_user("fan-5"),  # a deletion
        lambda: reader.ingest([Event("mine", "fan-1", "book-4", "view", NOW + 9002)]),  # this process's write
    ]
    for k, write in enumerate(writes):
        before = reader.recommend("fan-0", 5).history_size
        write()
        same_answers(reader, reference)  # at once: no wait for the push
        assert calls  # the write made the views stale: read again
        calls.clear()
        if k == 0:  # the user's own click is in their very next answer
            assert reader.recommend("fan-0", 5).history_size == before + 1


def test_a_new_owner_whose_rows_are_held_is_one_read(engines):
    """Rows a script checked since the last push are current: a first request reads the
    owner's data and no row (fan-4 reads the rows fan-0 read)."""
    reader, writer, reference = engines
    calls = counted_reads(reader)
    reader.recommend("fan-0", 5)
    calls.clear()
    assert listing(reader.recommend("fan-4", 5)) == listing(reference.recommend("fan-4", 5))
    assert calls == ["read"]
    writer.ingest([Event("row", "fan-2", "book-3", "click", NOW + 9500)])  # book-3's row grows
    calls.clear()
    assert listing(reader.recommend("fan-0", 5)) == listing(reference.recommend("fan-0", 5))
    assert calls == ["read", "rows"] or calls == ["read"]  # rows checked again (by READ's list or ROWS)


def test_a_push_is_in_the_socket_when_the_write_is_acknowledged(redis_server):
    """What makes the next answer exact across processes: Redis sends the invalidation before
    (or with) the writer's reply, so a read that starts after the acknowledgement finds it."""
    prefix = redis_server.namespace() + ":"
    channel = PushChannel(redis_server.url, prefix, 2.0)
    writer = redis.Redis.from_url(redis_server.url)
    try:
        generation = channel.generation()
        assert generation is not None
        for i in range(200):
            writer.eval("redis.call('HINCRBY', ARGV[1], 'applied', 1)", 0, prefix + "meta") if i % 2 else \
                writer.hincrby(prefix + "ver", str(i), 1)
            moved = channel.generation()
            assert moved is not None and moved > generation, i
            generation = moved
        writer.set(prefix + "hist:1", b"x")  # not watched: every change also writes a watched key
        assert channel.generation() == generation
    finally:
        channel.close()
        writer.close()


def test_a_killed_channel_falls_back_to_reading_and_answers_stay_exact(engines, redis_server, monkeypatch):
    reader, writer, reference = engines
    monkeypatch.setattr(pushes, "RETRY_S", 0.05)
    calls = counted_reads(reader)
    same_answers(reader, reference)
    admin = redis.Redis.from_url(redis_server.url)
    try:
        for round_ in range(3):
            killed = admin.client_kill_filter(_type="pubsub", skipme=True)
            assert killed >= 1
            writer.ingest([Event(f"k{round_}", "fan-2", f"shoe-{round_}", "click", NOW + 10_000 + round_)])
            calls.clear()
            same_answers(reader, reference)  # the lost channel is noticed: read, exact
            assert calls.count("read") >= len(USERS) + 1
            time.sleep(0.1)  # the channel comes back; views are kept again from its new generation
            same_answers(reader, reference)
            calls.clear()
            same_answers(reader, reference)
            assert calls == []
    finally:
        admin.close()


def test_a_silent_channel_is_trusted_only_until_its_heartbeat_is_late(engines, monkeypatch):
    """A half-open connection delivers nothing: views are trusted only while a PING sent on it
    was answered within TRUSTED_S."""
    reader, writer, reference = engines
    monkeypatch.setattr(pushes, "HEARTBEAT_S", 0.01)
    monkeypatch.setattr(pushes, "TRUSTED_S", 0.1)
    same_answers(reader, reference)
    channel = reader.state._pushes
    channel._poll = __import__("select").poll()  # nothing registered: no push, no PONG is seen
    writer.ingest([Event("silent", "fan-4", "shoe-2", "click", NOW + 20_000)])
    time.sleep(0.15)
    calls = counted_reads(reader)
    same_answers(reader, reference)
    assert calls.count("read") >= len(USERS) + 1


def test_a_server_that_refuses_tracking_is_read_every_request(engines, monkeypatch):
    reader, writer, reference = engines
    monkeypatch.setattr(pushes, "WATCHED", ("meta", "met"))  # overlapping prefixes: Redis refuses them
    if reader.state._pushes is not None:  # opened at the start: open it anew
        reader.state._pushes.close()
        reader.state._pushes = None
    calls = counted_reads(reader)
    same_answers(reader, reference)
    assert reader.state._pushes.disabled
    calls.clear()
    same_answers(reader, reference)
    assert calls.count("read") == len(USERS) + 1
    writer.ingest([Event("refused", "fan-1", "book-5", "click", NOW + 30_000)])
    same_answers(reader, reference)


def test_only_serving_reads_open_the_channel(redis_server):
    """An updater reads its catalogue mirror and writes: it never drains pushes, so it must not
    subscribe to them (Redis would buffer them for it)."""
    from pulserec.online.redis.state import RedisState

    state = RedisState(Settings(state_url=redis_server.url, state_namespace=redis_server.namespace()))
    try:
        state.apply(Event("u1", "someone", "item-1", "view", NOW))
        state.catalog.synced()
        assert state._pushes is None
        with state.reading("someone"):
            assert state.histories.recent(state.owners.get("someone"))
        assert state._pushes is not None and state._pushes.generation() is not None
    finally:
        state.close()


def test_a_forked_child_opens_its_own_channel(redis_server):
    """A child forked after its parent opened the channel must not drain the parent's socket
    (each would see only part of the pushes): it starts a generation of its own connection."""
    import os

    channel = PushChannel(redis_server.url, redis_server.namespace() + ":", 2.0)
    try:
        before = channel.generation()
        parent_socket = channel._conn._sock
        pid = os.fork()
        if pid == 0:  # the child: report through the exit status only
            moved = channel.generation()
            ok = moved is not None and moved > before and channel._conn._sock is not parent_socket
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        assert channel.generation() == before and channel._conn._sock is parent_socket  # the parent's is intact
    finally:
        channel.close()
