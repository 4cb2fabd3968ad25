"""The Kafka event stream: published by the API engine, applied by updaters exactly once in effect.

Runs against a real broker (see tests/kafka_fixture.py: Tansu on 127.0.0.1, or
PULSEREC_KAFKA_BOOTSTRAP); each test uses its own topic and consumer group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: E402

from pulserec.client import Client  # noqa: E402
from pulserec.config import Settings  # noqa: E402
from pulserec.engine import Engine  # noqa: E402
from pulserec.events import Event  # noqa: E402
from pulserec.online.redis.state import RedisState  # noqa: E402
from pulserec.online.streams.codec import decode_message  # noqa: E402
from pulserec.online.streams.kafka import KafkaPublisher, KafkaStreamError, KafkaUpdater  # noqa: E402
from pulserec.urls import KafkaUrl  # noqa: E402
from pulserec.serving.server import BackgroundServer, free_port  # noqa: E402
from stream_helpers import NOW, CrashingState, counts, events  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]), "COLUMNS": "200"}


@pytest.fixture
def settings(tmp_path, redis_server, kafka_broker) -> Settings:
    return Settings(data_dir=tmp_path, state_url=redis_server.url, stream_url=kafka_broker.url(),
                    state_namespace=redis_server.namespace())


def with_partitions(settings: Settings, kafka_broker, partitions: int) -> Settings:
    return settings.with_overrides(stream_url=kafka_broker.url(partitions=partitions))


def group_of(settings: Settings) -> str:
    return f"{settings.state_namespace}-updaters"


def updater(settings: Settings, kafka_broker, consumer: str, state=None, kind: type[KafkaUpdater] = KafkaUpdater):
    url = KafkaUrl.parse(settings.stream_url)
    return kind(state or RedisState(settings), url, url.topic_for(settings), group_of(settings), consumer,
                block_ms=100, session_timeout_ms=kafka_broker.session_timeout_ms)


def step_until(done: Callable[[], bool], *workers: KafkaUpdater, timeout: float = 20.0) -> None:
    """Step every worker in turn (a rebalance needs all members polling) until `done()`."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out waiting for the updaters"
        for worker in workers:
            worker.step(100)


def drain(worker: KafkaUpdater, messages: int, timeout: float = 20.0) -> tuple[int, int]:
    """Step until `messages` were handled; returns (applied, duplicates)."""
    step_until(lambda: worker.stats.applied + worker.stats.duplicates >= messages, worker, timeout=timeout)
    return worker.stats.applied, worker.stats.duplicates


def committed(settings: Settings, kafka_broker, partitions: int = 1) -> list[int]:
    """The group's committed offsets (OFFSET_INVALID where none), read without joining the group."""
    reader = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": group_of(settings)})
    try:
        topic = KafkaUrl.parse(settings.stream_url).topic_for(settings)
        return [tp.offset for tp in reader.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)]
    finally:
        reader.close()


def test_events_posted_to_the_api_reach_the_state_through_the_updater_command(settings, kafka_broker):
    engine = Engine(settings)
    assert isinstance(engine.publisher, KafkaPublisher) and not engine.applies_locally
    process = subprocess.Popen(
        [sys.executable, "-m", "pulserec.cli.main", "updater", "--state", settings.state_url, "--stream",
         settings.stream_url, "--data-dir", str(settings.data_dir), "--consumer", "cli", "--group",
         group_of(settings), "--session-timeout-ms", str(max(kafka_broker.session_timeout_ms, 1000))],
        env={**ENV, "PULSEREC_STATE_NAMESPACE": settings.state_namespace}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )
    try:
        with BackgroundServer(engine) as server, Client(server.url) as client:
            before = client.recommend("alice", 5)
            client.put_items([{"item_id": f"item-{i}"} for i in range(3)])  # only catalogue items are served
            client.send_events([{"event_id": f"a{i}", "user_id": "alice", "item_id": f"item-{i}", "type": "view",
                                 "timestamp": NOW + i} for i in range(3)])
            client.send_events([{"event_id": f"b{i}", "user_id": "bob", "item_id": f"item-{i}", "type": "view",
                                 "timestamp": NOW + 10 + i} for i in range(2)])
            assert before.cold_start and before.history_size == 0
            deadline = time.monotonic() + 20
            while engine.state.applied < 5 and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.05)
            assert engine.state.applied == 5
            after = client.recommend("alice", 5)
            assert not after.cold_start and after.history_size == 3
            assert "item-1" in [r.item_id for r in client.similar("item-0", 5).items]  # co-viewed by both
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
        engine.close()
    assert process.returncode == 0, out
    assert f"consuming Kafka topic {settings.state_namespace}.events" in out and "stopped: 5 applied" in out


