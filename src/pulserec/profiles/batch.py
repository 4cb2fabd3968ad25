"""Vectorised profile building for bulk imports and rebuilds (same result as per-event updates)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from pulserec.profiles.profile import Profiles


def apply_log(
    profiles: Profiles,
    owners: np.ndarray,
    names: np.ndarray,
    types: np.ndarray,
    weights: np.ndarray,
    ts: np.ndarray,
    categories: list[str | None],
    tags: list[tuple[str, ...]],
    contexts: np.ndarray | None,
    queries: np.ndarray | None,
) -> None:
    """Fold a log of events (arrays aligned by row, in arrival order) into `profiles`."""
    frame = pd.DataFrame({"owner": owners, "type": types, "w": weights, "ts": ts})
    for owner, name in pd.DataFrame({"o": owners, "n": names}).drop_duplicates("o").itertuples(index=False):
        profiles.get_or_create(int(owner), name)
    get = profiles.get

    stats = frame.groupby("owner").agg(first=("ts", "min"), last=("ts", "max"), total=("w", "sum"))
    for owner, first, last, total in stats.itertuples():
        p = get(owner)
        p.first_seen = min(p.first_seen, first)
        p.last_seen = max(p.last_seen, last)
        p.total_weight += total
    type_codes, type_names = pd.factorize(pd.Series(types, dtype=object))
    names_of = type_names.tolist()
    for owner, code, count in _pair_counts(owners, type_codes, len(names_of)):
        get(owner).counts[names_of[code]] += count

    # UTC hour and weekday by arithmetic (1970-01-01 was a Thursday: weekday 3, Monday = 0).
    days = np.floor(ts / 86_400.0)
    for column, slots, n_slots in (("hours", (np.floor(ts / 3600.0) % 24).astype(np.int64), 24),
                                   ("weekdays", ((days + 3) % 7).astype(np.int64), 7)):
        for owner, slot, count in _pair_counts(owners, slots, n_slots):
            getattr(get(owner), column)[slot] += count

    cat = pd.Series(categories, dtype=object)
    has_cat = cat.notna().to_numpy()
    _fold_decayed(profiles, "categories", owners[has_cat], cat[has_cat].to_numpy(), weights[has_cat], ts[has_cat])

    lengths = np.fromiter((len(t) for t in tags), dtype=np.int64, count=len(tags))
    if lengths.sum():
        rows = np.repeat(np.arange(len(tags)), lengths)
        flat = np.fromiter((tag for group in tags for tag in group), dtype=object, count=int(lengths.sum()))
        share = weights[rows] / np.sqrt(lengths[rows])
        _fold_decayed(profiles, "tags", owners[rows], flat, share, ts[rows])

    if contexts is not None:
        _fold_contexts(get, owners, contexts)
    if queries is not None:
        for owner, query in zip(owners, queries):
            if isinstance(query, str) and query:
                get(int(owner)).searches.append(query)


def _pair_counts(owners: np.ndarray, codes: np.ndarray, n_codes: int):
    """(owner, code, count) of every distinct pair, as Python ints (np.unique on one int64 key:
    iterating a pandas MultiIndex of groupby sizes cost more than the counting)."""
    keys, counts = np.unique(owners.astype(np.int64) * n_codes + codes, return_counts=True)
    pair_owners, pair_codes = np.divmod(keys, n_codes)
    return zip(pair_owners.tolist(), pair_codes.tolist(), counts.tolist())


def _fold_contexts(get, owners: np.ndarray, contexts: np.ndarray) -> None:
    """Count devices and locations per owner. Each distinct context text is decoded once, and
    counters are bumped once per (owner, value) in order of first appearance, so ties in
    `most_common` break as they do for per-event updates."""
    try:
        codes, uniques = pd.factorize(pd.Series(contexts, dtype=object))
    except TypeError:  # contexts given as dicts (unhashable): decode row by row
        codes, uniques = np.arange(len(contexts)), contexts
    decoded = [json.loads(c) if isinstance(c, str) and c else c for c in list(uniques)]
    for key, attr in (("device", "devices"), ("location", "locations")):
        values = np.array([str(d[key]) if isinstance(d, dict) and d.get(key) else None for d in decoded] + [None],
                          dtype=object)[codes]
        has = np.flatnonzero(pd.notna(values))
        if not len(has):
            continue
        value_codes, names = pd.factorize(pd.Series(values[has], dtype=object))
        keys = owners[has].astype(np.int64) * len(names) + value_codes
        unique, first, counts = np.unique(keys, return_index=True, return_counts=True)
        order = np.argsort(first, kind="stable")  # pairs in order of first appearance
        pair_owners, pair_codes = np.divmod(unique[order], len(names))
        names_of = names.tolist()
        for owner, code, count in zip(pair_owners.tolist(), pair_codes.tolist(), counts[order].tolist()):
            getattr(get(owner), attr)[names_of[code]] += count


def _fold_decayed(profiles: Profiles, attr: str, owners: np.ndarray, keys: np.ndarray, weights: np.ndarray, ts: np.ndarray) -> None:
    """Per (owner, key): sum of w * exp(-rate * (T - t)) with T the group's latest time, then
    merged into the owner's DecayedCounter exactly as one event of that weight at time T."""
    if len(owners) == 0:
        return
    rate = math.log(2.0) / profiles.interest_halflife
    codes, uniques = pd.factorize(keys)
    groups, inverse = np.unique(owners.astype(np.int64) * len(uniques) + codes, return_inverse=True)
    latest = np.full(len(groups), -np.inf)
    np.maximum.at(latest, inverse, ts)
    values = np.bincount(inverse, weights=weights * np.exp(-rate * (latest[inverse] - ts)), minlength=len(groups))
    get = profiles.get
    key_names = np.asarray(uniques, dtype=object)
    owners_of, codes = np.divmod(groups, len(uniques))
    starts = np.flatnonzero(np.r_[True, owners_of[1:] != owners_of[:-1]])
    ends = np.r_[starts[1:], len(groups)]
    for start, end in zip(starts.tolist(), ends.tolist()):  # one owner at a time
        counter = getattr(get(int(owners_of[start])), attr)
        names = key_names[codes[start:end]].tolist()
        pairs = zip(values[start:end].tolist(), latest[start:end].tolist())
        if not counter:  # a fresh counter (the bulk-import case): build its dict in one go
            counter.assign(dict(zip(names, pairs)))
        else:
            for name, (value, at) in zip(names, pairs):
                counter.add(name, value, at)
