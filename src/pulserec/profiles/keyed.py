"""Per-(owner, key) numbers for every owner at once, in sorted NumPy arrays instead of a dict
per owner (issue 17.2): the counters of `UserProfile` (devices, locations) and its decayed
scores (categories, tags) for a million users.

An entry's key is one int64, `owner << 32 | code`, so one owner's entries are one contiguous
range found by two binary searches. Storage is two sorted levels: `main` and a smaller `delta`
that new keys are inserted into (`np.insert` at `searchsorted` positions, O(delta) a batch);
the delta is merged into main once it outgrows `delta_limit`, so a batch costs O(batch x
log(main) + delta) and main is rewritten once per up to 512k new keys. A batch's entries for
a key that exists are combined in place, vectorised. Single events (the live path) queue in
`pending` lists and are folded in batches of `SETTLE_AT`, or before the next read.

Combining is associative, so batches and single events give one result in any grouping:
counters add; decayed scores keep (value, time of value) and combine as `DecayedCounter.add`
does (both decayed to the later time, then added).

An erased owner's entries (`erase`) get codes at or above `ERASED` right away (their values
zeroed: nothing of what they touched stays readable) and are dropped at the next merge.

The merge rewrites main: O(main), 1.3 s for the 6.8M tags entries of the 10M-event shop (load
9), which a writer once paid inside one event. A large table merges on a helper thread instead
(`pulserec/background.py`): the full delta is sealed (no more inserts), new keys go to a fresh
delta, and the writer puts the merged main in place at a later write, copying over it the rows
of main and the sealed delta it changed in place meanwhile (their keys are what the merge
keyed on, so the thread may read them mid-change). Until then a read sees three levels."""

from __future__ import annotations

import math

import numpy as np

from pulserec.background import Fold, large
from pulserec.frozen import FrozenArrays

#: Codes at or above this mark erased entries (real codes are interned indices, far below).
ERASED = 1 << 31
#: Single-event entries wait in Python lists until this many, then fold as one batch.
SETTLE_AT = 1024
#: The delta's size from which a settle of single events starts the merge (on a thread when
#: the table is large) instead of waiting for `delta_limit`: a settle inserts by copying the
#: whole delta (`np.insert`, three columns), ~0.3 ms at 64k entries but 2-5 ms at the 512k a
#: bulk load lets it reach, inside one event (issue 17.1). A bulk batch spreads that copy over
#: its rows, so bulk adds keep `delta_limit` (fewer rewrites of main).
LIVE_DELTA = 1 << 16
_LOW = (1 << 32) - 1
#: One sorted level: (keys, values, times of value).
Level = tuple[np.ndarray, np.ndarray, np.ndarray]


def keys_of(owners: np.ndarray, codes: np.ndarray) -> np.ndarray:
    return (owners.astype(np.int64) << 32) | codes.astype(np.int64)


