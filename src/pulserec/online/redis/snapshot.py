"""One read request's view of the Redis state: none, one or two script calls.

0. None while the process's invalidation channel received no push since it read this owner's
   view (`pushes`, `read_cache.ReadCache.snapshot_at`): that view is reused as it is.

1. The READ script (the owner's index, history and seen items, the catalogue changes this
   process has not seen yet, the clock and counters, and the trending and degree vectors if
   they changed since this process last read them; see `read_cache`).
2. One ROWS script call: the co-occurrence rows of the distinct items the query uses (only
   the bytes appended since this process cached them; nothing for rows that did not change).

Rows or vectors a request needs beyond that are fetched lazily and kept for the rest of it.
Rows are read just after step 1, so they may include a few events more than its vectors."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pulserec.online.history import Touch
from pulserec.online.redis.codec import decode_seen
from pulserec.online.redis.read_cache import EMPTY_ROW, CachedRow, ReadCache, decoded_row

if TYPE_CHECKING:
    from pulserec.online.redis.state import RedisState


@dataclass
class Snapshot:
    owner_key: str | None
    owner: int | None
    history: list[Touch]
    seen: set[int]
    rows: dict[int, tuple[np.ndarray, np.ndarray]]
    now: float
    landmark: float | None
    applied: int
    cooc_entries: int
    trending: np.ndarray | None
    degree: np.ndarray | None
    vec_ver: str = ""
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    #: The owner's (qt, qn, latest query) profile fields, raw (see `profiles.search_mark`).
    mark: list[bytes | None] = field(default_factory=list)
    #: What `RedisCoOccurrence.revision` answers for this read (vectors' version, entries, events
    #: applied, the namespace's identity and epoch).
    revision: tuple = ()
    #: The invalidation channel's generation observed before this read (None: not trusted).
    generation: int | None = None
    #: The history as stored, and its columns once asked (`RedisHistories.recent_columns`).
    history_blob: bytes = b""
    columns: tuple | None = None


def fetch_snapshot(state: RedisState, owner_key: str | None, with_vectors: bool = True) -> Snapshot:
    """The owner's view: the one kept since the last push, else one read (which brings the
    local catalogue mirror up to date with it)."""
    generation = state.push_generation(open_channel=with_vectors)  # None: pushes not trusted now, read
    cache = state.read_cache
    if generation is not None:
        held = cache.snapshot_at(owner_key, generation)
        if held is not None and (held.trending is not None or not with_vectors):  # type: ignore[attr-defined]
            return held  # type: ignore[return-value]
    view = read_snapshot(state, owner_key, with_vectors, generation)
    if generation is not None and with_vectors:
        cache.keep_snapshot(owner_key, generation, view, len(view.history) + len(view.seen))
    return view


def read_snapshot(state: RedisState, owner_key: str | None, with_vectors: bool = True,
                  generation: int | None = None) -> Snapshot:
    """Read one snapshot and bring the local catalogue mirror up to date with it (rows held
    current at push `generation` are not asked about)."""
    catalog, keys, cache = state.catalog, state.keys, state.read_cache
    for _ in range(2):
        held = cache.vec_ver if with_vectors else "-"
        current = current_rows(cache, cache.expected_rows(owner_key), generation)
        held_before, rows_args = held_rows(cache, [i for i in cache.expected_rows(owner_key) if i not in current])
        (owner, hist, seen, new_ids, changed, records, created, version, now, landmark, applied, cooc_entries,
         epoch, state_id, ready, vec_ver, trending, degree, drops, mark, rows) = state.scripts.read(
            args=[keys.prefix, owner_key or "", catalog.version, catalog.mirrored, held, *rows_args])
        state.check_identity(state_id.decode(), bool(ready))  # raises StateUnavailable if lost
        if state.check_epoch(int(epoch)):  # the namespace was reset: the caches were dropped, read again
            continue
        state.owners.check_generation(int(drops))  # ids unmapped by a deletion anywhere: indices anew
        catalog.absorb(new_ids, changed, records, created, int(version))
        if trending is not None:
            cache.vec_ver, cache.vectors = vec_ver.decode(), (trending, degree)
        checked = {**current, **absorb_rows(cache, held_before, rows, generation)}
        break
    else:  # reset twice in a row: nothing read is checked
        checked = {}
    n_items = len(catalog.mirror)
    trending, degree = cache.decoded_vectors(n_items) if with_vectors else (None, None)
    history = state.codes.decode_touches(hist)
    seen = decode_seen(seen)
    revision = (vec_ver.decode(), int(cooc_entries), int(applied), state.state_id, state.epoch)
    quiet, cache.last_revision = cache.last_revision == revision, revision
    return Snapshot(
        owner_key=owner_key,
        owner=None if owner < 0 else int(owner),
        history=history,
        seen=seen,
        rows=fetch_rows(state, wanted_rows(state, owner_key, history, seen, revision, quiet), checked, generation),
        now=float(now) if now else -math.inf,
        landmark=float(landmark) if landmark else None,
        applied=int(applied),
        cooc_entries=int(cooc_entries),
        trending=trending,
        degree=degree,
        vec_ver=vec_ver.decode(),
        mark=mark,
        revision=revision,
        generation=generation,
        history_blob=hist or b"",
    )


def wanted_rows(state: RedisState, owner_key: str | None, history: list[Touch], seen: set[int],
                revision: tuple, quiet: bool = False) -> list[int]:
    """The rows the owner's query reads: its recent items', and with long-term taste (the query
    holds the whole history, models/query.py) every seen item's, unless this process served the
    owner at this very revision (item-kNN then holds their long-term part: a request reads its
    recent rows only) or the previous read here was at this revision (`quiet`: item-kNN reads
    rows from those it keeps per revision, models/neighbour_rows.py). If it reads more after
    all, the rest come in one more ROWS call."""
    settings, cache = state.settings, state.read_cache
    wanted = query_items(history, settings.query_len)
    recent = list(wanted)
    kept = (settings.long_term_cache_mb and cache.served_at(owner_key) == revision) or (quiet and settings.neighbour_rows_mb)
    if settings.long_term_weight > 0 and not kept:
        wanted += sorted(seen.difference(wanted))
    if owner_key is not None:
        cache.expect_rows(owner_key, recent, revision)
    return wanted


def query_items(history: list[Touch], limit: int) -> list[int]:
    """The distinct items of a history, most recent first, as `build_query` will pick them."""
    picked: dict[int, None] = {}
    for touch in reversed(history):
        if len(picked) >= limit:
            break
        picked.setdefault(touch.item)
    return list(picked)


def fetch_rows(state: RedisState, items: list[int], checked: dict[int, CachedRow] | None = None,
               generation: int | None = None) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Co-occurrence rows of `items` as (other items, weights), read-only (see `fetch_rows_at`)."""
    return {item: (row.items, row.weights) for item, row in fetch_rows_at(state, items, checked, generation).items()}


