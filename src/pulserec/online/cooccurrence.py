"""Item-to-item co-occurrence, updated per event, read as sparse rows in microseconds.

Storage is a two-level LSM: a compacted CSR matrix plus a delta of recent pairs, kept per row
in append-only NumPy buffers (:class:`DeltaRows`). Readers concatenate a base row with its delta
row (duplicates are fine: every consumer accumulates with `np.bincount`), so a read costs two
slices and a copy however many pairs arrived since the last compaction. The delta is merged into
the CSR once it outgrows a quarter of the base, so the amortised cost per pair stays O(1).

A pair is formed between an event and each of the same user's previous `window` events
(excluding the same item), weighted `sqrt(w_a * w_b) * exp(-|t_a - t_b| / gap_tau)`. Because
pairs only ever involve one user's own events, a user's whole contribution can be recomputed
from their events and subtracted exactly (right to be forgotten).

A compaction rewrites the base: O(base), 3.5 s for the 18.5M pairs of the 10M-event shop (load
9), which one event of the per-event path used to pay. For a large state that path seals the
delta and folds the levels on a helper thread (`pulserec/background.py`; they are never changed
again), reads going on from the unfolded levels, and the next event puts the new base in
place: the same base an inline compaction at that event makes (the next compaction can then
come as many events later as the fold took; only a bounded row's evictions depend on when).
Bulk updates (imports, forgetting, a session merged into a user) wait for a running fold first.
"""

from __future__ import annotations

import logging
import math
from array import array
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import scipy.sparse as sp

from pulserec.background import Fold, large, release
from pulserec.online.history import Touch

log = logging.getLogger(__name__)

_EMPTY_I = np.empty(0, dtype=np.int32)
_EMPTY_F = np.empty(0, dtype=np.float64)
#: The `array.array` type code of a C int32 (pending delta columns).
_INT32 = next(code for code in "ihl" if array(code).itemsize == 4)
#: An empty level (never written in place: sums make new matrices).
_EMPTY_CSR = sp.csr_matrix((0, 0), dtype=np.float64)
#: A delta row's pending entries are moved into its NumPy buffers at this count.
SETTLE_AT = 64
#: Rows of a sealed delta level read between two pauses of a background snapshot, which holds
#: the GIL meanwhile: 256 rows were 4-8 ms (two `np.r_` a row, ~31 us a row at load 15); now
#: ~4 numpy calls a row and one join per step.
PEEK_STEP = 64
#: Rows of a folded delta level freed between two pauses (`DeltaRows.discard_in_steps`, ~0.5 ms).
DISCARD_STEP = 1024
#: One delta entry as a snapshot stores it.
ENTRY = np.dtype([("row", np.int64), ("col", np.int64), ("weight", np.float64)])
#: Middle-level entries a bulk load may add beyond a quarter of the base before it folds
#: (`mid_cap`; at most ~100 MB of pairs, whatever the catalogue's size).
MID_CAP = 8_000_000
#: Accumulated weights smaller than this (left over by subtractions) are dropped on compaction.
NEGLIGIBLE = 1e-9


