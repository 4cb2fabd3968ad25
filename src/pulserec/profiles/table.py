"""Every user's profile as columns (issue 17.2): per-owner rows in NumPy arrays, folded
vectorised per batch, instead of one `UserProfile` object (10-15 KB with its dicts) per user.

Dense columns, indexed by owner: first/last seen, total weight, counts per event type, hours,
weekdays. Sparse ones (`KeyedTable`): devices and locations (counters), categories and tags
(decayed scores), searches (a log keeping the last `SEARCHES`). Key names are interned once
per table. A read (`get`) builds a `UserProfile` from the columns: the read model stays one
class for both states (the Redis state keeps JSON documents of it), and nothing holds it."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from pulserec.background import Fold, large
from pulserec.frozen import FrozenArrays
from pulserec.ids import IdIndex, distinct_inverse, distinct_of
from pulserec.profiles.item_codes import ItemCodes
from pulserec.profiles.keyed import KeyedTable, keys_of
from pulserec.profiles.profile import DecayedCounter, UserProfile
from pulserec.records import ItemRecord

#: How many recent searches a profile keeps (as `UserProfile.searches`).
SEARCHES = 10
COUNTERS = ("devices", "locations")
DECAYED = ("categories", "tags")
#: Dense columns: name -> (dtype, width per owner, fill of a fresh row).
DENSE = {"first": (np.float64, 0, math.inf), "last": (np.float64, 0, -math.inf), "total": (np.float64, 0, 0.0),
         "hours": (np.int32, 24, 0), "weekdays": (np.int32, 7, 0),
         # the latest search's time and the events since (issue 14.3: its intent fades with them)
         "search_ts": (np.float64, 0, -math.inf), "since_search": (np.int64, 0, 0)}


def hour_and_weekday(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UTC hour and weekday (Monday 0) by arithmetic: 1970-01-01 was a Thursday."""
    return (np.floor(ts / 3600.0) % 24).astype(np.int64), ((np.floor(ts / 86_400.0) + 3) % 7).astype(np.int64)


