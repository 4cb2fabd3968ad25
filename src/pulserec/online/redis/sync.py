"""Keeping the Redis state level with the SQLite log: every stored event applied exactly once.

The log is the outbox and the `applied` set (written by the same atomic COMMIT as the change)
is the per-event marker, so any process may apply any stored event and a repeat is a no-op.
`meta.synced_seq` is a *low* watermark: every stored event with `seq <= synced_seq` is applied
(or was forgotten). `sync` applies, in `seq` order, each stored event after it that is not
applied yet, then raises it. Whatever fails between storing and applying (Redis down or
stalled, a process killed), the event stays after the watermark and the next `sync` (the next
write, the periodic check of `supervisor`, a restart) applies it. The old `last_seq` (the
highest seq applied) could move past an event that was never applied, and so lose it for good.

Seqs are SQLite rowids: a committed row never gets a seq below one committed before it, but
deleting the newest rows lets the next insert reuse their seqs. `truncated` lowers the
watermark for that and bumps `meta.log_gen`; a sync that read the log before the deletion
then does not raise the watermark (its claim may cover a reused seq).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pulserec.online.redis import bulk

if TYPE_CHECKING:
    from pulserec.online.redis.state import RedisState
    from pulserec.store import SQLiteStore

#: ARGV: state id, new watermark, log generation read before the log was. Raises
#: meta.synced_seq to ARGV[2] unless the state was replaced or the log truncated meanwhile.
RAISE = """
local meta = KEYS[1]
local m = redis.call('HMGET', meta, 'state_id', 'synced_seq', 'log_gen')
if (m[1] or '') ~= ARGV[1] or (m[3] or '0') ~= ARGV[3] then return 0 end
if tonumber(ARGV[2]) > tonumber(m[2] or '0') then redis.call('HSET', meta, 'synced_seq', ARGV[2]) end
return 1
"""

#: ARGV: the log's highest seq after a deletion. Lowers the watermark to it, bumps log_gen.
TRUNCATE = """
local meta = KEYS[1]
if tonumber(redis.call('HGET', meta, 'synced_seq') or '0') > tonumber(ARGV[1]) then
  redis.call('HSET', meta, 'synced_seq', ARGV[1])
end
redis.call('HINCRBY', meta, 'log_gen', 1)
return 1
"""


def watermark(state: RedisState) -> tuple[int, str]:
    """(synced_seq, log_gen) read together."""
    synced, gen = state.client.hmget(state.keys.meta, "synced_seq", "log_gen")
    return int(synced or 0), (gen or b"0").decode()


def raise_watermark(state: RedisState, seq: int, gen: str) -> bool:
    return bool(state.client.eval(RAISE, 1, state.keys.meta, state.state_id, int(seq), gen))


def truncated(state: RedisState, max_seq: int) -> None:
    """The newest rows of the log were deleted: its highest seq is now `max_seq`."""
    state.client.eval(TRUNCATE, 1, state.keys.meta, int(max_seq))


def sync(state: RedisState, store: SQLiteStore, upto_seq: int | None = None,
         progress: Callable[[int], None] | None = None) -> int:
    """Apply every stored event after the watermark (up to `upto_seq`) that no process applied
    yet, in seq order, raising the watermark as it goes. Returns how many events it read."""
    start, gen = watermark(state)
    read = 0
    for frame in store.iter_events(after_seq=start, upto_seq=upto_seq, chunk=20_000):
        bulk.apply_frame(state, frame)  # skips the applied ones (one SMISMEMBER per 10k ids)
        raise_watermark(state, int(frame["seq"].iloc[-1]), gen)
        read += len(frame)
        if progress:
            progress(len(frame))
    return read
