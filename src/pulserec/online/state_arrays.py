"""The in-memory online state as NumPy arrays, and back (for snapshots).

Only numbers and UTF-8 bytes: strings are packed as one byte buffer plus offsets, records and
profiles as columns, so a snapshot is loaded with `allow_pickle=False` and nothing in it can
run code. Each structure is written as the levels it keeps (history segments; co-occurrence
base, middle level and the pairs since; each profile table's main, delta and pending entries):
`capture` takes them under the lock in O(structures) (immutable levels by reference, the few
small per-item arrays copied, the catalogue's records by reference with the ones upserts replace
kept, the profiles' columns frozen copy-on-write, `pulserec/frozen.py`)
and `StateImage.members` produces the arrays afterwards, while writers go on (issue 17.1)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import scipy.sparse as sp

from pulserec.config import Settings
from pulserec.frozen import FrozenArrays
from pulserec.ids import IdIndex
from pulserec.online.catalog import Catalog
from pulserec.online.cooccurrence import ENTRY
from pulserec.online.history_segments import Segment
from pulserec.online.profile_columns import ProfileImage, load_profiles, string_members
from pulserec.online.snapshot_file import Member, whole
from pulserec.online.state import OnlineState
from pulserec.online.strings import unpack
from pulserec.records import ItemRecord

Arrays = dict[str, np.ndarray]
#: Stands for a forgotten owner's id (ids never hold control characters, so it cannot clash).
FORGOTTEN = "\x00forgotten:"
_SEGMENT_FIELDS = ("owner", "item", "ts", "kind", "seen_owner", "seen_item")
_RECORD_FIELDS = ("title", "description", "category", "tags", "price", "active", "created_ts", "attrs", "listed")


def gil_pause() -> None:
    """Between two steps of a background snapshot's Python work: a real sleep, so a writer
    waiting for the GIL takes it now rather than after the 5 ms switch interval."""
    time.sleep(0.0002)


class StateImage:
    """One log position's view of an `OnlineState` (see `capture`)."""

    def __init__(self, state: OnlineState, frozen: FrozenArrays) -> None:
        self.frozen = frozen
        self.scalars = np.array([state.applied, state.last_seq], dtype=np.int64)
        self.owner_ids, self.n_owners = state.owners.ids, len(state.owners)
        catalog, n = state.catalog, len(state.catalog)
        self.catalog, self.n_items = catalog, n
        self.item_ids = catalog.item_ids.ids
        self.records, self.replaced = catalog.record_image()
        self.categories = catalog.categories.ids[:]
        self.items = {name: getattr(catalog, name)[:n].copy() for name in ("category_idx", "price", "active", "created_ts", "listed")}
        # The per-item arrays up to the catalogue's size, not their capacity (up to twice it).
        pop = state.popularity
        self.pop = {"pop.total": pop.total[:n].copy(), "pop.events": pop.events[:n].copy(),
                    "pop.trending": pop.trending.values[:n].copy(),
                    "pop.clock": np.array([np.nan if pop.trending.landmark is None else pop.trending.landmark, pop.trending.now])}
        cooc = state.cooc
        self.sealed = cooc.seal()
        self.base, self.mid = cooc.base, cooc.mid
        self.cooc = {"cooc.degree": cooc.degree[:n].copy(), "cooc.last_seen": cooc.last_seen[:n].copy()}
        histories = state.histories
        self.segments, self.pending = list(histories.segments), histories.pending()
        self.histories = histories
        self.kinds = (histories.kind_types[:], np.asarray(histories.kind_weights, dtype=np.float64))
        self.profiles = ProfileImage(state.profiles, self.n_owners, frozen)

    def members(self, pause: Callable[[], None] = lambda: None) -> Iterator[Member]:
        """Every array, produced one at a time as the file is written (`pause` between steps of
        Python work)."""
        yield whole("scalars", self.scalars)
        exists = self.profiles.exists()
        owners = self.owner_ids  # append-only: the first n_owners are those of this image
        yield from string_members("owners", (owners[i] if exists[i] else f"{FORGOTTEN}{i}" for i in range(self.n_owners)),
                                  pause, self.n_owners)
        yield from self._catalog(pause)
        yield from (whole(name, array) for name, array in self.pop.items())
        base = self.base
        yield from (whole(f"cooc.{name}", getattr(base, name)) for name in ("indptr", "indices", "data"))
        yield whole("cooc.shape", np.array(base.shape, dtype=np.int64))
        yield from (whole(f"cooc.mid.{name}", getattr(self.mid, name)) for name in ("indptr", "indices", "data"))
        yield whole("cooc.mid.shape", np.array(self.mid.shape, dtype=np.int64))
        yield Member("cooc.later", ENTRY, (sum(level.nnz for level in self.sealed),),
                     (step for level in self.sealed for step in level.peek_entries(pause)))
        yield from (whole(name, array) for name, array in self.cooc.items())
        yield from self._histories(pause)
        yield from self.profiles.members(exists, pause)

    def _catalog(self, pause: Callable[[], None]) -> Iterator[Member]:
        n = self.n_items
        yield from string_members("items", (self.item_ids[i] for i in range(n)), pause, n)
        yield from string_members("items.records", (json.dumps([getattr(r, f) for f in _RECORD_FIELDS],
                                                               separators=(",", ":")) for r in self._records()), pause, n)
        yield from string_members("items.categories", self.categories, pause)
        yield from (whole(f"items.{name}", array) for name, array in self.items.items())

    def _records(self) -> Iterator[ItemRecord]:
        """Each record as of the capture: the live one, unless an upsert replaced it since (the
        live one is read first, so a replacement in between is seen in `replaced`)."""
        live, replaced = self.records, self.replaced
        for i in range(self.n_items):
            record = live[i]
            yield replaced.get(i, record)

    def _histories(self, pause: Callable[[], None]) -> Iterator[Member]:
        segments = self.segments + ([self.histories.segment_of_pending(self.pending, pause)] if self.pending.owners else [])
        yield whole("hist.segments", np.array([len(segments)], dtype=np.int64))
        for k, segment in enumerate(segments):
            yield from (whole(f"hist.{k}.{name}", getattr(segment, name)) for name in _SEGMENT_FIELDS)
        yield from string_members("hist.kind_types", self.kinds[0], pause)
        yield whole("hist.kind_weights", self.kinds[1])

    def release(self) -> None:
        """The file is written (or abandoned): writers stop saving before-images."""
        self.profiles.release()
        self.frozen.release()
        self.catalog.close_record_image(self.replaced)