class KeyedTable:
    """Sorted (owner, code) -> value (and, for decayed scores, time of value)."""

    __slots__ = ("rate", "keep_last", "main", "delta", "_pending", "frozen", "_sealed", "_fold", "_written")

    def __init__(self, halflife: float | None = None, keep_last: int = 0) -> None:
        #: Decay rate of a decayed score per second; None: plain counters (added).
        self.rate = None if halflife is None else math.log(2.0) / halflife
        #: With keep_last, each merge keeps only an owner's `keep_last` highest codes (a log).
        self.keep_last = keep_last
        self.main = _empty()
        self.delta = _empty()
        self._pending: tuple[list[int], list[float], list[float]] = ([], [], [])
        #: A background snapshot reading this table (its in-place changes save before-images).
        self.frozen: FrozenArrays | None = None
        self._sealed: Level | None = None  # the delta a background merge folds into main
        self._fold: Fold[Level] | None = None  # that merge
        self._written: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])  # rows of main / sealed changed since

    def _levels(self) -> tuple[Level, ...]:
        """Every level holding entries: main, the sealed delta of a merge running, the delta."""
        return (self.main, self.delta) if self._sealed is None else (self.main, self._sealed, self.delta)

    # -- writes -----------------------------------------------------------------------------
    def add(self, keys: np.ndarray, values: np.ndarray, ts: np.ndarray | None = None, *, merge_when_full: bool = True) -> None:
        """Fold entries (keys may repeat, any order) into the table (`merge_when_full`: merge
        the delta once it outgrows its limit; `merge` itself folds it right after)."""
        if not len(keys):
            return
        if self._fold is not None and self._fold.ready():
            self._swap()
        keys, values, ts = self._aggregate(keys, np.asarray(values, dtype=np.float64),
                                           np.zeros(len(keys)) if ts is None else np.asarray(ts, dtype=np.float64))
        for k, level in enumerate(self._levels()):
            if not len(keys) or not len(level[0]):
                continue
            pos = np.minimum(np.searchsorted(level[0], keys), len(level[0]) - 1)
            hit = level[0][pos] == keys
            at = pos[hit]
            if self.frozen is not None:
                self.frozen.before_write(level[1], at)
                self.frozen.before_write(level[2], at)
            if self._fold is not None and k < 2 and len(at):  # main or the sealed delta: the merge reads them
                self._written[k].append(at)
            level[1][at], level[2][at] = self._combine(level[1][at], level[2][at], values[hit], ts[hit])
            keys, values, ts = keys[~hit], values[~hit], ts[~hit]
        if len(keys):
            at = np.searchsorted(self.delta[0], keys)
            self.delta = tuple(np.insert(column, at, new) for column, new in zip(self.delta, (keys, values, ts)))
            if merge_when_full and len(self.delta[0]) > self.delta_limit():
                self._merge_soon()

    def _merge_soon(self) -> None:
        """The delta outgrew its limit: merge it now if the table is small, else on a thread
        (unless one still runs: then the delta waits, up to 4x its limit)."""
        if self._fold is not None:
            if len(self.delta[0]) <= 4 * self.delta_limit():
                return
            self._swap()
        if not large(len(self.main[0]) + len(self.delta[0])):
            self.merge()
            return
        self._sealed, self.delta, self._written = self.delta, _empty(), ([], [])
        self._fold = Fold("keyed", _merged, self.main, self._sealed, self.keep_last)

    def _swap(self) -> None:
        """Put the background merge's main in place (waiting for it), with the rows writers
        changed in place since it started copied over it."""
        fold, sealed = self._fold, self._sealed
        assert fold is not None and sealed is not None
        self._fold = None
        try:
            merged = fold.result()
        except Exception:  # noqa: BLE001 - the thread failed (memory): merge here, or raise with the levels intact
            merged = _merged(self.main, sealed, self.keep_last)
        else:
            for level, written in zip((self.main, sealed), self._written):
                if written and len(merged[0]):
                    rows = np.unique(np.concatenate(written))
                    keys = level[0][rows]
                    pos = np.minimum(np.searchsorted(merged[0], keys), len(merged[0]) - 1)
                    kept = merged[0][pos] == keys  # a log's oldest entries may be dropped
                    merged[1][pos[kept]], merged[2][pos[kept]] = level[1][rows[kept]], level[2][rows[kept]]
        self.main, self._sealed, self._written = merged, None, ([], [])

    def add_one(self, key: int, value: float, ts: float = 0.0) -> None:
        keys, values, times = self._pending
        keys.append(key)
        values.append(value)
        times.append(ts)
        if len(keys) >= SETTLE_AT:
            self.settle()

    def settle(self, merge_when_full: bool = True) -> None:
        """Fold the pending single entries in."""
        keys, values, times = self._pending
        if keys:
            self._pending = ([], [], [])
            self.add(np.array(keys, dtype=np.int64), np.array(values), np.array(times), merge_when_full=merge_when_full)
            if merge_when_full and len(self.delta[0]) > LIVE_DELTA:
                self._merge_soon()

    def delta_limit(self) -> int:
        return min(max(len(self.main[0]) // 8, 65_536), 524_288)

    def merge(self) -> None:
        """Fold the delta into main, dropping erased entries (and, for a log, the oldest)."""
        if self._fold is not None:
            self._swap()
        self.settle(merge_when_full=False)
        self.main, self.delta = _merged(self.main, self.delta, self.keep_last), _empty()

    def erase(self, owner: int) -> None:
        """Make an owner's entries unreadable now (zeroed, erased codes); dropped at the merge."""
        self.settle()
        if self._fold is not None:  # keys change in place: the merge keyed on them must be done
            self._swap()
        for level in (self.main, self.delta):
            lo, hi = np.searchsorted(level[0], [owner << 32, (owner + 1) << 32])
            n = int(hi - lo)
            if n:
                if self.frozen is not None:
                    for column in level:
                        self.frozen.before_write(column, slice(int(lo), int(hi)))
                # Sorted and unique within the owner's range, above every real code.
                level[0][lo:hi] = (owner << 32) + (1 << 32) - n + np.arange(n)
                level[1][lo:hi] = 0.0
                level[2][lo:hi] = 0.0

    # -- reads ------------------------------------------------------------------------------
    def of(self, owner: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(codes, values, times) of one owner's live entries, by code (copies).

        An owner's range in one level is sorted by code, and erased codes (>= ERASED) sort after
        the live ones: with the owner in one level only (the usual case) its live entries are a
        prefix of its range, taken without the mask and the sort that two levels need (a profile
        read asks five tables; ~14-40 us each with them)."""
        self.settle()
        bounds = np.array([owner << 32, (owner + 1) << 32], dtype=np.int64)
        parts = []
        for level in self._levels():
            lo, hi = level[0].searchsorted(bounds).tolist()
            if hi > lo:
                parts.append((level, lo, hi))
        if not parts:
            return np.empty(0, np.int64), np.empty(0), np.empty(0)
        if len(parts) == 1:
            (keys, values, times), lo, hi = parts[0]
            codes = keys[lo:hi] & _LOW
            live = int(codes.searchsorted(ERASED))
            return codes[:live], values[lo:lo + live].copy(), times[lo:lo + live].copy()
        keys, values, times = (np.concatenate([level[i][lo:hi] for level, lo, hi in parts]) for i in range(3))
        codes = keys & _LOW
        live = codes < ERASED
        order = np.argsort(codes[live], kind="stable")
        return codes[live][order], values[live][order], times[live][order]

    def __len__(self) -> int:
        return sum(len(level[0]) for level in self._levels()) + len(self._pending[0])

    @property
    def nbytes(self) -> int:
        return sum(column.nbytes for level in self._levels() for column in level)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every live entry, merged (keys, values, times): what a snapshot stores."""
        self.merge()
        return self.main

    def levels(self) -> tuple[Level, Level, list[Level]]:
        """(main, delta, later levels) as they are, registered with `frozen` (a background
        snapshot reads them as of now: call with writers held still; O(pending) copies). While a
        merge runs, main and delta are the merge's inputs and the later levels start with the
        delta filling meanwhile; the pending single entries come last (a load adds them all)."""
        keys, values, times = self._pending
        pending = (np.array(keys, dtype=np.int64), np.array(values, dtype=np.float64), np.array(times, dtype=np.float64))
        main, delta, *later = self._levels()
        if self.frozen is not None:
            for column in (column for level in (main, delta, *later) for column in level):
                self.frozen.track(column)
        return main, delta, [*later, pending]

    def load(self, keys: np.ndarray, values: np.ndarray, ts: np.ndarray,
             delta: tuple[np.ndarray, ...] | None = None, pending: tuple[np.ndarray, ...] | None = None) -> None:
        """Fill from a snapshot: main (sorted, unique keys), and the delta and pending entries
        it held (merged here, as the next merge would have)."""
        for level in (keys, *(delta[:1] if delta else ())):
            if len(level) > 1 and not (np.diff(level) > 0).all():
                raise ValueError("profile table keys are not sorted and unique")
        self.main = (keys.astype(np.int64), values.astype(np.float64), ts.astype(np.float64))
        self.delta = _empty() if delta is None else tuple(c.astype(d) for c, d in zip(delta, (np.int64, np.float64, np.float64)))
        self._pending = ([], [], []) if pending is None else tuple(c.tolist() for c in pending)  # type: ignore[assignment]
        self._sealed, self._fold, self._written = None, None, ([], [])
        if delta is not None or pending is not None:
            self.merge()

    # -- combining --------------------------------------------------------------------------
    def _aggregate(self, keys: np.ndarray, values: np.ndarray, ts: np.ndarray):
        """One entry per distinct key, sorted, combined as single events would have been."""
        # One sort for both cases (np.unique's, then a stable argsort when the keys were all
        # distinct, sorted them twice): with no ties any sort is the stable order, and with
        # ties the groups and their entries' order (bincount sums in input order) are the same.
        order = np.argsort(keys)
        ordered = keys[order]
        first = np.r_[True, ordered[1:] != ordered[:-1]]
        if first.all():
            return ordered, values[order], ts[order]
        unique = ordered[first]
        inverse = np.empty(len(keys), dtype=np.int64)
        inverse[order] = np.cumsum(first) - 1
        if self.rate is None:
            return unique, np.bincount(inverse, weights=values, minlength=len(unique)), np.zeros(len(unique))
        latest = np.full(len(unique), -np.inf)
        np.maximum.at(latest, inverse, ts)
        decayed = values * np.exp(-self.rate * (latest[inverse] - ts))
        return unique, np.bincount(inverse, weights=decayed, minlength=len(unique)), latest

    def _combine(self, v1: np.ndarray, t1: np.ndarray, v2: np.ndarray, t2: np.ndarray):
        if self.rate is None:
            return v1 + v2, t1
        latest = np.maximum(t1, t2)
        return v1 * np.exp(-self.rate * (latest - t1)) + v2 * np.exp(-self.rate * (latest - t2)), latest


def _empty() -> Level:
    return np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.float64)


def _merged(main: Level, delta: Level, keep_last: int) -> Level:
    """`main` with `delta`'s entries (keys not in main) inserted, erased entries dropped (and,
    for a log, all but each owner's `keep_last` highest codes): a pure function of its inputs,
    run on a thread for a large table."""
    if len(delta[0]):
        at = np.searchsorted(main[0], delta[0])
        merged = tuple(np.insert(column, at, new) for column, new in zip(main, delta))
    else:
        merged = main
    live = (merged[0] & _LOW) < ERASED
    if keep_last:
        owners = merged[0] >> 32
        after = np.r_[owners[1:] != owners[:-1], True]  # last entry of each owner
        ends = np.flatnonzero(after)
        from_end = np.repeat(ends, np.diff(np.r_[-1, ends])) - np.arange(len(owners))
        live &= from_end < keep_last
    return merged if live.all() else tuple(column[live] for column in merged)  # type: ignore[return-value]