def test_one_owners_events_share_a_partition_in_order(settings, kafka_broker):
    settings = with_partitions(settings, kafka_broker, 3)
    engine = Engine(settings)
    batch = events(30, users=5) + [Event("s-1", None, "item-9", "view", NOW, session_id="anon")]
    engine.ingest(batch)
    engine.close()
    reader = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    topic = f"{settings.state_namespace}.events"
    reader.assign([TopicPartition(topic, p, 0) for p in range(3)])
    seen: dict[bytes, list[tuple[int, int]]] = {}
    deadline = time.monotonic() + 10
    while sum(map(len, seen.values())) < len(batch) and time.monotonic() < deadline:
        for message in reader.consume(100, timeout=0.2):
            assert message.error() is None
            event, seq = decode_message(message.value())
            assert message.key() == event.owner.encode()
            seen.setdefault(message.key(), []).append((message.partition(), seq))
    reader.close()
    assert sum(map(len, seen.values())) == len(batch)
    assert {key.decode() for key in seen} == {e.owner for e in batch}
    for key, placed in seen.items():
        assert len({partition for partition, _ in placed}) == 1, key  # one partition per owner
        assert [seq for _, seq in placed] == sorted(seq for _, seq in placed), key  # in log order
    assert len({placed[0][0] for placed in seen.values()}) > 1  # the owners did spread over partitions


def test_duplicate_deliveries_never_double_count(settings, kafka_broker):
    engine = Engine(settings)
    batch = events(5)
    engine.ingest(batch)
    engine.publisher.publish([(e, 100 + i) for i, e in enumerate(batch)])  # a producer retried its publish
    worker = updater(settings, kafka_broker, "c1")
    assert drain(worker, 10) == (5, 5)
    assert counts(engine.state) == (5, 5, 5)
    assert committed(settings, kafka_broker) == [10]
    worker.close()
    engine.close()


def test_an_updater_that_stops_without_committing_leaves_its_messages_to_another_member(settings, kafka_broker):
    engine = Engine(settings)
    engine.ingest(events(10))
    doomed = updater(settings, kafka_broker, "doomed", CrashingState(RedisState(settings), survive=4))
    with pytest.raises(RuntimeError, match="crashed"):
        step_until(lambda: False, doomed)
    assert counts(engine.state) == (4, 4, 4)
    doomed.close()  # leaves the group; nothing was committed
    assert committed(settings, kafka_broker) == [OFFSET_INVALID]  # nothing committed
    rescuer = updater(settings, kafka_broker, "rescuer")
    assert drain(rescuer, 10) == (6, 4)
    assert counts(engine.state) == (10, 10, 10)
    assert committed(settings, kafka_broker) == [10]
    rescuer.close()
    engine.close()


def test_a_killed_updaters_applied_but_uncommitted_events_are_redelivered_and_count_once(settings, kafka_broker):
    engine = Engine(settings)
    engine.ingest(events(8))
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("kafka_stalling_updater.py")), settings.state_url,
         settings.state_namespace, settings.stream_url, group_of(settings), str(kafka_broker.session_timeout_ms)],
        env=ENV, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout.readline().strip() == "applied 8"  # ... and now stuck before its commit
        assert counts(engine.state) == (8, 8, 8)
    finally:
        process.kill()  # SIGKILL: no commit, no LeaveGroup; the group notices when its session expires
        process.wait(timeout=10)
    rescuer = updater(settings, kafka_broker, "rescuer")
    assert drain(rescuer, 8, timeout=30) == (0, 8)
    assert counts(engine.state) == (8, 8, 8)
    assert committed(settings, kafka_broker) == [8]
    rescuer.close()
    engine.close()


