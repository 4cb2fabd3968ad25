"""The event stream on Redis Streams: API processes publish, `pulserec updater` applies.

Publishing happens after the event is durably stored (so the stream carries only accepted,
deduplicated events with their `seq`). The updater reads with a consumer group, applies each
event to the shared state and then XACKs it, so delivery is at-least-once; applying is
idempotent by event id (see `pulserec.online.streams.updater`), so a redelivered event changes
nothing. Messages a crashed consumer had read but not acknowledged stay pending and are taken
over with XAUTOCLAIM once idle for `min_idle_ms`.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Collection, Iterable

import redis

from pulserec.events import SESSION_PREFIX, Event
from pulserec.online.redis.connection import connect
from pulserec.online.streams.codec import MalformedMessage, decode_event, encode_event, entry_fields
from pulserec.online.streams.updater import DEFAULT_BATCH, DEFAULT_GROUP, Applier, Updater


def shard_key(key: str, shard: int, shards: int) -> str:
    """The stream of one shard: `key` itself when there is one shard, else `key.<shard>`."""
    return key if shards == 1 else f"{key}.{shard}"


def shard_of(owner: str, shards: int) -> int:
    """Which shard carries an owner's events: crc32, the same in every process (unlike hash())."""
    return zlib.crc32(owner.encode("utf-8", "surrogatepass")) % shards if shards > 1 else 0


class EventPublisher:
    """Appends stored events to the stream, or to the owner's shard of it (one pipelined round
    trip per batch). One owner's events always go to one shard, in order."""

    def __init__(self, url: str, key: str, maxlen: int | None = None, shards: int = 1) -> None:
        self.client = connect(url, "stream")
        self.key = key
        self.maxlen = maxlen
        self.shards = shards

    def publish(self, events: Iterable[tuple[Event, int]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for event, seq in events:
            key = shard_key(self.key, shard_of(event.owner, self.shards), self.shards)
            pipe.xadd(key, encode_event(event, seq), maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
        pipe.execute()

    def forget(self, owners: Collection[str], event_ids: Collection[str]) -> int:
        """XDEL these events (published as events of `owners`: the user, and sessions they merged)
        from those owners' shards. Entries carry no index by owner, so each shard is read once in
        chunks; only an entry whose JSON names one of the owners is decoded. A pending entry
        deleted here is acknowledged without being applied (its fields come back empty)."""
        wanted = set(event_ids)
        markers = [json.dumps(owner[len(SESSION_PREFIX):] if owner.startswith(SESSION_PREFIX) else owner).encode()
                   for owner in owners]
        shards = {shard_key(self.key, shard_of(owner, self.shards), self.shards) for owner in owners}
        return sum(self._delete_entries(key, markers, wanted) for key in sorted(shards)) if wanted else 0

    def _delete_entries(self, key: str, markers: list[bytes], wanted: set[str]) -> int:
        removed, start = 0, "-"
        while True:
            entries = self.client.xrange(key, min=start, max="+", count=FORGET_CHUNK)
            doomed = [entry_id for entry_id, fields in entries
                      if any(m in fields.get(b"event", b"") for m in markers) and _names(fields, wanted)]
            if doomed:
                removed += self.client.xdel(key, *doomed)
            if len(entries) < FORGET_CHUNK:
                return removed
            start = "(" + entries[-1][0].decode()

    def close(self) -> None:
        self.client.close()


#: Entries read per XRANGE call when forgetting a user's events.
FORGET_CHUNK = 5_000


def _names(fields: dict[bytes, bytes], event_ids: set[str]) -> bool:
    """Whether a stream entry is one of `event_ids` (a malformed entry is not)."""
    try:
        return decode_event(fields)[0].event_id in event_ids
    except MalformedMessage:
        return False


class StreamUpdater(Updater):
    """One consumer of the group: reclaims stale pending messages, then reads new ones."""

    retry_on = (redis.ConnectionError, redis.TimeoutError)

    def __init__(
        self,
        state: Applier,
        url: str,
        key: str,
        group: str = DEFAULT_GROUP,
        consumer: str = "updater-1",
        min_idle_ms: int = 30_000,
        batch: int = DEFAULT_BATCH,
        block_ms: int = 1000,
    ) -> None:
        super().__init__(state, group, batch, block_ms)
        self.client = connect(url, "stream")
        self.key = key
        self.consumer = consumer
        self.min_idle_ms = min_idle_ms
        self.description = f"Redis stream {key}"
        self._claim_cursor = "0-0"
        #: Entries delivered to this consumer name before (a previous run, killed before XACK)
        #: are applied before any new one, so that a restarted updater keeps each owner's order.
        self._own_pending = True
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
        self.apply(((message_id.decode(), fields) for message_id, fields in messages if fields), entry_fields)
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
        """Read and apply the next batch of never-delivered messages (waits up to block_ms);
        first, those this consumer had read but not acknowledged when it last stopped."""
        if self._own_pending:
            answer = self.client.xreadgroup(self.group, self.consumer, {self.key: "0"}, count=self.batch)
            handled = sum(self._apply(messages) for _, messages in answer or [])
            if handled:
                return handled
            self._own_pending = False
        block = self.block_ms if block_ms is None else block_ms
        answer = self.client.xreadgroup(self.group, self.consumer, {self.key: ">"}, count=self.batch, block=block or None)
        return sum(self._apply(messages) for _, messages in answer or [])

    def step(self, block_ms: int | None = None) -> int:
        """One round: reclaim, then read new messages. Returns messages handled. A stream Redis
        that restarted empty has lost the group: it is made again (what the stream lost, the
        API processes apply from the log; see `pulserec.online.redis.sync`)."""
        try:
            return self.reclaim() + self.read_new(block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()
            self._claim_cursor = "0-0"
            self._own_pending = True
            return 0

    def close(self) -> None:
        self.client.close()