class ProfileTable:
    """The profiles of every owner; `name_of(owner)` gives the id a profile shows."""

    def __init__(self, interest_halflife: float, name_of: Callable[[int], str]) -> None:
        self.interest_halflife = interest_halflife
        self.name_of = name_of
        self.exists = np.zeros(0, dtype=bool)
        self.dense = {name: _column(dtype, 0, width, fill) for name, (dtype, width, fill) in DENSE.items()}
        self.types = IdIndex()
        self.counts = np.zeros((0, 0), dtype=np.int32)
        self.names = {name: IdIndex() for name in (*COUNTERS, *DECAYED, "searches")}
        self.keyed = {**{name: KeyedTable() for name in COUNTERS},
                      **{name: KeyedTable(interest_halflife) for name in DECAYED},
                      "searches": KeyedTable(keep_last=SEARCHES)}
        self._searches = 0  # sequence number of the next search (its code in the searches log)
        self._item_codes = ItemCodes()
        self._live = 0
        #: A background snapshot reading the columns (in-place changes save before-images first).
        self.frozen: FrozenArrays | None = None
        self._grow: Fold[dict[str, np.ndarray]] | None = None  # the columns doubled on a thread
        self._grown_rows: list[np.ndarray] = []  # rows written since it started

    # -- shape ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._live

    def __contains__(self, owner: int) -> bool:
        return 0 <= owner < len(self.exists) and bool(self.exists[owner])

    def ensure(self, n_owners: int, n_types: int = 0) -> None:
        """Room for `n_owners` owners and `n_types` event types (grown geometrically; a snapshot
        load sizes it once). Doubling copies every column (0.34 s at the 10M shop's 478k owners,
        load 9): a large table starts it on a helper thread once 3/4 full, and the writer puts
        the grown columns in place later, copying over them the rows written meanwhile (every
        in-place write names its rows to `_before_write` first)."""
        cap, width = self.counts.shape
        if self._grow is not None and (self._grow.ready() or n_owners > cap or n_types > width):
            self._swap_grown()
            cap, width = self.counts.shape
        if self._grow is None and large(cap) and cap - cap // 4 < n_owners <= cap and n_types <= width:
            self._grow = Fold("profiles", _grown, self._columns(), 2 * cap)
        if n_owners > cap:
            new = max(n_owners, 2 * cap, 1024)
            self.exists = np.r_[self.exists, np.zeros(new - cap, dtype=bool)]
            for name, (dtype, w, fill) in DENSE.items():
                self.dense[name] = np.concatenate([self.dense[name], _column(dtype, new - cap, w, fill)])
            self.counts = np.concatenate([self.counts, np.zeros((new - cap, width), dtype=np.int32)])
        if n_types > width:
            self.counts = np.concatenate([self.counts, np.zeros((len(self.counts), n_types - width), np.int32)], axis=1)

    def _created(self, owners: np.ndarray) -> None:
        self._live += int((~self.exists[owners]).sum())
        self.exists[owners] = True

    def _columns(self) -> dict[str, np.ndarray]:
        return {"exists": self.exists, "counts": self.counts, **self.dense}

    def _swap_grown(self) -> None:
        """Put the columns grown on a thread in place (waiting for them), with the rows written
        since it started copied over; a grow that failed (memory) is done here."""
        fold, rows = self._grow, self._grown_rows
        assert fold is not None
        self._grow, self._grown_rows = None, []
        columns = self._columns()
        try:
            grown = fold.result()
        except Exception:  # noqa: BLE001 - the columns are whole: grow them here
            grown = _grown(columns, 2 * len(self.exists))
        else:
            if rows:
                changed = np.unique(np.concatenate(rows))
                for name, column in columns.items():
                    grown[name][changed] = column[changed]
        self.exists, self.counts = grown.pop("exists"), grown.pop("counts")
        self.dense = grown

    def _before_write(self, owners: int | np.ndarray) -> None:
        """Rows of `owners` are about to change in place: a running snapshot keeps their image,
        a running grow copies them again."""
        if self._grow is not None:
            self._grown_rows.append(np.array(owners, dtype=np.int64, ndmin=1))
        frozen = self.frozen
        if frozen is not None:
            for column in (self.exists, self.counts, *self.dense.values()):
                frozen.before_write(column, owners)

    def freeze(self, frozen: FrozenArrays) -> None:
        """Let a background snapshot read the columns as of now (call with writers held still):
        the row columns and every keyed table's levels are registered with `frozen`."""
        self.frozen = frozen
        for column in (self.exists, self.counts, *self.dense.values()):
            frozen.track(column)
        for table in self.keyed.values():
            table.frozen = frozen

    def thaw(self) -> None:
        """The snapshot is done: in-place changes save nothing any more."""
        self.frozen = None
        for table in self.keyed.values():
            table.frozen = None

    # -- writes -----------------------------------------------------------------------------
    def update(self, owner: int, event_type: str, weight: float, ts: float, category: str | None,
               tags: Sequence[str], context: dict[str, Any] | None, query: str | None) -> None:
        """One event (the live path): what `UserProfile.update` does, into the columns."""
        code = self.types.add(event_type)
        self.ensure(owner + 1, code + 1)
        self._before_write(owner)
        if not self.exists[owner]:
            self._created(np.array([owner]))
        d = self.dense
        d["first"][owner] = min(d["first"][owner], ts)
        d["last"][owner] = max(d["last"][owner], ts)
        d["total"][owner] += weight
        self.counts[owner, code] += 1
        hour, weekday = (int(v[0]) for v in hour_and_weekday(np.array([ts])))
        d["hours"][owner, hour] += 1
        d["weekdays"][owner, weekday] += 1
        base = owner << 32
        if category:
            self.keyed["categories"].add_one(base | self.names["categories"].add(category), weight, ts)
        if tags:
            share = weight / math.sqrt(len(tags))
            for tag in tags:
                self.keyed["tags"].add_one(base | self.names["tags"].add(tag), share, ts)
        for name, field in (("devices", "device"), ("locations", "location")):
            value = context.get(field) if context else None
            if value:
                self.keyed[name].add_one(base | self.names[name].add(str(value)), 1.0)
        if isinstance(query, str) and query:  # the bulk fold's rule (_is_query): NaN/None are no search
            self.keyed["searches"].add_one(base | self._next_search(1)[0], self.names["searches"].add(query))
            d["search_ts"][owner], d["since_search"][owner] = ts, 0
        else:
            d["since_search"][owner] += 1

    def fold(self, owners: np.ndarray, types: np.ndarray, weights: np.ndarray, ts: np.ndarray,
             items: np.ndarray, records: Sequence[ItemRecord], contexts: np.ndarray | None,
             queries: np.ndarray | None) -> None:
        """A batch of events (arrays aligned by row, in arrival order), vectorised.

        `items` are indices into `records` (the catalogue's; -1: no item)."""
        if not len(owners):
            return
        owners = owners.astype(np.int64)
        type_codes, type_names = pd.factorize(pd.Series(types, dtype=object))
        table_codes = np.array([self.types.add(t) for t in type_names.tolist()], dtype=np.int64)
        self.ensure(int(owners.max()) + 1, len(self.types))
        distinct = distinct_of(owners)
        self._before_write(distinct)
        self._created(distinct)
        d = self.dense
        np.minimum.at(d["first"], owners, ts)
        np.maximum.at(d["last"], owners, ts)
        np.add.at(d["total"], owners, weights)
        _count_at(self.counts, owners, table_codes[type_codes])
        hours, weekdays = hour_and_weekday(ts)
        _count_at(d["hours"], owners, hours)
        _count_at(d["weekdays"], owners, weekdays)
        self._fold_items(owners, weights, ts, items, records)
        if contexts is not None:
            self._fold_contexts(owners, contexts)
        if queries is not None:
            self._fold_queries(owners, queries)
        marks = search_marks(owners, ts, queries)
        searched = np.isfinite(marks.last_ts)
        d["search_ts"][marks.owners[searched]] = marks.last_ts[searched]
        d["since_search"][marks.owners[searched]] = marks.after[searched]
        d["since_search"][marks.owners[~searched]] += marks.after[~searched]

    def _fold_items(self, owners, weights, ts, items, records) -> None:
        has = items >= 0
        if not has.any():
            return
        owners, weights, ts, items = owners[has], weights[has], ts[has], items[has]
        self._item_codes.refresh(distinct_of(items), records, self.names["categories"], self.names["tags"])
        cat_codes = self._item_codes.category[items]
        rows = cat_codes >= 0
        self.keyed["categories"].add(keys_of(owners[rows], cat_codes[rows]), weights[rows], ts[rows])
        lengths = self._item_codes.tag_count[items]
        if not lengths.any():
            return
        rows = np.repeat(np.arange(len(owners)), lengths)
        offsets = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        codes = self._item_codes.tags[np.repeat(self._item_codes.tag_start[items], lengths) + offsets]
        share = weights[rows] / np.sqrt(lengths[rows])
        self.keyed["tags"].add(keys_of(owners[rows], codes), share, ts[rows])

    def _fold_contexts(self, owners: np.ndarray, contexts: np.ndarray) -> None:
        """Devices and locations, each distinct context text decoded once."""
        codes, decoded = decode_contexts(contexts)
        for name, field in (("devices", "device"), ("locations", "location")):
            names = self.names[name]
            values = [c.get(field) if isinstance(c, dict) else None for c in decoded]
            value_codes = np.array([names.add(str(v)) if v else -1 for v in values] + [-1], dtype=np.int64)[codes]
            has = value_codes >= 0
            self.keyed[name].add(keys_of(owners[has], value_codes[has]), np.ones(int(has.sum())))

    def _fold_queries(self, owners: np.ndarray, queries: np.ndarray) -> None:
        codes, uniques = pd.factorize(pd.Series(queries, dtype=object))
        names = self.names["searches"]
        table = np.array([names.add(q) if isinstance(q, str) and q else -1 for q in uniques.tolist()] + [-1], np.int64)
        codes = table[codes]
        rows = np.flatnonzero(codes >= 0)
        if len(rows):
            self.keyed["searches"].add(keys_of(owners[rows], self._next_search(len(rows))), codes[rows].astype(np.float64))

    def _next_search(self, n: int) -> np.ndarray:
        first, self._searches = self._searches, self._searches + n
        return np.arange(first, first + n, dtype=np.int64)

    def forget(self, owner: int) -> None:
        """Every trace of one owner gone (personal data), its slot left empty."""
        if owner not in self:
            return
        self._before_write(owner)
        self.exists[owner] = False
        self._live -= 1
        for name, (_, _, fill) in DENSE.items():
            self.dense[name][owner] = fill
        self.counts[owner] = 0
        for table in self.keyed.values():
            table.erase(owner)

    # -- reads ------------------------------------------------------------------------------
    def get(self, owner: int) -> UserProfile | None:
        """The owner's profile, built from the columns (a copy: changing it changes nothing)."""
        if owner not in self:
            return None
        d = self.dense
        profile = UserProfile(self.name_of(owner), self.interest_halflife)
        profile.first_seen, profile.last_seen = float(d["first"][owner]), float(d["last"][owner])
        profile.total_weight = float(d["total"][owner])
        counts = self.counts[owner]
        profile.counts = Counter({self.types.id_of(c): int(counts[c]) for c in np.flatnonzero(counts).tolist()})
        profile.hours, profile.weekdays = d["hours"][owner].tolist(), d["weekdays"][owner].tolist()
        for name in COUNTERS:
            codes, values, _ = self.keyed[name].of(owner)
            getattr(profile, name).update(dict(zip(self.names[name].ids_of(codes.tolist()), map(int, values.tolist()))))
        for name in DECAYED:  # named lazily: the profile view names only its top entries
            setattr(profile, name, DecayedCounter.from_columns(self.interest_halflife, self.names[name].ids_of,
                                                               *self.keyed[name].of(owner)))
        _, queries, _ = self.keyed["searches"].of(owner)
        profile.searches.extend(self.names["searches"].ids_of(queries[-SEARCHES:].astype(np.int64).tolist()))
        profile.last_search_ts, profile.since_search = float(d["search_ts"][owner]), int(d["since_search"][owner])
        return profile

    def search_mark(self, owner: int) -> tuple[str, float, int] | None:
        """`UserProfile.search_mark` read from the columns without building the profile: every
        recommend asks it (search intent, issue 14.3), a whole profile copy costs ~20-50 us."""
        if owner not in self:
            return None
        ts = float(self.dense["search_ts"][owner])
        if not math.isfinite(ts):
            return None
        _, queries, _ = self.keyed["searches"].of(owner)
        if not len(queries):
            return None
        return self.names["searches"].id_of(int(queries[-1])), ts, int(self.dense["since_search"][owner])

    @property
    def nbytes(self) -> int:
        """Bytes held in arrays (the interned names aside)."""
        return (self.exists.nbytes + self.counts.nbytes + sum(c.nbytes for c in self.dense.values())
                + sum(t.nbytes for t in self.keyed.values()))


