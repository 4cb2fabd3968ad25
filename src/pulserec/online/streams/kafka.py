"""The event stream on Kafka (confluent-kafka), in the same shape as the Redis Streams one.

* Publishing: an idempotent producer (`enable.idempotence`, `acks=all`). The message key is the
  event's owner (the user, else the anonymous session), so one owner's events stay in order in
  one partition: co-occurrence pairs depend on a user's event order. `publish` returns only once
  the broker acknowledged every message of the batch and raises otherwise (the engine then
  applies the events in-process; a late delivery is a duplicate the state ignores).
* Updating: one member of a consumer group (`group.id`), auto-commit off. A polled batch is
  applied to the state, then its offsets are committed synchronously: at-least-once. When a
  member crashes (no heartbeat for `session_timeout_ms`) or leaves, its partitions go to the
  other members, which resume from the last committed offset: Kafka's counterpart of
  XAUTOCLAIM; the redelivered events are duplicates that the state skips by event id. Before a
  rebalance takes partitions away, what was applied from them is committed.

The topic is created on first use (`?partitions=N`, default 1, with the broker's default
replication) unless it exists.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from typing import Any

from pulserec.events import Event
from pulserec.online.streams.codec import encode_message, message_fields
from pulserec.online.streams.updater import DEFAULT_BATCH, DEFAULT_GROUP, Applier, Updater
from pulserec.urls import KafkaUrl

try:
    from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError as exc:  # the optional extra is not installed
    raise ImportError("a kafka:// stream needs confluent-kafka: pip install 'pulserec[kafka]'") from exc

log = logging.getLogger(__name__)


#: Longest a consumer's fetch waits for new messages (see KafkaUpdater), in milliseconds.
FETCH_WAIT_MS = 50


class KafkaStreamError(RuntimeError):
    """The Kafka stream cannot be used (no broker answers, or the topic cannot be created)."""


class PublishError(RuntimeError):
    """The broker did not acknowledge every message of a batch in time."""


def client_config(url: KafkaUrl, client_id: str) -> dict[str, Any]:
    """Settings every client shares; librdkafka's own log lines go to Python logging."""
    return {"bootstrap.servers": url.bootstrap, "client.id": client_id, "logger": log,
            "error_cb": lambda error: log.warning("kafka: %s", error.str())}


def ensure_topic(url: KafkaUrl, topic: str, timeout_s: float) -> None:
    """Create `topic` unless it exists; KafkaStreamError if no broker answers in `timeout_s`."""
    admin = AdminClient(client_config(url, "pulserec-admin"))
    futures = admin.create_topics([NewTopic(topic, num_partitions=url.partitions, replication_factor=-1)],
                                  request_timeout=timeout_s)
    try:
        futures[topic].result(timeout=timeout_s + 5)
    except KafkaException as exc:
        error = exc.args[0]
        if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise KafkaStreamError(f"cannot use Kafka stream at {url.url}: {error.str()}") from None
    except TimeoutError:
        raise KafkaStreamError(f"cannot use Kafka stream at {url.url}: no answer in {timeout_s:g}s") from None


class _Deliveries:
    """Delivery reports of one `publish` call."""

    def __init__(self) -> None:
        self.sent = self.acknowledged = 0
        self.errors: list[str] = []

    def report(self, error: KafkaError | None, _message: Message) -> None:
        if error is None:
            self.acknowledged += 1
        else:
            self.errors.append(error.str())