def fetch_rows_at(state: RedisState, items: list[int], checked: dict[int, CachedRow] | None = None,
                  generation: int | None = None) -> dict[int, CachedRow]:
    """The co-occurrence rows of `items`, current as of one ROWS script call: for each row this
    process holds, only the bytes appended since (nothing at all for an unchanged row), a row
    compacted since (another generation) or not held whole. Rows in `checked` (brought up to
    date by this request's READ) and rows checked at push `generation` are taken as they are."""
    items = list(dict.fromkeys(items))  # each row once: a tail must be added to its row once
    cache = state.read_cache
    out = {**current_rows(cache, items, generation), **(checked or {})}
    missing = [item for item in items if item not in out]
    if missing:
        held, args = held_rows(cache, missing)
        out.update(absorb_rows(cache, held, state.scripts.rows(args=[state.keys.prefix, *args]), generation))
    return {item: out[item] for item in items}


def current_rows(cache: ReadCache, items: list[int], generation: int | None) -> dict[int, CachedRow]:
    """The held rows of `items` that no push can have changed since a script checked them."""
    if generation is None:
        return {}
    out = {}
    for item in items:
        row = cache.current_row(item, generation)
        if row is not None:
            out[item] = row
    return out


def held_rows(cache: ReadCache, items: list[int]) -> tuple[dict[int, CachedRow], list[bytes]]:
    """The rows held of `items`, and what `_CHANGED_ROWS` takes for them (the items, the
    generation and the bytes of each held; empty strings for no items)."""
    held = {item: cache.rows.get(item, EMPTY_ROW) for item in items}  # each row once
    rows = held.values()
    return held, [np.array(column, dtype="<i4").tobytes() for column in (list(held), [r.gen for r in rows],
                                                                          [r.nbytes for r in rows])]


def absorb_rows(cache: ReadCache, held: dict[int, CachedRow], reply: list,
                generation: int | None = None) -> dict[int, CachedRow]:
    """`held` brought up to a `_CHANGED_ROWS` reply (whole rows, or tails to append), each
    changed row kept in `cache` too (and every row of `held` marked checked at `generation`)."""
    out = dict(held)
    for k in range(0, len(reply), 4):
        item, gen, whole, data = int(reply[k]), int(reply[k + 1]), reply[k + 2], reply[k + 3]
        out[item] = decoded_row(gen, data) if whole else out.get(item, EMPTY_ROW).extended(gen, data)
        cache.keep_row(item, out[item])
    cache.checked_rows(held, generation)
    return out