class SearchMarks(NamedTuple):
    """Per distinct owner of a batch: its latest search's time in the batch (-inf: none) and the
    events after it (all of the owner's events in the batch when it has no search)."""

    owners: np.ndarray
    last_ts: np.ndarray
    after: np.ndarray


def search_marks(owners: np.ndarray, ts: np.ndarray, queries: Sequence[Any] | np.ndarray | None) -> SearchMarks:
    """What a batch (arrival order) does to each owner's search mark, as `UserProfile.update`
    does it event by event: an event with a query marks the search, any other counts one more."""
    owners = np.asarray(owners, dtype=np.int64)
    distinct, inverse, counts = distinct_inverse(owners)
    has = np.zeros(len(owners), dtype=bool) if queries is None else _is_query(queries)
    last_row = np.full(len(distinct), -1, dtype=np.int64)
    np.maximum.at(last_row, inverse[has], np.flatnonzero(has))
    searched = last_row >= 0
    after = counts.astype(np.int64)
    if searched.any():
        later = np.bincount(inverse, weights=np.arange(len(owners)) > last_row[inverse], minlength=len(distinct))
        after[searched] = later[searched].astype(np.int64)
    last_ts = np.where(searched, np.asarray(ts, dtype=np.float64)[np.maximum(last_row, 0)], -np.inf)
    return SearchMarks(distinct, last_ts, after)