def capture(state: OnlineState) -> StateImage:
    """The state as of now, for a snapshot written later (call with writers held still;
    O(structures) plus copies of the per-item arrays). Call `release` when done."""
    return StateImage(state, FrozenArrays())


def to_arrays(state: OnlineState) -> Arrays:
    """Every structure of `state` as a dict of arrays (the state held still meanwhile)."""
    image = capture(state)
    try:
        return {member.name: _joined(member) for member in image.members()}
    finally:
        image.release()


def _joined(member: Member) -> np.ndarray:
    chunks = list(member.chunks)
    if not chunks:
        return np.empty(member.shape, dtype=member.dtype)
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def _get_strings(arrays: Arrays, name: str) -> list[str]:
    return unpack(arrays[f"{name}.data"], arrays[f"{name}.offsets"])


def from_arrays(settings: Settings, arrays: Arrays) -> OnlineState:
    state = OnlineState(settings)
    state.applied, state.last_seq = (int(v) for v in arrays["scalars"])
    state.owners = IdIndex(_get_strings(arrays, "owners"))
    state.catalog = _catalog_from(arrays)
    pop = state.popularity
    pop.total, pop.events, pop.trending.values = (arrays[k].copy() for k in ("pop.total", "pop.events", "pop.trending"))
    landmark, now = arrays["pop.clock"].tolist()
    pop.trending.landmark, pop.trending.now = (None if math.isnan(landmark) else landmark), now
    _cooc_from(state, arrays)
    _histories_from(state, arrays)
    load_profiles(state.profiles, arrays)
    return state


def _csr(arrays: Arrays, prefix: str) -> sp.csr_matrix:
    n = tuple(int(v) for v in arrays[f"{prefix}.shape"])
    return sp.csr_matrix((arrays[f"{prefix}.data"], arrays[f"{prefix}.indices"], arrays[f"{prefix}.indptr"]), shape=n)


def _cooc_from(state: OnlineState, arrays: Arrays) -> None:
    state.cooc.load_levels(_csr(arrays, "cooc"), _csr(arrays, "cooc.mid"), arrays["cooc.later"])
    state.cooc.degree = arrays["cooc.degree"].copy()
    state.cooc.last_seen = arrays["cooc.last_seen"].copy()


# -- catalogue ------------------------------------------------------------------------------
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
def _histories_from(state: OnlineState, arrays: Arrays) -> None:
    histories = state.histories
    for event_type, weight in zip(_get_strings(arrays, "hist.kind_types"), arrays["hist.kind_weights"].tolist()):
        histories.kind(event_type, weight)
    histories.load_segments([Segment(*(arrays[f"hist.{k}.{name}"] for name in _SEGMENT_FIELDS))
                             for k in range(int(arrays["hist.segments"][0]))])
