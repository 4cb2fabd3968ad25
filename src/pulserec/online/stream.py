"""The event stream on Redis Streams: API processes publish, `pulserec updater` applies.

Publishing happens after the event is durably stored (so the stream carries only accepted,
deduplicated events with their `seq`). The updater reads with a consumer group, applies each
event to the shared state and then XACKs it, so delivery is at-least-once; applying is
idempotent by event id (the Redis state records applied ids in the same atomic step as the
change), so a redelivered event changes nothing. Messages a crashed consumer had read but not
acknowledged stay pending and are taken over with XAUTOCLAIM once idle for `min_idle_ms`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import redis

from pulserec.config import Settings
from pulserec.events import Event
from pulserec.online.redis.connection import connect

log = logging.getLogger(__name__)

DEFAULT_GROUP = "pulserec-updater"


def stream_key(settings: Settings) -> str:
    """`<namespace>.events`: outside the `<namespace>:*` keys that a state reset deletes."""
    return f"{settings.state_namespace}.events"


def encode_event(event: Event, seq: int) -> dict[str, str]:
    return {"event": json.dumps(event._asdict(), separators=(",", ":")), "seq": str(seq)}


def decode_event(fields: dict[bytes, bytes]) -> tuple[Event, int]:
    return Event(**json.loads(fields[b"event"])), int(fields[b"seq"])


class EventPublisher:
    """Appends stored events to the stream (one pipelined round trip per batch)."""

    def __init__(self, url: str, key: str, maxlen: int | None = None) -> None:
        self.client = connect(url, "stream")
        self.key = key
        self.maxlen = maxlen

    def publish(self, events: Iterable[tuple[Event, int]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for event, seq in events:
            pipe.xadd(self.key, encode_event(event, seq), maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
        pipe.execute()

    def close(self) -> None:
        self.client.close()


def make_publisher(settings: Settings) -> EventPublisher | None:
    """A publisher when `stream_url` is set, else None."""
    return EventPublisher(settings.stream_url, stream_key(settings)) if settings.stream_url else None


class Applier(Protocol):
    def apply_many(self, batch: list[tuple[Event, int]]) -> list[bool]:
        """Apply in order; False for events applied before (idempotent by event id)."""
        ...


@dataclass
class UpdaterStats:
    applied: int = 0
    duplicates: int = 0
    reclaimed: int = 0


class StreamUpdater:
    """One consumer of the group: reclaims stale pending messages, then reads new ones."""

    def __init__(
        self,
        state: Applier,
        url: str,
        key: str,
        group: str = DEFAULT_GROUP,
        consumer: str = "updater-1",
        min_idle_ms: int = 30_000,
        batch: int = 500,
        block_ms: int = 1000,
    ) -> None:
        self.state = state
        self.client = connect(url, "stream")
        self.key = key
        self.group = group
        self.consumer = consumer
        self.min_idle_ms = min_idle_ms
        self.batch = batch
        self.block_ms = block_ms
        self.stats = UpdaterStats()
        self._claim_cursor = "0-0"
        self.ensure_group()

    def ensure_group(self) -> None:
        """Create the consumer group (from the start of the stream) unless it exists."""
        try:
            self.client.xgroup_create(self.key, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _apply(self, messages: list[tuple[bytes, dict[bytes, bytes] | None]]) -> int:
        """Apply then acknowledge; returns how many messages were handled."""
        ids = [message_id for message_id, _ in messages]
        # fields is None for an entry trimmed away while pending: nothing to apply
        batch = [decode_event(fields) for _, fields in messages if fields]
        results = self.state.apply_many(batch) if batch else []
        self.stats.applied += sum(results)
        self.stats.duplicates += len(results) - sum(results)
        if ids:
            self.client.xack(self.key, self.group, *ids)
        return len(ids)

    def reclaim(self) -> int:
        """Take over and apply messages other consumers left pending for `min_idle_ms`."""
        handled = 0
        while True:
            cursor, messages, *_ = self.client.xautoclaim(
                self.key, self.group, self.consumer, self.min_idle_ms, start_id=self._claim_cursor, count=self.batch
            )
            self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else cursor
            handled += self._apply(messages)
            self.stats.reclaimed += len(messages)
            if self._claim_cursor == "0-0":
                return handled

    def read_new(self, block_ms: int | None = None) -> int:
        """Read and apply the next batch of never-delivered messages (waits up to block_ms)."""
        block = self.block_ms if block_ms is None else block_ms
        answer = self.client.xreadgroup(self.group, self.consumer, {self.key: ">"}, count=self.batch, block=block or None)
        return sum(self._apply(messages) for _, messages in answer or [])

    def step(self, block_ms: int | None = None) -> int:
        """One round: reclaim, then read new messages. Returns messages handled."""
        return self.reclaim() + self.read_new(block_ms)

    def run(self, stop: threading.Event, on_step: Callable[[int], None] | None = None) -> None:
        """Consume until `stop` is set; a broken connection is retried after a pause."""
        while not stop.is_set():
            try:
                handled = self.step()
            except redis.ConnectionError as exc:
                log.warning("stream connection failed (%s); retrying", exc)
                stop.wait(1.0)
                continue
            if on_step:
                on_step(handled)

    def close(self) -> None:
        self.client.close()