def _is_query(queries: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Per row: a non-empty text. Each distinct value is checked once (a Python test per row
    was ~1.3 us of an import's ~12 us per event)."""
    codes, uniques = pd.factorize(np.asarray(queries, dtype=object))
    return np.array([isinstance(q, str) and bool(q) for q in uniques.tolist()] + [False], dtype=bool)[codes]


def decode_contexts(contexts: np.ndarray) -> tuple[np.ndarray, list]:
    """(code per row, decoded distinct contexts): each distinct context JSON text decoded once
    (code -1: no context)."""
    try:
        codes, uniques = pd.factorize(pd.Series(contexts, dtype=object))
    except TypeError:  # contexts given as dicts (unhashable): decode row by row
        codes, uniques = np.arange(len(contexts)), contexts
    return codes, [json.loads(c) if isinstance(c, str) and c else c for c in list(uniques)]


def _count_at(column: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
    """`np.add.at(column, (rows, cols), 1)` for a 2-D integer column, through its flat view and
    with a one of its own dtype: NumPy's unbuffered loop takes its fast path only for a 1-D
    operand and a value that needs no cast (35k events: ~0.3 ms instead of ~10 ms, three times
    per chunk of an import). The same counts."""
    one = column.dtype.type(1)
    if column.flags.c_contiguous:
        np.add.at(column.reshape(-1), rows * column.shape[1] + cols, one)
    else:
        np.add.at(column, (rows, cols), one)


def _grown(columns: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """Each column with fresh rows up to `rows` (pure in its inputs: run on a thread)."""
    fills = {"exists": False, "counts": 0, **{name: fill for name, (_, _, fill) in DENSE.items()}}
    out = {}
    for name, column in columns.items():
        out[name] = np.full((rows, *column.shape[1:]), fills[name], dtype=column.dtype)
        out[name][: len(column)] = column
    return out


def _column(dtype, rows: int, width: int, fill) -> np.ndarray:
    return np.full((rows, width) if width else rows, fill, dtype=dtype)
