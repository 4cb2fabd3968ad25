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
from pulserec.online.redis.read_cache import frozen_row
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
            row = view.rows[item] = fetch_rows(self.state, [item], generation=view.generation)[item]
        return row

    def similar_rows(self, items: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`RowReader.similar_rows` from the request's cached rows in one pass (a long-term query
        reads ~150 rows: one lookup each and two concatenations, no per-row calls); rows the
        snapshot lacks are fetched in one ROWS call."""
        view = self.state.view()
        rows = view.rows
        missing = [item for item in items if item not in rows]
        if missing:
            rows.update(fetch_rows(self.state, missing, generation=view.generation))
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

    @property
    def revision(self) -> tuple:
        """The read's vector version (COMMIT bumps it with every write of degrees, trending or
        owners per item: every event's and every deletion's), its entry count (a compaction that
        changes a row changes it) and events applied, within this namespace's identity and epoch."""
        return self.state.view().revision

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
        unique_rows, counts, others, sums = _by_row(rows, cols, sign * vals)
        # each row's degree change is the sum of its entries (from the summed entries: no second sort of the pairs)
        plan.add_to_vector("degree", unique_rows, np.add.reduceat(sums, np.cumsum(counts) - counts))
        plan.append_rows(unique_rows, counts, others, sums)

    def compact(self, items: Iterable[int]) -> None:
        """Fold the rows of `items` (reported by COMMIT) into one entry per other item, in two
        round trips for all of them: read every row (only the bytes after what this process
        holds, see `read_cache`), fold them all at once (`compacted_rows`), write them with one
        COMPACT_ROWS call. A compacted row is kept as the cached head of its next generation, so
        the next compaction reads only its tail (MovieLens rows average ~12 KB unbounded)."""
        items = list(dict.fromkeys(items))  # COMMIT names a row once per append
        if not items:
            return
        state = self.state
        fetched = fetch_rows_at(state, items)
        rows = [fetched[item] for item in items]
        lengths = np.fromiter((len(row.items) for row in rows), dtype=np.int64, count=len(rows))
        counts, others, sums = compacted_rows(
            np.repeat(np.arange(len(rows)), lengths), np.concatenate([row.items for row in rows]),
            np.concatenate([row.weights for row in rows]), len(rows), self.max_neighbours, self._eviction_scores())
        int32 = [np.array(column, dtype="<i4").tobytes()
                 for column in (items, [row.gen for row in rows], [row.nbytes for row in rows], counts)]
        done = state.scripts.compact_rows(args=[state.keys.prefix, state.state_id, *int32, encode_pairs(others, sums)])
        ends = np.cumsum(counts)
        for item, row, ok, end, count in zip(items, rows, done, ends.tolist(), counts.tolist()):
            if ok:  # the row now starts with its compacted entries, at the next generation
                state.read_cache.keep_row(item, frozen_row(row.gen + 1, others[end - count:end].astype(np.int32),
                                                           sums[end - count:end].copy()))

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


def compacted_rows(row_of: np.ndarray, others: np.ndarray, weights: np.ndarray, n_rows: int, max_neighbours: int = 0,
                   scores: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Many rows' entries (`row_of[i]`: which of `n_rows` rows entry i is in) summed per (row,
    other item): (entries per row, others, sums), rows in order and each row's others ascending,
    ~zero sums dropped; each row's entries summed in their order, as a CSR build sums them.

    Bounded (`max_neighbours`, ranked by `scores(others, sums)`), sums are clipped at zero first
    (a forgotten user's pairs may subtract from pairs evicted since, as `CoOccurrence.compact`
    clips) and each row keeps its `max_neighbours` entries of highest score, ties to the lower
    item. One pass over every row at once (a per-row loop cost ~40 us a row)."""
    if len(others) == 0:
        return np.zeros(n_rows, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0)
    width = int(others.max()) + 1
    keys, inverse = np.unique(row_of.astype(np.int64) * width + others, return_inverse=True)
    sums = np.bincount(inverse, weights=weights)
    rows, others = np.divmod(keys, width)
    if max_neighbours:
        np.maximum(sums, 0.0, out=sums)
    keep = np.abs(sums) >= NEGLIGIBLE
    rows, others, sums = rows[keep], others[keep], sums[keep]
    if max_neighbours and scores is not None and len(rows):
        order = np.lexsort((np.arange(len(rows)), -scores(others, sums), rows))  # by row, score, item
        starts = np.searchsorted(rows[order], rows[order], side="left")
        strongest = np.sort(order[np.arange(len(order)) - starts < max_neighbours])
        rows, others, sums = rows[strongest], others[strongest], sums[strongest]
    return np.bincount(rows, minlength=n_rows), others, sums


def _by_row(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(distinct rows, entries per row, columns, summed values): duplicates summed like a CSR
    build, rows ascending, each row's columns ascending."""
    width = int(cols.max()) + 1
    unique, inverse = np.unique(rows.astype(np.int64) * width + cols, return_inverse=True)
    sums = np.bincount(inverse, weights=vals)
    urows, ucols = np.divmod(unique, width)
    starts = np.flatnonzero(np.r_[True, urows[1:] != urows[:-1]])
    return urows[starts], np.diff(np.r_[starts, len(urows)]), ucols, sums