class KafkaPublisher:
    """Produces stored events to the topic; `publish` blocks until the broker acknowledged them."""

    def __init__(self, url: KafkaUrl, topic: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.topic = topic
        self.timeout_s = timeout_s
        ensure_topic(url, topic, timeout_s)
        self.producer = Producer({**client_config(url, "pulserec-publisher"), "enable.idempotence": True,
                                  "acks": "all", "message.timeout.ms": int(timeout_s * 1000), "linger.ms": 1})
        try:  # connect now: the first publish then need not wait for a producer id (else ~0.5 s)
            self.producer.list_topics(topic, timeout=timeout_s)
        except KafkaException as exc:
            raise KafkaStreamError(f"cannot use Kafka stream at {url.url}: {exc.args[0].str()}") from None

    def publish(self, events: Iterable[tuple[Event, int]]) -> None:
        deliveries = _Deliveries()
        for event, seq in events:
            self.producer.produce(self.topic, key=event.owner.encode(), value=encode_message(event, seq),
                                  on_delivery=deliveries.report)
            deliveries.sent += 1
        if not deliveries.sent:
            return
        self.producer.flush(self.timeout_s)
        if deliveries.acknowledged < deliveries.sent:
            missing = deliveries.sent - deliveries.acknowledged
            reason = deliveries.errors[0] if deliveries.errors else f"no acknowledgement in {self.timeout_s:g}s"
            raise PublishError(f"{missing} of {deliveries.sent} events not acknowledged by {self.url.url}: {reason}")

    def forget(self, owners: Collection[str], event_ids: Collection[str]) -> int:
        """Kafka cannot delete single records: they stay until the topic's retention drops them
        (docs/security.md); the state's deletion set keeps every updater from applying them."""
        return 0

    def close(self) -> None:
        """Drop what failed publishes left queued: the engine applied those events itself."""
        self.producer.purge()
        self.producer.flush(0)


class KafkaUpdater(Updater):
    """One member of the consumer group: applies each polled batch, then commits its offsets."""

    retry_on = (KafkaException,)

    def __init__(self, state: Applier, url: KafkaUrl, topic: str, group: str = DEFAULT_GROUP, consumer: str = "updater-1",
                 batch: int = DEFAULT_BATCH, block_ms: int = 1000, session_timeout_ms: int = 10_000, timeout_s: float = 10.0) -> None:
        super().__init__(state, group, batch, block_ms)
        self.url = url
        self.topic = topic
        self.description = f"Kafka topic {topic} at {url.url}"
        #: Per (topic, partition): the offset after the last applied message, not yet committed.
        self.uncommitted: dict[tuple[str, int], int] = {}
        ensure_topic(url, topic, timeout_s)  # subscribing to a missing topic would only log errors
        self.consumer = Consumer({
            **client_config(url, consumer), "group.id": group, "enable.auto.commit": False,
            "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": session_timeout_ms, "heartbeat.interval.ms": max(100, session_timeout_ms // 5),
            "max.poll.interval.ms": max(60_000, session_timeout_ms),
            # A fetch waits at most this long for data (librdkafka's default is 500 ms). Apache
            # Kafka answers as soon as there is a byte, Tansu only at the deadline: ~250 ms of
            # freshness lost per event at the default. 20 fetches a second when idle is cheap.
            "fetch.wait.max.ms": FETCH_WAIT_MS,
        })
        self.consumer.subscribe([topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost)

    def step(self, block_ms: int | None = None) -> int:
        """Poll a batch (waiting up to block_ms), apply it, commit it. Returns messages handled."""
        block = self.block_ms if block_ms is None else block_ms
        # consume(n, timeout) waits for n messages or the timeout; wait for the first one only and
        # take what else is there at once, or one event would wait up to block_ms (freshness).
        polled = []
        first = self.consumer.poll(block / 1000)
        if first is not None:
            polled = [first, *(self.consumer.consume(self.batch - 1, timeout=0) if self.batch > 1 else [])]
        records = [message for message in polled if _usable(message)]
        self.apply(((_message_id(message), message.value()) for message in records), message_fields)
        for message in records:
            self.uncommitted[(message.topic(), message.partition())] = message.offset() + 1
        self.commit()
        return len(records)

    def commit(self) -> None:
        """Commit the offsets of what was applied. A failed commit is kept for the next try: at
        worst its messages are delivered again, and applying them again changes nothing."""
        if not self.uncommitted:
            return
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in self.uncommitted.items()]
        try:
            answer = self.consumer.commit(offsets=offsets, asynchronous=False) or []
        except KafkaException as exc:
            log.warning("offset commit failed (%s); those messages may be delivered again", exc.args[0].str())
            return
        failed = {(tp.topic, tp.partition) for tp in answer if tp.error is not None}
        self.uncommitted = {key: offset for key, offset in self.uncommitted.items() if key in failed}

    def retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, KafkaException):
            return not exc.args[0].fatal()
        return super().retryable(exc)

    def close(self) -> None:
        self.consumer.close()  # leaves the group; the revocation commits what was applied

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned partitions %s", [tp.partition for tp in partitions])

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.commit()
        self._forget(partitions)

    def _lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("lost partitions %s (session expired): their next owner redelivers from the last commit",
                    [tp.partition for tp in partitions])
        self._forget(partitions)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.uncommitted.pop((tp.topic, tp.partition), None)


def _usable(message: Message) -> bool:
    """True for a message that carries data; a fatal error raises, others are logged."""
    error = message.error()
    if error is None:
        return True
    if error.fatal():
        raise KafkaException(error)
    log.warning("kafka consumer: %s", error.str())
    return False


def _message_id(message: Message) -> str:
    return f"{message.topic()}[{message.partition()}]@{message.offset()}"
