"""Item co-occurrence in Redis: append-only rows plus a degree vector, compacted in place.

Row cooc:<item> is a string of (int32 other, float64 weight) entries. Events append their
pairs (O(1) per pair, no read-modify-write); readers accumulate repeated entries with
`np.bincount`, exactly like the in-memory base+delta rows. When a row's uncompacted tail
outgrows its compacted head, COMMIT reports it and the writer folds it (sum per other item,
drop ~zero weights) with COMPACT_ROW, which keeps entries appended meanwhile and refuses to
run if another process compacted the row first."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

from pulserec.online.cooccurrence import NEGLIGIBLE, RowReader, event_pairs, log_pairs
from pulserec.online.history import Touch
from pulserec.online.redis.codec import VECTOR, encode_pairs
from pulserec.online.redis.read_cache import decoded_row
from pulserec.online.redis.snapshot import fetch_rows, fetch_rows_at

if TYPE_CHECKING:
    from pulserec.online.redis.plan import CommitPlan
    from pulserec.online.redis.state import RedisState


class RedisCoOccurrence(RowReader):
    """The `CoOccurrence` read interface (similar_row, has_item, dense_row, nnz) over Redis."""

    def __init__(self, state: RedisState, window: int, gap_tau: float, max_neighbours: int = 0,
                 evict_halflife: float = 0.0) -> None:
        self.state = state
        self.window = window
        self.gap_tau = gap_tau
        #: The in-memory `CoOccurrence`'s bound, applied when a row is compacted: its
        #: `max_neighbours` entries of highest weight x 2^(-(now - the neighbour's last event) /
        #: evict_halflife) are kept (0: all; vec:seen_at holds each item's last event time).
        self.max_neighbours = max_neighbours
        self.evict_halflife = evict_halflife

    # -- reads -------------------------------------------------------------------------------
    @property
    def degree(self) -> np.ndarray:  # type: ignore[override]
        return self.state.view().degree  # type: ignore[return-value]

    def row(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        """(other items, weights) of the row, read-only arrays (cached, see `read_cache`)."""
        view = self.state.view()
        row = view.rows.get(item)
        if row is None:
            row = view.rows[item] = fetch_rows(self.state, [item])[item]
        return row

    def similar_rows(self, items: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`RowReader.similar_rows` from the request's cached rows in one pass (a long-term query
        reads ~150 rows: one lookup each and two concatenations, no per-row calls); rows the
        snapshot lacks are fetched in one ROWS call."""
        view = self.state.view()
        rows = view.rows
        missing = [item for item in items if item not in rows]
        if missing:
            rows.update(fetch_rows(self.state, missing))
        picked = [rows[item] for item in items]
        lengths = np.fromiter((len(others) for others, _ in picked), dtype=np.int64, count=len(picked))
        if not lengths.any():
            return np.empty(0, dtype=np.int32), np.empty(0), np.empty(0, dtype=np.int32)
        idx = np.concatenate([others for others, _ in picked])
        vals = np.concatenate([weights for _, weights in picked])
        src = np.repeat(np.arange(len(items), dtype=np.int32), lengths)
        return self._normalised(np.asarray(items, dtype=np.int64), idx, vals, src)

    @property
    def nnz(self) -> int:
        return self.state.view().cooc_entries

    # -- writes ------------------------------------------------------------------------------
    def plan_event(self, plan: CommitPlan, item: int, weight: float, ts: float, previous: Iterable[Touch]) -> None:
        """Pairs of one new event with the owner's previous touches (most recent first)."""
        plan.raise_vector("seen_at", np.array([item]), np.array([ts]))
        pairs = event_pairs(item, weight, ts, previous, self.gap_tau)
        if not pairs:
            return
        others = np.fromiter((o for o, _ in pairs), dtype=np.int64, count=len(pairs))
        weights = np.fromiter((w for _, w in pairs), dtype=np.float64, count=len(pairs))
        plan.append_rows(np.r_[item, others], np.r_[len(others), np.ones(len(others), dtype=np.int64)],
                         np.r_[others, np.full(len(others), item)], np.r_[weights, weights])
        # The same additions as CoOccurrence.add_event: the item and each other item gain the pair weight.
        degree_items = np.empty(2 * len(pairs), dtype=np.int64)
        degree_items[0::2], degree_items[1::2] = item, others
        plan.add_to_vector("degree", degree_items, np.repeat(weights, 2))

    def plan_log(self, plan: CommitPlan, owners: np.ndarray, items: np.ndarray, weights: np.ndarray,
                 ts: np.ndarray, sign: float = 1.0, fresh: np.ndarray | None = None) -> None:
        """Pairs of a whole log (arrival order), aggregated per (row, column) as `add_log` does;
        `fresh` marks new rows after earlier context (see `log_pairs`)."""
        if sign > 0 and len(items):  # last event times, as `CoOccurrence.add_log` keeps them
            touched, at = np.unique(items, return_inverse=True)
            latest = np.full(len(touched), -np.inf)
            np.maximum.at(latest, at, ts)
            plan.raise_vector("seen_at", touched, latest)
        rows, cols, vals = log_pairs(owners, items, weights, ts, self.window, self.gap_tau, fresh=fresh)
        if len(rows) == 0:
            return
        unique_rows, inverse = np.unique(rows, return_inverse=True)
        plan.add_to_vector("degree", unique_rows, sign * np.bincount(inverse, weights=vals))
        plan.append_rows(*_by_row(rows, cols, sign * vals))

    def compact(self, items: Iterable[int]) -> None:
        """Fold the rows of `items` (reported by COMMIT) into one entry per other item, in two
        pipelined round trips for all of them: read every row (only the bytes after what this
        process holds, see `read_cache`), then compact every row. A compacted row is kept as
        the cached head of its next generation, so the next compaction reads only its tail
        (halves the bytes an updater moves; MovieLens rows average ~12 KB)."""
        items = list(dict.fromkeys(items))  # COMMIT names a row once per append
        if not items:
            return
        state = self.state
        rows = fetch_rows_at(state, items)
        scores = self._eviction_scores()
        pipe = state.client.pipeline(transaction=False)
        folded = []
        for item in items:
            row = rows[item]
            compacted = compact_pairs(row.items, row.weights, self.max_neighbours, scores)
            state.scripts.compact_row(args=[state.keys.prefix, item, row.gen, row.nbytes, compacted], client=pipe)
            folded.append((item, row.gen, compacted))
        for (item, gen, compacted), done in zip(folded, pipe.execute()):
            if done:  # the row now starts with `compacted`, at the next generation
                state.read_cache.keep_row(item, decoded_row(gen + 1, compacted))


    def _eviction_scores(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
        """What a bounded compaction ranks a row's entries by: their weight x 2^(-age / half-life),
        age = the newest event time - the neighbour's last (`CoOccurrence._eviction_scores`'s
        rule), from vec:seen_at read once per compaction round; the weight alone without a
        half-life; None when unbounded."""
        if not self.max_neighbours:
            return None
        if not self.evict_halflife:
            return lambda _others, sums: sums
        seen_at = np.frombuffer(self.state.client.get(self.state.keys.vector("seen_at")) or b"", dtype=VECTOR)
        now = float(seen_at.max()) if len(seen_at) else 0.0
        halflife = self.evict_halflife

        def scores(others: np.ndarray, sums: np.ndarray) -> np.ndarray:
            last = np.zeros(len(others))
            known = others < len(seen_at)
            last[known] = seen_at[others[known]]
            return sums * np.exp2(-(now - last) / halflife)

        return scores


def compact_pairs(others: np.ndarray, weights: np.ndarray, max_neighbours: int = 0,
                  scores: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> bytes:
    """A row's entries summed per other item (ascending), ~zero sums dropped. Entries are summed
    in row order either way; a dense `bincount` over the item range is used when that range is
    small next to the row (no sort: ~4x faster than `np.unique` on MovieLens rows).

    Bounded (`max_neighbours`, ranked by `scores(others, sums)`), sums are clipped at zero first
    (a forgotten user's pairs may subtract from pairs evicted since, as `CoOccurrence.compact`
    clips) and only the `max_neighbours` entries of highest score are kept, ties to the lower
    item."""
    if len(others) == 0:
        return b""
    if int(others.max()) < 8 * len(others) + 4096:
        sums = np.bincount(others, weights=weights)
        unique = np.arange(len(sums))
    else:
        unique, inverse = np.unique(others, return_inverse=True)
        sums = np.bincount(inverse, weights=weights)
    if max_neighbours:
        np.maximum(sums, 0.0, out=sums)
    keep = np.flatnonzero(np.abs(sums) >= NEGLIGIBLE)
    unique, sums = unique[keep], sums[keep]
    if max_neighbours and len(unique) > max_neighbours and scores is not None:
        strongest = np.sort(np.argsort(-scores(unique, sums), kind="stable")[:max_neighbours])
        unique, sums = unique[strongest], sums[strongest]
    return encode_pairs(unique, sums)


def _by_row(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(distinct rows, entries per row, columns, summed values): duplicates summed like a CSR
    build, rows ascending, each row's columns ascending."""
    width = int(cols.max()) + 1
    unique, inverse = np.unique(rows.astype(np.int64) * width + cols, return_inverse=True)
    sums = np.bincount(inverse, weights=vals)
    urows, ucols = np.divmod(unique, width)
    starts = np.flatnonzero(np.r_[True, urows[1:] != urows[:-1]])
    return urows[starts], np.diff(np.r_[starts, len(urows)]), ucols, sums