class LateCommitter(KafkaUpdater):
    """Commits only when partitions are revoked (as if every commit after a batch had failed)."""

    revoking = False

    def commit(self) -> None:
        if self.revoking:
            super().commit()

    def _revoked(self, consumer, partitions) -> None:
        self.revoking = True
        try:
            super()._revoked(consumer, partitions)
        finally:
            self.revoking = False


def test_partitions_taken_away_in_a_rebalance_are_committed_first(settings, kafka_broker):
    settings = with_partitions(settings, kafka_broker, 2)
    engine = Engine(settings)
    engine.ingest(events(12, users=6))
    first = updater(settings, kafka_broker, "first", kind=LateCommitter)
    step_until(lambda: first.stats.applied == 12, first)
    assert first.uncommitted and committed(settings, kafka_broker, 2) == [OFFSET_INVALID] * 2
    second = updater(settings, kafka_broker, "second")
    step_until(lambda: bool(second.consumer.assignment()), first, second)
    assert not first.uncommitted and sum(committed(settings, kafka_broker, 2)) == 12  # committed on revocation
    for _ in range(5):
        second.step(100)
    assert (second.stats.applied, second.stats.duplicates) == (0, 0)  # so nothing is delivered again
    assert counts(engine.state, "u0") == (12, 12, 2)
    first.close()
    second.close()
    engine.close()


class FlakyCommits:
    """A consumer whose first offset commit fails (as on a broker hiccup)."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer, self.failures = consumer, 1

    def commit(self, **kwargs):
        if self.failures:
            self.failures -= 1
            raise KafkaException(KafkaError(KafkaError.REQUEST_TIMED_OUT))
        return self.consumer.commit(**kwargs)

    def __getattr__(self, name):
        return getattr(self.consumer, name)


def test_a_failed_commit_is_retried(settings, kafka_broker):
    engine = Engine(settings)
    engine.ingest(events(3))
    worker = updater(settings, kafka_broker, "c1")
    worker.consumer = FlakyCommits(worker.consumer)
    assert drain(worker, 3) == (3, 0)
    assert worker.uncommitted and committed(settings, kafka_broker) == [OFFSET_INVALID]
    worker.step(0)
    assert not worker.uncommitted and committed(settings, kafka_broker) == [3]
    worker.close()
    engine.close()


def test_a_malformed_message_is_skipped_and_committed_past(settings, kafka_broker):
    engine = Engine(settings)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    producer.produce(engine.publisher.topic, key=b"u", value=b'{"event": "{}", "seq": "x"}')
    producer.flush(10)
    engine.ingest(events(3))
    worker = updater(settings, kafka_broker, "c1")
    step_until(lambda: worker.stats.applied == 3, worker)
    assert worker.stats.malformed == 1
    assert committed(settings, kafka_broker) == [4]
    worker.close()
    engine.close()


def test_a_failed_publish_is_applied_in_process(tmp_path, redis_server, kafka_broker):
    from kafka_fixture import local_tansu, tansu_binary

    binary = tansu_binary()
    if binary is None:
        pytest.skip("needs a Tansu binary to stop a broker")
    with local_tansu(binary, tmp_path) as doomed:
        engine = Engine(Settings(data_dir=tmp_path / "d", state_url=redis_server.url, stream_url=f"kafka://{doomed}",
                                 state_namespace=redis_server.namespace()))
    # the broker is gone now
    engine.publisher.timeout_s = 1.0
    engine.ingest(events(2))  # publishing fails: the API process applies them itself
    assert counts(engine.state) == (2, 2, 2)
    engine.close()


def test_a_broker_down_at_start_is_one_clear_error():
    url = KafkaUrl.parse(f"kafka://127.0.0.1:{free_port()}")
    with pytest.raises(KafkaStreamError, match=f"cannot use Kafka stream at {url.url}"):
        KafkaPublisher(url, "pulserec.events", timeout_s=1.0)