class RowReader:
    """Similarity reads shared by every co-occurrence store: subclasses provide `row(item)`
    (raw weights, indices may repeat) and a `degree` array indexed by item."""

    degree: np.ndarray

    def row(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def scoring_row(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        """The row that scoring reads (the full row unless a backend prunes neighbours)."""
        return self.row(item)

    def scoring_parts(self, item: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """`scoring_row` as pieces that, concatenated, are the row (saves a copy per row)."""
        return [self.scoring_row(item)]

    def similar_row(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine-normalised similarities of `item` to its co-occurring items."""
        idx, sims, _ = self.similar_rows([item])
        return idx, sims

    def similar_rows(self, items: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`similar_row` of several items at once, flattened: (neighbour, similarity, position of
        the row's item in `items`); one normalisation pass instead of one per row."""
        parts = [self.scoring_parts(item) for item in items]
        lengths = [sum(len(idx) for idx, _ in row) for row in parts]
        if not any(lengths):
            return _EMPTY_I, _EMPTY_F, np.empty(0, dtype=np.int32)
        idx = np.concatenate([idx for row in parts for idx, _ in row])
        vals = np.concatenate([vals for row in parts for _, vals in row])
        src = np.repeat(np.arange(len(items), dtype=np.int32), lengths)
        return self._normalised(np.asarray(items, dtype=np.int64), idx, vals, src)

    def _normalised(self, items: np.ndarray, idx: np.ndarray, vals: np.ndarray,
                    src: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw weights divided by both items' degrees (cosine); `src` indexes `items`."""
        degree = self.degree
        return idx, vals / np.sqrt(degree[items[src]] * degree[idx] + 1e-12), src

    def has_item(self, item: int) -> bool:
        return item < len(self.degree) and self.degree[item] > 0

    def dense_row(self, item: int, n_items: int) -> np.ndarray:
        idx, sims = self.similar_row(item)
        return np.bincount(idx, weights=sims, minlength=n_items)[:n_items]


class DeltaRows:
    """Pairs added since the last compaction: per row, append-only buffers of (column, weight).

    Writes append to typed `array.array`s (tens of nanoseconds per entry); the first read of a
    row after writes, or its `SETTLE_AT`-th pending entry, moves its pending entries into the
    row's NumPy buffers (12 bytes an entry), so each entry is converted once and a read is then
    a pair of views. Pending entries are C numbers, not Python objects in lists: a full
    collection of the cyclic GC visits every element of a list, and at the 10M shop the delta
    holds millions of entries over ~100k rows (one writer's full collection took 75 ms of CPU
    during a snapshot; a synthetic 100k rows x 40 entries: 216 -> 33 ms, issue 17.1). Entries
    are never changed in place (a repeated pair is a second entry), so views handed out stay
    valid. Like the rest of the online state, it relies on its owner to serialise writes and
    reads."""

    __slots__ = ("_rows", "nnz")

    def __init__(self) -> None:
        # row -> [column buffer, weight buffer, length, pending columns (int32), pending weights]
        self._rows: dict[int, list] = {}
        self.nnz = 0

    def __bool__(self) -> bool:
        return self.nnz > 0

    def _entry(self, row: int) -> list:
        entry = self._rows.get(row)
        if entry is None:
            entry = self._rows[row] = [_EMPTY_I, _EMPTY_F, 0, array(_INT32), array("d")]
        return entry

    def extend(self, row: int, columns: list[int], weights: list[float]) -> None:
        """Append (columns[k], weights[k]) to one row."""
        entry = self._entry(row)
        entry[3].extend(columns)
        entry[4].extend(weights)
        self.nnz += len(columns)
        if len(entry[3]) >= SETTLE_AT:
            self._settle(entry)

    def scatter(self, rows: list[int], column: int, weights: list[float]) -> None:
        """Append (column, weights[k]) to row rows[k], for every k."""
        table = self._rows
        for row, weight in zip(rows, weights):
            entry = table.get(row) or self._entry(row)  # the lookup inline: this loop is per pair
            entry[3].append(column)
            entry[4].append(weight)
            if len(entry[3]) >= SETTLE_AT:
                self._settle(entry)
        self.nnz += len(rows)

    @staticmethod
    def _settle(entry: list) -> None:
        """Move a row's pending entries into its buffers (grown by doubling). The entry is
        replaced in one step, and buffers are only written past their used length, so a reader
        without the lock (`peek_entries` of a sealed level, a background snapshot) sees the row
        before or after, never half of it."""
        columns, weights, n, pending_columns, pending_weights = entry
        pending = len(pending_columns)
        if n + pending > len(columns):
            size = max(8, 2 * len(columns), n + pending)
            grown_columns, grown_weights = np.empty(size, dtype=np.int32), np.empty(size, dtype=np.float64)
            grown_columns[:n], grown_weights[:n] = columns[:n], weights[:n]
            columns, weights = grown_columns, grown_weights
        columns[n : n + pending] = pending_columns
        weights[n : n + pending] = pending_weights
        entry[:] = [columns, weights, n + pending, array(_INT32), array("d")]

    def discard_in_steps(self, pause: Callable[[], None]) -> None:
        """Empty a level nobody reads any more, `DISCARD_STEP` rows at a time with `pause`
        between: freeing a 10M-event delta at once (100k rows, ~6M pairs: their buffers and
        lists) held the GIL ~15-50 ms, inside the event that put a compaction in place."""
        rows = self._rows
        while rows:
            for _ in range(min(len(rows), DISCARD_STEP)):
                rows.popitem()
            pause()
        self.nnz = 0

    def get(self, row: int) -> tuple[np.ndarray, np.ndarray] | None:
        entry = self._rows.get(row)
        if entry is None:
            return None
        if entry[3]:
            self._settle(entry)
        n = entry[2]
        return entry[0][:n], entry[1][:n]

    def coo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every entry as (rows, columns, weights)."""
        rows = list(self._rows)
        return _coo(rows, [self.get(row) for row in rows])  # type: ignore[misc]

    def peek_entries(self, pause: Callable[[], None] = lambda: None) -> Iterator[np.ndarray]:
        """Every entry as `ENTRY` records, `PEEK_STEP` rows at a time, without settling anything:
        safe without the lock on a sealed level (one that is no longer written; readers may
        still settle its rows, see `_settle`). `pause` between steps (a background snapshot
        lets writers take the GIL; a level can hold millions of entries)."""
        rows = list(self._rows)
        for start in range(0, len(rows), PEEK_STEP):
            step = rows[start : start + PEEK_STEP]
            columns_of, weights_of, lengths = [], [], []
            for row in step:
                columns, weights, n, pending_columns, pending_weights = self._rows[row]
                columns_of += (columns[:n], np.array(pending_columns, dtype=np.int32))  # copies: never a view
                weights_of += (weights[:n], np.array(pending_weights, dtype=np.float64))  # of a growing buffer
                lengths.append(n + len(pending_columns))
            out = np.empty(sum(lengths), dtype=ENTRY)
            out["row"] = np.repeat(np.asarray(step, dtype=np.int64), lengths)
            out["col"], out["weight"] = np.concatenate(columns_of), np.concatenate(weights_of)
            yield out
            pause()


def _coo(rows: list[int], parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not rows:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
    lengths = [len(columns) for columns, _ in parts]
    return (np.repeat(np.asarray(rows, dtype=np.int64), lengths),
            np.concatenate([columns for columns, _ in parts]).astype(np.int64),
            np.concatenate([weights for _, weights in parts]))


class CoOccurrence(RowReader):
    def __init__(self, window: int, gap_tau: float, min_delta: int = 100_000, top_k: int = 0,
                 max_neighbours: int = 0, evict_halflife: float = 0.0, mid_cap: int = 0) -> None:
        self.window = window
        self.gap_tau = gap_tau
        #: Bulk updates fold into the base once they added more than a quarter of the base's
        #: entries plus `mid_cap` to the middle level (see `_merge`).
        self.mid_cap = mid_cap
        self.min_delta = min_delta
        self.top_k = top_k
        #: Each compaction keeps only every row's `max_neighbours` heaviest entries (0: all), so
        #: memory grows with items x K rather than with every pair ever seen.
        self.max_neighbours = max_neighbours
        #: Eviction ranks a pair by its weight times 2^(-(now - last event of the neighbour) /
        #: evict_halflife) (0: by weight alone): neighbours nobody touches any more fade out of
        #: the K kept, and a newly popular item can enter rows filled long ago.
        self.evict_halflife = evict_halflife
        self.last_seen = np.zeros(0, dtype=np.float64)
        self._pruned: sp.csr_matrix | None = None
        self.base = sp.csr_matrix((0, 0), dtype=np.float64)
        #: Bulk updates since the last fold into the base (`_merge`).
        self.mid = _EMPTY_CSR
        self._mid_added = 0  # entries the bulk updates since the last fold added (duplicates counted)
        self.delta = DeltaRows()
        #: Delta levels sealed by background snapshots (`seal`): read like the delta, never
        #: written again, folded into the base with it at the next compaction.
        self.sealed: list[DeltaRows] = []
        self.degree = np.zeros(0, dtype=np.float64)
        self._changes = 0  # writes so far (see `revision`)
        self._fold: Fold[sp.csr_matrix] | None = None  # a compaction on a thread: of the base, mid
        self._folding = 0  # and this many first sealed levels
        self._inline = False  # the last fold on a thread failed: the next compaction is inline

    @property
    def revision(self) -> tuple[int, int, int]:
        """Differs whenever a row or a degree may have changed since it was read: writes and
        compactions count, and a base or degree put in place (a snapshot's load) is another object."""
        return self._changes, id(self.base), id(self.degree)

    # -- writes -----------------------------------------------------------------------------
    def _ensure(self, n: int) -> None:
        if n > len(self.degree):
            size = max(n, 2 * len(self.degree), 1024)
            self.degree, self.last_seen = (np.r_[column, np.zeros(size - len(column))] for column in (self.degree, self.last_seen))

    def add_event(self, item: int, weight: float, ts: float, previous: Iterable[Touch]) -> None:
        """Pair a new event with the user's previous events (at most `window` of them)."""
        self._changes += 1  # also without pairs: the event moves the item's support (min_support)
        if self._fold is not None and self._fold.ready():
            self._swap()
        self._ensure(item + 1)
        self.last_seen[item] = max(self.last_seen[item], ts)
        pairs = event_pairs(item, weight, ts, previous, self.gap_tau)
        if not pairs:
            return
        delta, degree = self.delta, self.degree
        others = [other for other, _ in pairs]
        weights = [w for _, w in pairs]
        delta.extend(item, others, weights)
        delta.scatter(others, item, weights)
        degree[item] += math.fsum(weights)
        np.add.at(degree, np.array(others), np.array(weights))  # `others` may repeat (an item touched twice)
        limit = max(self.min_delta, self.base.nnz // 4)
        if self._fold is None and self.delta.nnz + self._sealed_nnz() > limit:
            self.compact_soon()
        elif self._fold is not None and self.delta.nnz > 4 * limit:  # the fold lags far behind
            self.compact()

    def compact_soon(self) -> None:
        """The per-event path's compaction: now if the state is small, else the delta sealed
        and the levels folded on a thread (a benchmark starts one to time writers beside it)."""
        if self._fold is not None:
            return
        if self._inline or not large(self.nnz):
            self._inline = False
            self.compact()
            return
        self.seal()
        self._folding = len(self.sealed)
        self._fold = Fold("cooc", folded, self.base, self.mid, list(self.sealed), self.last_seen.copy(),
                          self.max_neighbours, self.evict_halflife)

    def _swap(self) -> None:
        """Put the running fold's base in place (waiting for it): its levels are then gone. A
        fold that failed (memory) leaves them as they are, read as before, for the next one."""
        fold, self._fold = self._fold, None
        assert fold is not None
        try:
            base = fold.result()
        except Exception:  # noqa: BLE001 - the state is whole without it: the next compaction is inline
            log.exception("co-occurrence compaction on a thread failed; the levels stay unfolded")
            self._inline = True
            return
        self._changes += 1
        self.base, self.mid, self._pruned, self._mid_added = base, _EMPTY_CSR, None, 0
        folded_levels, self.sealed = self.sealed[: self._folding], self.sealed[self._folding:]  # sealed since stay
        if large(sum(level.nnz for level in folded_levels)):  # freeing them here held the GIL 15-50 ms at 10M
            release(folded_levels, DeltaRows.discard_in_steps)

    def _sealed_nnz(self) -> int:
        return sum(level.nnz for level in self.sealed) if self.sealed else 0

    def seal(self) -> list[DeltaRows]:
        """Stop writing the delta (a new one takes the next pairs) and return every level a
        reader without the lock may now read: O(1), for a background snapshot, which sees the
        base, middle and sealed levels as of now (none of them is changed in place again)."""
        self._changes += 1  # the same entries in the same order, but kept parts need not rely on it
        if self.delta:
            self.sealed.append(self.delta)
            self.delta = DeltaRows()
        return list(self.sealed)

    def add_log(self, owners: np.ndarray, items: np.ndarray, weights: np.ndarray, ts: np.ndarray, sign: float = 1.0,
                fresh: np.ndarray | None = None) -> None:
        """Vectorised equivalent of `add_event` over a whole log already in arrival order.

        `owners` groups events by user (or session); only consecutive events of one owner pair.
        `fresh` marks the rows to add when the log starts with earlier context (see `log_pairs`).
        With sign=-1 it subtracts those pairs (the log must then be the owner's entire history)."""
        self._changes += 1
        if self._fold is not None:  # the middle level is the fold's: it must not change under it
            self._swap()
        later, earlier, vals, at = log_pairs(owners, items, weights, ts, self.window, self.gap_tau,
                                             both_directions=False, fresh=fresh, positions=True)
        if len(items):
            self._ensure(int(items.max()) + 1)
        if len(later) == 0:
            if sign > 0 and len(items):
                np.maximum.at(self.last_seen, items, ts)
            return
        n = max(int(items.max()) + 1, self.base.shape[0])
        size = len(self.degree)
        self.degree += sign * (np.bincount(later, weights=vals, minlength=size) + np.bincount(earlier, weights=vals, minlength=size))
        for start, end in self._fold_points(at, len(items)) if sign > 0 and self.mid_cap else [(0, len(items))]:
            if sign > 0:
                np.maximum.at(self.last_seen, items[start:end], ts[start:end])
            whole = (start, end) == (0, len(items))
            take = slice(None) if whole else (at >= start) & (at < end)
            half = sp.csr_matrix((sign * vals[take], (later[take], earlier[take])), shape=(n, n), dtype=np.float64)
            self._merge(half + half.T, 2 * (len(later) if whole else int(np.count_nonzero(take))))
            if self._mid_added > self.base.nnz // 4 + self.mid_cap:
                self.compact()

    def _fold_points(self, at: np.ndarray, n: int) -> Iterator[tuple[int, int]]:
        """The log cut into the stretches between the bulk schedule's folds: each ends at the
        event whose pairs take the entries added since the last fold past `base // 4 + mid_cap`
        (`at`: the log position of each pair's later event). The cuts fall on the same events
        however the log is chunked, so the bounded rows keep the same pairs (issue 17.2)."""
        entries = 2 * np.bincount(at, minlength=n)  # a pair is an entry in both rows
        start = 0
        while start < n:
            room = self.base.nnz // 4 + self.mid_cap - self._mid_added
            past = int(np.searchsorted(np.cumsum(entries[start:]), room, side="right"))
            end = min(start + past + 1, n)
            yield start, end  # the caller folds after this stretch if it went past the room
            start = end

    def _merge(self, update: sp.csr_matrix, added: int) -> None:
        """Add a bulk update (`added` entries, duplicates counted) to the middle level; the
        caller folds it into the base once the updates since the last fold added more than a
        quarter of the base plus `mid_cap`: a chunk costs O(mid + chunk), not O(base) (at 10M
        events the base holds tens of millions of pairs, and `base + chunk` per 35k-event chunk
        dominated an import). (Size-tiered runs instead of one summed middle level were measured:
        5.27-6.20 vs 5.46-6.11 s for the 1M shop's apply, load 14: not taken.)

        With a bound (`max_neighbours`) every fold evicts, so when it comes decides which
        pairs are kept. A bulk load (`mid_cap`) folds after the event at which the entries
        added pass the mark (`_fold_points`), whatever the chunks: a rule relative to the base
        at the chunks' ends (4x it, the last session's) folded after the first chunk of an
        empty state and then every ~5x further, so 1k-event chunks evicted at 1k, 5k, 25k...
        events and 35k-event chunks at 35k, 175k...: NDCG@10 -3.58% vs -1.51% of the unbounded
        structure on MovieLens (docs/benchmarks.md, issue 17). `compact` at the end of a load
        (`OnlineState.end_bulk`)."""
        self.mid = _summed(self.mid, update)
        self._mid_added += added

    def compact(self) -> None:
        """Fold the delta and the middle level into the CSR base. Always both: with a bound, a
        subtraction (a forgotten user, a session merged into a user) folded without the pairs
        still in the delta would clip at zero what those pairs then add back."""
        if self._fold is not None:
            self._swap()
        self._changes += 1  # a bounded fold evicts entries
        levels = [*self.sealed, self.delta] if self.delta else list(self.sealed)
        if not levels and not self.mid.nnz:
            return
        base = folded(self.base, self.mid, levels, self.last_seen, self.max_neighbours, self.evict_halflife)
        self.delta, self.sealed, self.mid, self._mid_added = DeltaRows(), [], _EMPTY_CSR, 0
        if base is not self.base:
            self.base, self._pruned = base, None

    def load_levels(self, base: sp.csr_matrix, mid: sp.csr_matrix, later: np.ndarray) -> None:
        """The levels a snapshot holds: the base, the middle level and the delta levels' pairs
        (`ENTRY` records), which join the middle level as the next compaction would fold them."""
        self.base, self.mid, self.delta, self.sealed, self._pruned = base, mid, DeltaRows(), [], None
        self._fold, self._folding = None, 0
        if len(later):
            rows, cols = later["row"], later["col"]
            n = max(int(rows.max()), int(cols.max())) + 1
            self.mid = _summed(mid, sp.csr_matrix((later["weight"], (rows, cols)), shape=(n, n)))
        self._mid_added = self.mid.nnz

    # -- reads ------------------------------------------------------------------------------
    def row(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw co-occurrence weights of `item` with others (indices may repeat)."""
        return _joined(self._parts_of(self.base, item))

    def scoring_row(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        """Like `row`, but from the compacted part only each item's `top_k` strongest neighbours
        (chosen at the last compaction; pairs added since are all kept)."""
        return _joined(self.scoring_parts(item))

    def scoring_parts(self, item: int) -> list[tuple[np.ndarray, np.ndarray]]:
        return self._parts_of(self._scoring_base(), item)

    def _scoring_base(self) -> sp.csr_matrix:
        """The compacted level that scoring reads: pruned to `top_k` neighbours when set."""
        if not self.top_k:
            return self.base
        if self._pruned is None:
            self._pruned = prune_rows(self.base, self.degree, self.top_k)
        return self._pruned

    def similar_row(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        """One row (similar items asks one per call): its level parts joined in the order
        `similar_rows` gives them, without the index arithmetic that gathers many rows (a dozen
        NumPy calls, ~0.1 ms of a similar-items request under load)."""
        idx, vals = _joined(self._parts_of(self._scoring_base(), item))
        if not len(idx):
            return _EMPTY_I, _EMPTY_F
        idx, sims, _ = self._normalised(np.array([item], dtype=np.int64), idx, vals, np.zeros(len(idx), dtype=np.int32))
        return idx, sims

    def similar_rows(self, items: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The shared read, gathered with one index computation per level instead of a Python
        call per row (a long-term query reads ~150 rows): the base and middle CSR levels by
        `indptr` arithmetic, the delta rows (few) by lookup. Entries come out in the order the
        generic read gives (per row: base, middle, delta), so scores and ties are unchanged."""
        rows = np.asarray(items, dtype=np.int64)
        pieces = [_gathered(self._scoring_base(), rows)]
        if self.mid.nnz:
            pieces.append(_gathered(self.mid, rows))
        for level in (*self.sealed, self.delta):
            if not level:
                continue
            for pos, item in enumerate(items):
                extra = level.get(item)
                if extra is not None and len(extra[0]):
                    pieces.append((extra[0], extra[1], np.full(len(extra[0]), pos, dtype=np.int32)))
        pieces = [piece for piece in pieces if len(piece[0])]
        if not pieces:
            return _EMPTY_I, _EMPTY_F, np.empty(0, dtype=np.int32)
        idx, vals, src = (np.concatenate(column) for column in zip(*pieces))
        if len(pieces) > 1:  # back to row order; each level is already sorted by row (timsort merges runs)
            order = np.argsort(src, kind="stable")
            idx, vals, src = idx[order], vals[order], src[order]
        return self._normalised(rows, idx, vals, src)

    def _parts_of(self, base: sp.csr_matrix, item: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The row of `item` in `base`, then its middle-level and delta rows if it has them
        (views, not copies)."""
        parts = [_row_of(base, item)]
        if self.mid.nnz and item < self.mid.shape[0]:
            parts.append(_row_of(self.mid, item))
        for level in (*self.sealed, self.delta):
            extra = level.get(item)
            if extra is not None:
                parts.append(extra)
        return parts

    @property
    def nnz(self) -> int:
        return self.base.nnz + self.mid.nnz + self.delta.nnz + self._sealed_nnz()


def event_pairs(item: int, weight: float, ts: float, previous: Iterable[Touch], gap_tau: float) -> list[tuple[int, float]]:
    """The (other item, pair weight) pairs one new event forms with the owner's previous
    touches (already cut to the window): `sqrt(w_a * w_b) * exp(-|t_a - t_b| / gap_tau)`."""
    sqrt, exp = math.sqrt, math.exp
    return [
        (touch.item, sqrt(weight * touch.weight) * exp(-abs(ts - touch.ts) / gap_tau))
        for touch in previous
        if touch.item != item
    ]


def log_pairs(
    owners: np.ndarray, items: np.ndarray, weights: np.ndarray, ts: np.ndarray, window: int, gap_tau: float,
    both_directions: bool = True, fresh: np.ndarray | None = None, positions: bool = False,
) -> tuple[np.ndarray, ...]:
    """All (a, b, w) pairs that `add_event` would create for this log: (later, earlier) item of
    each pair, and also (earlier, later) when `both_directions`.

    With `fresh` (a boolean per row), rows marked False are earlier context (an owner's touches
    before this log, placed before their new rows): they pair with later fresh rows but their
    own pairs, already counted, are not produced again.

    `positions`: a fourth array, the log position of each pair's later event (one direction)."""
    order = np.argsort(owners, kind="stable")
    owners, items = owners[order], items[order]
    weights, ts = weights[order].astype(np.float64), ts[order].astype(np.float64)
    later_fresh = fresh[order] if fresh is not None else None
    rows, cols, vals, at = [], [], [], []
    for k in range(1, min(window, len(items) - 1) + 1):
        same_owner = owners[k:] == owners[:-k]
        if not same_owner.any():
            break
        same = same_owner & (items[k:] != items[:-k])
        if later_fresh is not None:
            same &= later_fresh[k:]
        # Earlier rows of the pairs as indices, taken by each column once (five boolean-mask
        # gathers of shifted views each scanned the whole log: ~40% of the pairs' cost).
        earlier = np.flatnonzero(same)
        later = earlier + k
        a, b = items[later], items[earlier]
        w = np.sqrt(weights[later] * weights[earlier]) * np.exp(-np.abs(ts[later] - ts[earlier]) / gap_tau)
        rows += [a, b] if both_directions else [a]
        cols += [b, a] if both_directions else [b]
        vals += [w, w] if both_directions else [w]
        if positions:
            at.append(order[later])
    empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64))
    if not rows:
        return (*empty, np.empty(0, np.int64)) if positions else empty
    joined = (np.concatenate(rows), np.concatenate(cols), np.concatenate(vals))
    return (*joined, np.concatenate(at)) if positions else joined


def with_context(
    owners: np.ndarray, items: np.ndarray, weights: np.ndarray, ts: np.ndarray,
    recent: Callable[[int], Iterable[Touch]], window: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Prefix a bulk log with each owner's last `window` touches from before it, so that pairs
    straddling two bulk logs are made; returns (owners, items, weights, ts, fresh) for `add_log`."""
    context = [(owner, touch) for owner in np.unique(owners).tolist() for touch in list(recent(owner))[-window:]]
    n = len(context)
    return prefixed(owners, items, weights, ts, (
        np.fromiter((o for o, _ in context), dtype=np.int64, count=n),
        np.fromiter((t.item for _, t in context), dtype=np.int64, count=n),
        np.fromiter((t.weight for _, t in context), dtype=np.float64, count=n),
        np.fromiter((t.ts for _, t in context), dtype=np.float64, count=n)))


def prefixed(owners: np.ndarray, items: np.ndarray, weights: np.ndarray, ts: np.ndarray,
             context: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """`with_context` given the context as arrays (owner, item, weight, ts) already."""
    n = len(context[0])
    if not n:
        return owners, items, weights, ts, None
    return (
        np.concatenate([context[0], owners]), np.concatenate([context[1], items]),
        np.concatenate([context[2], weights]), np.concatenate([context[3], ts]),
        np.r_[np.zeros(n, dtype=bool), np.ones(len(owners), dtype=bool)],
    )


def folded(base: sp.csr_matrix, mid: sp.csr_matrix, levels: list[DeltaRows], last_seen: np.ndarray,
           max_neighbours: int, evict_halflife: float) -> sp.csr_matrix:
    """The base a compaction makes of the base, the middle level and delta levels (pure in its
    inputs: a large state runs it on a thread; `levels` are read without settling them)."""
    entries = [step for level in levels for step in level.peek_entries()]
    later = np.concatenate(entries) if entries else np.empty(0, dtype=ENTRY)
    if len(later):
        rows, cols = later["row"], later["col"]
        n = max(int(rows.max()), int(cols.max())) + 1
        mid = _summed(mid, sp.csr_matrix((later["weight"], (rows, cols)), shape=(n, n)))
    if not mid.nnz:
        return base
    merged = _summed(base, mid)
    merged.data[np.abs(merged.data) < NEGLIGIBLE] = 0.0
    if max_neighbours:  # a forgotten user's evicted pairs would subtract below zero
        np.maximum(merged.data, 0.0, out=merged.data)
    merged.eliminate_zeros()
    if not max_neighbours:
        return merged
    return strongest(merged, max_neighbours, _eviction_scores(merged, last_seen, evict_halflife))


def _eviction_scores(matrix: sp.csr_matrix, last_seen: np.ndarray, evict_halflife: float) -> np.ndarray | None:
    if not evict_halflife or not matrix.nnz:
        return None
    # The decay depends on the neighbour only: one exp2 per item, gathered per pair (the same
    # numbers as one per pair; a fold has ~2.5M pairs at 10k items).
    decay = np.exp2(-(last_seen.max() - last_seen) / evict_halflife)
    return matrix.data * decay[matrix.indices]


def strongest(matrix: sp.csr_matrix, k: int, scores: np.ndarray | None = None) -> sp.csr_matrix:
    """Each row's k entries of highest `scores` (default: the weights), in CSR order (rows with
    fewer are kept whole)."""
    return _top_per_row(matrix, k, matrix.data if scores is None else scores)


def prune_rows(matrix: sp.csr_matrix, degree: np.ndarray, k: int) -> sp.csr_matrix:
    """Each row's k entries of highest cosine similarity (raw weights kept), in CSR order."""
    counts = np.diff(matrix.indptr)
    if matrix.nnz == 0 or counts.max() <= k:
        return matrix
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    return _top_per_row(matrix, k, matrix.data / np.sqrt(degree[rows] * degree[matrix.indices] + 1e-12))


def _top_per_row(matrix: sp.csr_matrix, k: int, scores: np.ndarray) -> sp.csr_matrix:
    """The rows' k entries of highest (finite) `scores`, ties to the earlier entry: what a
    stable sort by (row, -score) keeps, without sorting. Each fold of a bounded co-occurrence
    runs this over the whole base: a lexsort of its ~3M entries took 1.6 s (36% of a 1M-event
    import's state apply); a threshold per row from `np.partition` takes 0.16 s (issue 17.3)."""
    counts = np.diff(matrix.indptr)
    if matrix.nnz == 0 or counts.max() <= k:
        return matrix
    full = counts > k
    in_full = np.repeat(full, counts)
    values, sizes = scores[in_full], counts[full]
    threshold = np.repeat(kth_largest(values, sizes, k), sizes)
    reached = values >= threshold
    # Exactly k entries of a row reach its k-th largest score unless others tie with it: only
    # those rows (few with float weights) rank their tied entries, the earlier first. (The
    # ranking over every row was ~60% of this function on a 1M-event shop's folds.)
    tied = np.add.reduceat(reached, np.r_[0, np.cumsum(sizes)[:-1]], dtype=np.int64) > k
    if tied.any():
        rows = np.repeat(tied, sizes)
        reached[rows] = _first_k(values[rows], threshold[rows], sizes[tied], k)
    keep = np.ones(matrix.nnz, dtype=bool)
    keep[in_full] = reached
    indptr = np.r_[0, np.cumsum(np.minimum(counts, k))]
    return sp.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)


def _first_k(values: np.ndarray, threshold: np.ndarray, sizes: np.ndarray, k: int) -> np.ndarray:
    """Per segment (consecutive runs of `sizes`, each row's k-th largest value in `threshold`):
    the entries above it, then those equal to it in order until the segment has k."""
    segment = np.repeat(np.arange(len(sizes)), sizes)
    above, tie = values > threshold, values == threshold
    n_above = np.bincount(segment, weights=above, minlength=len(sizes)).astype(np.int64)
    ties = np.cumsum(tie)
    ties_before = np.r_[0, ties[np.cumsum(sizes)[:-1] - 1]]  # ties in the segments before
    tie_rank = ties - ties_before[segment] - 1
    return above | (tie & (tie_rank < (k - n_above)[segment]))


def kth_largest(values: np.ndarray, sizes: np.ndarray, k: int) -> np.ndarray:
    """The k-th largest of each segment of `values` (consecutive runs of `sizes`, each > k).

    Segments are padded with -inf into one 2-D array per power-of-two width (at most twice the
    entries) and partitioned along the rows: O(entries), vectorised."""
    out = np.empty(len(sizes), dtype=np.float64)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    width = np.left_shift(1, np.ceil(np.log2(sizes)).astype(np.int64))
    for w in np.unique(width).tolist():
        rows = np.flatnonzero(width == w)
        n = sizes[rows]
        grid = np.full(len(rows) * w, -np.inf)
        # Entry j of a row goes to flat position row * w + j (a flat scatter: a 2-D one, by
        # (row, col) pairs, took ~2x as long).
        shift = np.repeat(np.arange(len(rows)) * w - (np.cumsum(n) - n), n)
        at = np.arange(len(shift))
        grid[at + shift] = values[at + np.repeat(starts[rows] - (np.cumsum(n) - n), n)]
        out[rows] = np.partition(grid.reshape(len(rows), w), w - k, axis=1)[:, w - k]
    return out


def _joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([idx for idx, _ in parts]), np.concatenate([vals for _, vals in parts])


def _gathered(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The entries of `rows` of `matrix` (rows past its end are empty), concatenated in order,
    with the position in `rows` each came from."""
    if matrix.shape[0] == 0 or len(rows) == 0:
        return _EMPTY_I, _EMPTY_F, np.empty(0, dtype=np.int32)
    inside = rows < matrix.shape[0]
    safe = np.where(inside, rows, 0)
    starts = matrix.indptr[safe]
    lengths = np.where(inside, matrix.indptr[safe + 1] - starts, 0)
    total = int(lengths.sum())
    if total == 0:
        return _EMPTY_I, _EMPTY_F, np.empty(0, dtype=np.int32)
    src = np.repeat(np.arange(len(rows), dtype=np.int32), lengths)
    offsets = np.arange(total) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return matrix.indices[offsets], matrix.data[offsets], src


def _row_of(matrix: sp.csr_matrix, item: int) -> tuple[np.ndarray, np.ndarray]:
    if item >= matrix.shape[0]:
        return _EMPTY_I, _EMPTY_F
    start, end = matrix.indptr[item], matrix.indptr[item + 1]
    return matrix.indices[start:end], matrix.data[start:end]


def _summed(a: sp.csr_matrix, b: sp.csr_matrix) -> sp.csr_matrix:
    """a + b, the smaller grown to the larger's shape first."""
    n = max(a.shape[0], b.shape[0])
    a = a if a.shape[0] == n else _resized(a, n)
    b = b if b.shape[0] == n else _resized(b, n)
    return (a + b).tocsr()


def _resized(matrix: sp.csr_matrix, n: int) -> sp.csr_matrix:
    matrix = matrix.copy()
    matrix.resize((n, n))
    return matrix
