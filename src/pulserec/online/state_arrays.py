"""The in-memory online state as a flat dict of NumPy arrays, and back (for snapshots).

Only numbers and UTF-8 bytes: strings are packed as one byte buffer plus offsets, records and
profiles as columns, so a snapshot is loaded with `allow_pickle=False` and nothing in it can
run code. `to_arrays(from_arrays(a)) == a` for every structure (tests/online/test_snapshots.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

from pulserec.config import Settings
from pulserec.ids import IdIndex
from pulserec.online.catalog import Catalog
from pulserec.records import ItemRecord
from pulserec.online.history_segments import Segment
from pulserec.online.state import OnlineState
from pulserec.profiles import UserProfile

Arrays = dict[str, np.ndarray]
#: Stands for a forgotten owner's id (ids never hold control characters, so it cannot clash).
FORGOTTEN = "\x00forgotten:"


def pack(strings: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as (UTF-8 bytes, int64 offsets of len n+1); surrogates survive the round trip."""
    encoded = [s.encode("utf-8", "surrogatepass") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def unpack(data: np.ndarray, offsets: np.ndarray) -> list[str]:
    raw = data.tobytes()
    bounds = offsets.tolist()
    return [raw[a:b].decode("utf-8", "surrogatepass") for a, b in zip(bounds[:-1], bounds[1:])]


def _put_strings(out: Arrays, name: str, strings: Iterable[str]) -> None:
    out[f"{name}.data"], out[f"{name}.offsets"] = pack(strings)


def _get_strings(arrays: Arrays, name: str) -> list[str]:
    return unpack(arrays[f"{name}.data"], arrays[f"{name}.offsets"])


def to_arrays(state: OnlineState) -> Arrays:
    """Every structure of `state` (compacting its co-occurrence delta first)."""
    out: Arrays = {"scalars": np.array([state.applied, state.last_seq], dtype=np.int64)}
    profiles = state.profiles._profiles
    # An owner without a profile was forgotten (deleted, or a session merged into a user): its
    # slot stays, but its id (personal data) is not written to disk.
    _put_strings(out, "owners", (key if i in profiles else f"{FORGOTTEN}{i}" for i, key in enumerate(state.owners.ids)))
    _catalog_arrays(out, state.catalog)
    pop = state.popularity
    out["pop.total"], out["pop.events"], out["pop.trending"] = pop.total, pop.events, pop.trending.values
    out["pop.clock"] = np.array([np.nan if pop.trending.landmark is None else pop.trending.landmark, pop.trending.now])
    cooc = state.cooc
    cooc.compact()
    base = cooc.base
    out["cooc.indptr"], out["cooc.indices"], out["cooc.data"] = base.indptr, base.indices, base.data
    out["cooc.shape"], out["cooc.degree"] = np.array(base.shape, dtype=np.int64), cooc.degree
    _history_arrays(out, state)
    _profile_arrays(out, state)
    return out


def from_arrays(settings: Settings, arrays: Arrays) -> OnlineState:
    state = OnlineState(settings)
    state.applied, state.last_seq = (int(v) for v in arrays["scalars"])
    state.owners = IdIndex(_get_strings(arrays, "owners"))
    state.catalog = _catalog_from(arrays)
    pop = state.popularity
    pop.total, pop.events, pop.trending.values = (arrays[k].copy() for k in ("pop.total", "pop.events", "pop.trending"))
    landmark, now = arrays["pop.clock"].tolist()
    pop.trending.landmark, pop.trending.now = (None if math.isnan(landmark) else landmark), now
    n = tuple(int(v) for v in arrays["cooc.shape"])
    state.cooc.base = sp.csr_matrix((arrays["cooc.data"], arrays["cooc.indices"], arrays["cooc.indptr"]), shape=n)
    state.cooc.degree = arrays["cooc.degree"].copy()
    _histories_from(state, arrays)
    _profiles_from(state, arrays)
    return state


# -- catalogue ------------------------------------------------------------------------------
_RECORD_FIELDS = ("title", "description", "category", "tags", "price", "active", "created_ts", "attrs")


def _catalog_arrays(out: Arrays, catalog: Catalog) -> None:
    _put_strings(out, "items", catalog.item_ids.ids)
    _put_strings(out, "items.records", (json.dumps([getattr(r, f) for f in _RECORD_FIELDS], separators=(",", ":"))
                                        for r in catalog.records()))
    _put_strings(out, "items.categories", catalog.categories.ids)
    n = len(catalog)
    out["items.category_idx"], out["items.price"] = catalog.category_idx[:n], catalog.price[:n]
    out["items.active"], out["items.created_ts"] = catalog.active[:n], catalog.created_ts[:n]


def _catalog_from(arrays: Arrays) -> Catalog:
    catalog = Catalog()
    ids = _get_strings(arrays, "items")
    catalog.item_ids = IdIndex(ids)
    catalog.categories = IdIndex(_get_strings(arrays, "items.categories"))
    for item_id, text in zip(ids, _get_strings(arrays, "items.records")):
        values = dict(zip(_RECORD_FIELDS, json.loads(text)))
        values["tags"] = tuple(values["tags"])
        catalog.records().append(ItemRecord(item_id=item_id, **values))
    catalog._grow(len(ids))
    for name in ("category_idx", "price", "active", "created_ts"):
        getattr(catalog, name)[: len(ids)] = arrays[f"items.{name}"]
    return catalog


# -- histories ------------------------------------------------------------------------------
def _history_arrays(out: Arrays, state: OnlineState) -> None:
    histories = state.histories
    segment = histories.compact()
    for name in ("owner", "item", "ts", "kind", "seen_owner", "seen_item"):
        out[f"hist.{name}"] = getattr(segment, name) if segment is not None else np.empty(0, dtype=np.int32)
    _put_strings(out, "hist.kind_types", histories.kind_types)
    out["hist.kind_weights"] = np.asarray(histories.kind_weights, dtype=np.float64)


def _histories_from(state: OnlineState, arrays: Arrays) -> None:
    histories = state.histories
    for event_type, weight in zip(_get_strings(arrays, "hist.kind_types"), arrays["hist.kind_weights"].tolist()):
        histories._kind(event_type, weight)
    if len(arrays["hist.owner"]) or len(arrays["hist.seen_owner"]):
        histories.segments = [Segment(*(arrays[f"hist.{name}"] for name in
                                        ("owner", "item", "ts", "kind", "seen_owner", "seen_item")))]


# -- profiles -------------------------------------------------------------------------------
_COUNTERS = ("counts", "devices", "locations")
_DECAYED = ("categories", "tags")


def _profile_arrays(out: Arrays, state: OnlineState) -> None:
    profiles = state.profiles._profiles
    owners = sorted(profiles)
    rows = [profiles[o] for o in owners]
    out["prof.owners"] = np.array(owners, dtype=np.int64)
    _put_strings(out, "prof.user_id", (p.user_id for p in rows))
    out["prof.scalars"] = np.array([(p.first_seen, p.last_seen, p.total_weight) for p in rows], dtype=np.float64).reshape(-1, 3)
    out["prof.hours"] = np.array([p.hours for p in rows], dtype=np.int64).reshape(-1, 24)
    out["prof.weekdays"] = np.array([p.weekdays for p in rows], dtype=np.int64).reshape(-1, 7)
    for name in _COUNTERS:
        counters = [getattr(p, name) for p in rows]
        _keyed(out, f"prof.{name}", counters, lambda c: c.items(), np.int64)
    for name in _DECAYED:
        counters = [getattr(p, name)._values for p in rows]
        _keyed(out, f"prof.{name}", counters, lambda c: ((k, v) for k, (v, _) in c.items()), np.float64)
        out[f"prof.{name}.ts"] = np.fromiter((t for c in counters for _, t in c.values()), dtype=np.float64)
    searches = [list(p.searches) for p in rows]
    out["prof.searches.lengths"] = np.fromiter(map(len, searches), dtype=np.int64, count=len(searches))
    _put_strings(out, "prof.searches", (q for s in searches for q in s))


def _keyed(out: Arrays, name: str, counters: list, items, dtype) -> None:
    """Per-owner {key: value} maps as (lengths, key codes, key names, values), keys in order."""
    keys = IdIndex()
    pairs = [(keys.add(k), v) for c in counters for k, v in items(c)]
    out[f"{name}.lengths"] = np.fromiter(map(len, counters), dtype=np.int64, count=len(counters))
    out[f"{name}.keys"] = np.fromiter((k for k, _ in pairs), dtype=np.int64, count=len(pairs))
    out[f"{name}.values"] = np.fromiter((v for _, v in pairs), dtype=dtype, count=len(pairs))
    _put_strings(out, f"{name}.names", keys.ids)


def _keyed_from(arrays: Arrays, name: str) -> list[list[tuple[str, object]]]:
    names = _get_strings(arrays, f"{name}.names")
    pairs = list(zip((names[k] for k in arrays[f"{name}.keys"].tolist()), arrays[f"{name}.values"].tolist()))
    bounds = np.r_[0, np.cumsum(arrays[f"{name}.lengths"])].tolist()
    return [pairs[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _profiles_from(state: OnlineState, arrays: Arrays) -> None:
    halflife = state.profiles.interest_halflife
    owners = arrays["prof.owners"].tolist()
    counters = {name: _keyed_from(arrays, f"prof.{name}") for name in (*_COUNTERS, *_DECAYED)}
    stamps = {name: arrays[f"prof.{name}.ts"].tolist() for name in _DECAYED}
    taken = dict.fromkeys(_DECAYED, 0)
    queries = _get_strings(arrays, "prof.searches")
    query_bounds = np.r_[0, np.cumsum(arrays["prof.searches.lengths"])].tolist()
    for row, (owner, user_id) in enumerate(zip(owners, _get_strings(arrays, "prof.user_id"))):
        profile = UserProfile(user_id, halflife)
        profile.first_seen, profile.last_seen, profile.total_weight = arrays["prof.scalars"][row].tolist()
        profile.hours, profile.weekdays = arrays["prof.hours"][row].tolist(), arrays["prof.weekdays"][row].tolist()
        for name in _COUNTERS:
            getattr(profile, name).update(dict(counters[name][row]))
        for name in _DECAYED:
            pairs = counters[name][row]
            at = stamps[name][taken[name] : taken[name] + len(pairs)]
            taken[name] += len(pairs)
            getattr(profile, name).assign({k: (v, t) for (k, v), t in zip(pairs, at)})
        profile.searches.extend(queries[query_bounds[row] : query_bounds[row + 1]])
        state.profiles.put(owner, profile)
