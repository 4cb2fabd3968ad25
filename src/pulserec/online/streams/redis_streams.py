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
import logging
import time
import zlib
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import redis

from pulserec.events import SESSION_PREFIX, Event
from pulserec.online.redis.connection import connect
from pulserec.online.streams.codec import MalformedMessage, decode_event, encode_event, entry_fields
from pulserec.online.streams.updater import DEFAULT_BATCH, DEFAULT_GROUP, Applier, Decoded, DefersCompaction, Updater


log = logging.getLogger(__name__)


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


def _flat_fields(flat: list[bytes]) -> tuple[Any, Any]:
    """An entry's (event JSON, seq text) from its fields as Redis lists them: [b"event", json,
    b"seq", seq] as `encode_event` wrote them; any other layout is read as a mapping."""
    if len(flat) == 4 and flat[0] == b"event" and flat[2] == b"seq":
        return flat[1], flat[3]
    return entry_fields(dict(zip(flat[0::2], flat[1::2])))


def _names(fields: dict[bytes, bytes], event_ids: set[str]) -> bool:
    """Whether a stream entry is one of `event_ids` (a malformed entry is not)."""
    try:
        return decode_event(fields)[0].event_id in event_ids
    except MalformedMessage:
        return False


#: Read the next batch ahead only after a batch of this many messages (or a full one): a stream
#: with a backlog. A quiet stream's few events are read when the last is applied, as before: a
#: read handed over between two threads cost freshness on a loaded box (p99 143 -> 213-249 ms,
#: 30-40 trials at load 8-9, `benchmarks/freshness.py --stream redis://local`).
READ_AHEAD_MIN = 100


