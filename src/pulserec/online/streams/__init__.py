"""The event stream from API processes to `pulserec updater`: Redis Streams or Kafka.

`stream_url` picks the backend: `redis://...` for Redis Streams (`redis_streams`), `kafka://...`
for Kafka (`kafka`, needs the `kafka` extra). Either way, API processes publish each event
after it is durably stored, and updaters in one consumer group apply the stream to the shared
state at-least-once and idempotently by event id (`updater`), with the same message fields
(`codec`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Protocol

from pulserec.online.streams.updater import DEFAULT_BATCH, DEFAULT_GROUP, Applier, Updater
from pulserec.urls import KafkaUrl, is_kafka_url, stream_key

if TYPE_CHECKING:
    from pulserec.config import Settings
    from pulserec.events import Event


class Publisher(Protocol):
    def publish(self, events: Iterable[tuple[Event, int]]) -> None:
        """Hand stored events to the stream; raises if the stream did not take them all."""
        ...

    def forget(self, owners: Collection[str], event_ids: Collection[str]) -> int:
        """A user was deleted: remove these events, published as events of `owners` (the user and
        the sessions they merged), from the stream where the backend can (Redis Streams: XDEL;
        Kafka cannot, the state's deletion set keeps updaters from applying them again).
        Returns how many entries were removed."""
        ...

    def close(self) -> None: ...


def make_publisher(settings: Settings) -> Publisher | None:
    """A publisher for `stream_url` (Redis Streams or Kafka) when it is set, else None."""
    if not settings.stream_url:
        return None
    if is_kafka_url(settings.stream_url):
        from pulserec.online.streams.kafka import KafkaPublisher

        url = KafkaUrl.parse(settings.stream_url)
        return KafkaPublisher(url, url.topic_for(settings))
    from pulserec.online.streams.redis_streams import EventPublisher

    return EventPublisher(settings.stream_url, stream_key(settings), shards=settings.stream_shards)


def make_updater(settings: Settings, state: Applier, group: str = DEFAULT_GROUP, consumer: str = "updater-1", *,
                 batch: int = DEFAULT_BATCH, min_idle_ms: int = 30_000, session_timeout_ms: int = 10_000, shard: int = 0) -> Updater:
    """The updater for the backend `stream_url` selects. `min_idle_ms` is for Redis (reclaim what
    a silent consumer left pending), `session_timeout_ms` for Kafka (reassign a silent member's
    partitions); `shard` picks one of `stream_shards` Redis streams."""
    if is_kafka_url(settings.stream_url):
        from pulserec.online.streams.kafka import KafkaUpdater

        url = KafkaUrl.parse(settings.stream_url)
        return KafkaUpdater(state, url, url.topic_for(settings), group, consumer, batch=batch,
                            session_timeout_ms=session_timeout_ms)
    from pulserec.online.streams.redis_streams import StreamUpdater, shard_key

    if not 0 <= shard < settings.stream_shards:
        raise ValueError(f"shard {shard} does not exist: stream_shards is {settings.stream_shards}")
    return StreamUpdater(state, settings.stream_url, shard_key(stream_key(settings), shard, settings.stream_shards),
                         group, consumer, min_idle_ms=min_idle_ms, batch=batch)
