"""What a batch of events adds to each owner's profile, computed with NumPy and merged by COMMIT.

A profile in Redis is a hash of small fields (see `profiles.py`), so an update is not a
read-modify-write of the whole profile in Python: each batch sends, per owner, the profile of
its own events alone, and COMMIT merges it field by field. Every part of `UserProfile.update`
merges exactly this way: counts add, first/last seen take min/max, device and location counts
keep their first-seen order (ties of `most_common`), searches append (last 10 kept), the latest
search's time is set and the events since it count on (`qt`, `qn`), and a
decayed score folded from a group of events equals one event of weight
`S = sum w * exp(-rate * (T - t))` at the group's latest time `T` (linear decay; the same
reduction `profiles/keyed.py:KeyedTable._aggregate` uses), which COMMIT adds with `DecayedCounter.add`'s
own formula. Measured on an updater's batches of 500 MovieLens events: ~1 us an event, where
folding `UserProfile`s and their JSON cost ~35 us.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from pulserec.profiles.table import search_marks
from pulserec.records import ItemRecord

HOUR_FIELDS = [f"h:{h}" for h in range(24)]
WEEKDAY_FIELDS = [f"wd:{d}" for d in range(7)]


def profile_deltas(owners: np.ndarray, names: Sequence[str], types: Sequence[str], weights: np.ndarray,
                   ts: np.ndarray, items: np.ndarray, records: list[ItemRecord], contexts: Sequence[Any] | None,
                   queries: Sequence[Any] | None, rate: float) -> list[dict[str, Any]]:
    """One delta per distinct owner (`np.unique` order) of events given in arrival order.

    `names`: the user id a profile created by the row takes; `items`: catalogue indices (-1 for
    none) into `records`; `contexts`: dicts or JSON text (or None); `rate`: ln 2 / half-life."""
    distinct, first_row, inverse = np.unique(owners, return_index=True, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(distinct)))
    first = np.minimum.reduceat(ts[order], starts).tolist()
    last = np.maximum.reduceat(ts[order], starts).tolist()
    total = np.bincount(inverse, weights=weights, minlength=len(distinct)).tolist()
    deltas = [{"o": int(o), "u": str(names[r]), "f": f, "l": l, "w": w, "n": [], "r": [], "k": [], "s": []}
              for o, r, f, l, w in zip(distinct.tolist(), first_row.tolist(), first, last, total)]

    type_codes, type_names = _factorize(types)
    hours = (np.floor(ts / 3600.0) % 24).astype(np.int64)  # UTC, as datetime.fromtimestamp(ts, utc)
    weekdays = ((np.floor(ts / 86_400.0) + 3) % 7).astype(np.int64)  # 1970-01-01 was a Thursday
    for codes, fields in ((type_codes, [f"c:{t}" for t in type_names]), (hours, HOUR_FIELDS), (weekdays, WEEKDAY_FIELDS)):
        for owner, field, count in _pair_counts(inverse, codes, fields):
            deltas[owner]["n"] += [field, count]

    _interests(deltas, inverse, items, records, weights, ts, rate)

    if contexts is not None:
        _contexts(deltas, inverse, contexts)
    if queries is not None:
        for owner, query in zip(inverse.tolist(), queries):
            if isinstance(query, str) and query:
                deltas[owner]["s"].append(query)
    marks = search_marks(owners, ts, queries)  # `np.unique` order, as the deltas
    for delta, last_ts, after in zip(deltas, marks.last_ts.tolist(), marks.after.tolist()):
        delta["qn"] = after
        if last_ts != -np.inf:  # absent, not null: cjson reads null as a truthy value
            delta["qt"] = last_ts
    return deltas


def _factorize(values: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
    """(codes, distinct values in order of first appearance): a dict is faster than pandas
    for the few hundred rows of a batch."""
    index: dict[Any, int] = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int64, count=len(values))
    return codes, list(index)


def _pair_counts(owners: np.ndarray, codes: np.ndarray, names: list[str]) -> Iterator[tuple[int, str, int]]:
    """(owner, name, count) of every distinct (owner, code) pair, in order of first appearance."""
    if len(owners) == 0:
        return iter(())
    keys = owners.astype(np.int64) * len(names) + codes
    unique, first, counts = np.unique(keys, return_index=True, return_counts=True)
    ranked = np.argsort(first, kind="stable")
    pair_owners, pair_codes = np.divmod(unique[ranked], len(names))
    return ((o, names[c], n) for o, c, n in zip(pair_owners.tolist(), pair_codes.tolist(), counts[ranked].tolist()))


def _interests(deltas: list[dict[str, Any]], owners: np.ndarray, items: np.ndarray, records: list[ItemRecord],
               weights: np.ndarray, ts: np.ndarray, rate: float) -> None:
    """Category (`k:`) and tag (`t:`, weight / sqrt(tags) each) scores of the rows with an item.
    Records are read once per distinct item of the batch; rows are then gathered with NumPy
    (per-row Python over ~2.3 tags an event cost ~3 us of the ~7 an event of this module)."""
    rows = np.flatnonzero(items >= 0)
    if not len(rows):
        return
    distinct, at = np.unique(items[rows], return_inverse=True)
    listed = [records[i] for i in distinct.tolist()]
    categories, category_names = _factorize(["k:" + r.category if r.category else None for r in listed])
    missing = category_names.index(None) if None in category_names else -1
    row_categories = categories[at]
    has = row_categories != missing
    if has.any():
        _decayed(deltas, owners[rows[has]], row_categories[has], category_names, weights[rows[has]], ts[rows[has]], rate)
    counts = np.fromiter((len(r.tags) for r in listed), dtype=np.int64, count=len(listed))
    if not counts.any():
        return
    tag_codes, tag_names = _factorize(["t:" + tag for r in listed for tag in r.tags])
    per_row = counts[at]
    tag_rows = np.repeat(rows, per_row)  # each row once per tag of its item, in tag order
    first = np.repeat(np.cumsum(counts)[at] - per_row, per_row)  # where the row's item's tags start
    offset = np.arange(len(tag_rows)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    share = weights[tag_rows] / np.sqrt(np.repeat(per_row, per_row).astype(np.float64))
    _decayed(deltas, owners[tag_rows], tag_codes[first + offset], tag_names, share, ts[tag_rows], rate)


def _decayed(deltas: list[dict[str, Any]], owners: np.ndarray, codes: np.ndarray, names: list[str],
             weights: np.ndarray, ts: np.ndarray, rate: float) -> None:
    """Per (owner, field): (S, T) as in the module docstring, as [field, S, T] triples
    (`codes` index `names`)."""
    groups, inverse = np.unique(owners.astype(np.int64) * len(names) + codes, return_inverse=True)
    latest = np.full(len(groups), -np.inf)
    np.maximum.at(latest, inverse, ts)
    sums = np.bincount(inverse, weights=weights * np.exp(-rate * (latest[inverse] - ts)), minlength=len(groups))
    group_owners, group_codes = np.divmod(groups, len(names))
    for owner, code, value, at in zip(group_owners.tolist(), group_codes.tolist(), sums.tolist(), latest.tolist()):
        deltas[owner]["k"] += [names[code], value, at]


def _contexts(deltas: list[dict[str, Any]], owners: np.ndarray, contexts: Sequence[Any]) -> None:
    """Device and location counts per owner, in first-seen order (each distinct text decoded once)."""
    decoded: dict[str, Any] = {}
    for prefix, key in (("d:", "device"), ("l:", "location")):
        rows, values = [], []
        for row, context in enumerate(contexts):
            if isinstance(context, str):
                if context not in decoded:
                    decoded[context] = json.loads(context) if context else None
                context = decoded[context]
            value = context.get(key) if isinstance(context, dict) else None
            if value:
                rows.append(row)
                values.append(prefix + str(value))
        if rows:
            codes, names = _factorize(values)
            for owner, field, count in _pair_counts(owners[np.array(rows)], codes, names):
                deltas[owner]["r"] += [field, count]