@dataclass
class _Delivery:
    """Entries read from the stream: every id (acknowledged once applied) and the decoded batch."""

    ids: list[bytes]
    decoded: Decoded


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
        # XREADGROUP's reply as sent (this client's own callback): redis-py's parse builds a dict
        # per entry, ~1.5 us an event of the updater's CPU; `_flat_fields` takes the two fields.
        self.client.set_response_callback("XREADGROUP", lambda response, **_options: response)
        self.key = key
        self.consumer = consumer
        self.min_idle_ms = min_idle_ms
        self.description = f"Redis stream {key}"
        self._claim_cursor = "0-0"
        self._reclaim_at = 0.0  # when `reclaim` asks Redis next
        #: Entries delivered to this consumer name before (a previous run, killed before XACK)
        #: are applied before any new one, so that a restarted updater keeps each owner's order.
        self._own_pending = True
        self._pool: ThreadPoolExecutor | None = None  # the read-ahead thread, started at the first batch
        self._ahead: Future[_Delivery] | None = None
        #: The state's housekeeping after a commit, run on the read-ahead thread (see `_apply`).
        self._compact = state.defer_compaction() if isinstance(state, DefersCompaction) else None
        self._compacting: Future[None] | None = None
        self.ensure_group()

    def ensure_group(self) -> None:
        """Create the consumer group (from the start of the stream) unless it exists."""
        try:
            self.client.xgroup_create(self.key, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _delivery(self, messages: list[tuple[bytes, Any]], fields_of: Callable[[Any], tuple[Any, Any]] = entry_fields
                  ) -> _Delivery:
        """Messages as read (fields None: an entry trimmed away while pending, nothing to apply),
        decoded."""
        decoded = self.decode(((message_id.decode(), fields) for message_id, fields in messages if fields), fields_of)
        return _Delivery([message_id for message_id, _ in messages], decoded)

    def _apply(self, delivery: _Delivery) -> int:
        """Apply then acknowledge; returns how many messages were handled. After a failure the
        batch read ahead is dropped and this consumer's pending entries (the failed batch first,
        then the one read ahead) are read again before anything new: each owner's order holds."""
        try:
            self.apply_decoded(delivery.decoded)
        except BaseException:
            self._drop_ahead()
            self._own_pending = True
            raise
        if delivery.ids:
            self.client.xack(self.key, self.group, *delivery.ids)
        if self._compact is not None and len(delivery.decoded.frame):
            self._compacting = self._thread().submit(self._compact_quietly)
        return len(delivery.ids)

    def _compact_quietly(self) -> None:
        """The deferred compaction; a failure only leaves rows longer (COMMIT reports them again)."""
        try:
            self._compact()  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - nothing of the stream depends on it
            log.warning("row compaction failed (%s); it is asked again by a later commit", exc)

    def _thread(self) -> ThreadPoolExecutor:
        """The one background thread: reads ahead and compacts, in the order given."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-read-ahead")
        return self._pool

    def _settle(self) -> None:
        """Wait for the compaction in progress (the stream is drained: leave the state folded)."""
        compacting, self._compacting = self._compacting, None
        if compacting is not None:
            wait([compacting])

    def _read(self, start: str, block: int | None) -> _Delivery:
        """XREADGROUP, its reply as the protocol sent it (`__init__`): {key: [[id, [field, value,
        ...]], ...]} (RESP3), [[key, [...]]] (RESP2), or None."""
        answer = self.client.xreadgroup(self.group, self.consumer, {self.key: start}, count=self.batch, block=block)
        streams = answer.values() if isinstance(answer, dict) else [entries for _, entries in answer or []]
        return self._delivery([(entry[0], entry[1]) for entries in streams for entry in entries], _flat_fields)

    def _read_ahead(self, block: int | None) -> None:
        """Read and decode the next batch on the read-ahead thread while this one is applied:
        an updater waits on Redis for each COMMIT (~30 us an event), the GIL released, and
        reading and decoding are ~40% of its own CPU (MovieLens, batches of 2,000)."""
        self._ahead = self._thread().submit(self._read, ">", block)

    def _take_ahead(self) -> _Delivery | None:
        """The batch read ahead during the last apply (waiting for it), if any. If reading or
        decoding it failed, its entries may be pending here: they are read again first."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        try:
            return ahead.result()
        except BaseException:
            self._own_pending = True
            raise

    def _drop_ahead(self) -> None:
        """Forget the batch read ahead (its entries stay pending here and are read again)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            wait([ahead])

    def reclaim(self, skip: Collection[bytes] = ()) -> int:
        """Take over and apply messages other consumers left pending for `min_idle_ms` (those
        in `skip`, this consumer's batch read ahead, are applied with it). Asked at most every
        tenth of `min_idle_ms` (and a second): an entry becomes claimable only after that long
        idle, and XAUTOCLAIM before every read was one more round trip per event of a quiet
        stream (freshness)."""
        now = time.monotonic()
        if now < self._reclaim_at:
            return 0
        self._reclaim_at = now + min(1.0, self.min_idle_ms / 10_000)
        handled = 0
        while True:
            cursor, messages, *_ = self.client.xautoclaim(
                self.key, self.group, self.consumer, self.min_idle_ms, start_id=self._claim_cursor, count=self.batch
            )
            self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else cursor
            if skip:
                messages = [message for message in messages if message[0] not in skip]
            if messages:  # nothing to decode (a frame costs ~0.5 ms of pandas even when empty)
                handled += self._apply(self._delivery(messages))
            self.stats.reclaimed += len(messages)
            if self._claim_cursor == "0-0":
                return handled

    def read_new(self, block_ms: int | None = None, ahead: _Delivery | None = None) -> int:
        """Apply the next batch of never-delivered messages: `ahead` (read while the last one
        was applied) or one read now (waiting up to block_ms), and read the next one meanwhile.
        First, the entries this consumer had read but not acknowledged (a previous run killed
        before XACK, a failed apply), so that each owner's order holds."""
        if self._own_pending:
            delivery = self._read("0", None)
            if delivery.ids:
                return self._apply(delivery)
            self._own_pending = False
        block = (self.block_ms if block_ms is None else block_ms) or None
        delivery = ahead if ahead is not None and ahead.ids else self._read(">", block)
        if not delivery.ids:
            self._settle()
            return 0
        if len(delivery.ids) >= min(self.batch, READ_AHEAD_MIN):
            self._read_ahead(block)
        return self._apply(delivery)

    def step(self, block_ms: int | None = None) -> int:
        """One round: reclaim, then read new messages. Returns messages handled. A stream Redis
        that restarted empty has lost the group: it is made again (what the stream lost, the
        API processes apply from the log; see `pulserec.online.redis.sync`)."""
        try:
            ahead = self._take_ahead()
            handled = self.reclaim(set(ahead.ids) if ahead is not None else ())
            return handled + self.read_new(block_ms, ahead)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._drop_ahead()
            self.ensure_group()
            self._claim_cursor, self._reclaim_at = "0-0", 0.0
            self._own_pending = True
            return 0

    def close(self) -> None:
        """Stop reading ahead (what it read stays pending here, for the next run) and disconnect."""
        self._drop_ahead()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.client.close()
