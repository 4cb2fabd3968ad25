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
from pulserec.online.history_segments import Segment
from pulserec.online.profile_columns import load_profiles, profile_arrays
from pulserec.online.state import OnlineState
from pulserec.online.strings import pack, unpack
from pulserec.records import ItemRecord

Arrays = dict[str, np.ndarray]
#: Stands for a forgotten owner's id (ids never hold control characters, so it cannot clash).
FORGOTTEN = "\x00forgotten:"


def _put_strings(out: Arrays, name: str, strings: Iterable[str]) -> None:
    out[f"{name}.data"], out[f"{name}.offsets"] = pack(strings)


def _get_strings(arrays: Arrays, name: str) -> list[str]:
    return unpack(arrays[f"{name}.data"], arrays[f"{name}.offsets"])


def to_arrays(state: OnlineState) -> Arrays:
    """Every structure of `state` (compacting its co-occurrence delta first)."""
    out: Arrays = {"scalars": np.array([state.applied, state.last_seq], dtype=np.int64)}
    profiles = state.profiles
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
    out["cooc.last_seen"] = cooc.last_seen
    _history_arrays(out, state)
    out.update(profile_arrays(state.profiles, len(state.owners)))
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
    state.cooc.last_seen = arrays["cooc.last_seen"].copy()
    _histories_from(state, arrays)
    load_profiles(state.profiles, arrays)
    return state


# -- catalogue ------------------------------------------------------------------------------
_RECORD_FIELDS = ("title", "description", "category", "tags", "price", "active", "created_ts", "attrs", "listed")


def _catalog_arrays(out: Arrays, catalog: Catalog) -> None:
    _put_strings(out, "items", catalog.item_ids.ids)
    _put_strings(out, "items.records", (json.dumps([getattr(r, f) for f in _RECORD_FIELDS], separators=(",", ":"))
                                        for r in catalog.records()))
    _put_strings(out, "items.categories", catalog.categories.ids)
    n = len(catalog)
    out["items.category_idx"], out["items.price"] = catalog.category_idx[:n], catalog.price[:n]
    out["items.active"], out["items.created_ts"] = catalog.active[:n], catalog.created_ts[:n]
    out["items.listed"] = catalog.listed[:n]


def _catalog_from(arrays: Arrays) -> Catalog:
    catalog = Catalog()
    ids = _get_strings(arrays, "items")
    catalog.item_ids = IdIndex(ids)
    catalog.categories = IdIndex(_get_strings(arrays, "items.categories"))
    for item_id, text in zip(ids, _get_strings(arrays, "items.records")):
        values = dict(zip(_RECORD_FIELDS, json.loads(text)))
        values["tags"] = tuple(values["tags"])
        catalog.records().append(ItemRecord(item_id=item_id, **values))
    catalog.grow(len(ids))
    for name in ("category_idx", "price", "active", "listed", "created_ts"):
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
        histories.kind(event_type, weight)
    if len(arrays["hist.owner"]) or len(arrays["hist.seen_owner"]):
        histories.segments = [Segment(*(arrays[f"hist.{name}"] for name in
                                        ("owner", "item", "ts", "kind", "seen_owner", "seen_item")))]
    histories.recount()
