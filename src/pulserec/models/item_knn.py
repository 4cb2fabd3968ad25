"""Item-based collaborative filtering over the live co-occurrence matrix.

score(j) = sum over the user's recent items h of weight(h) * cos(h, j), where cos is the
co-occurrence weight normalised by both items' degrees. Online by construction: the matrix is
the one the online state updates on every event."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import numpy as np
import scipy.sparse as sp

from pulserec.models.base import Query, Reason, Scored
from pulserec.models.interactions import Interactions
from pulserec.models.long_term_cache import LongTermCache, LongTermPart, long_term_part
from pulserec.models.neighbour_rows import NeighbourRows
from pulserec.models.persist import SavedState
from pulserec.online.catalog import Catalog
from pulserec.online.cooccurrence import CoOccurrence


#: Rows read per call while warming (one ROWS script call each on Redis: ~2 MB at MovieLens' ~185
#: entries a row), and the most a start spends warming: MovieLens' 9.7k rows took 0.3 s in memory
#: and 2.8 s from Redis at load 9 (the transfer, decoding and normalising 1.3M entries); what is
#: not warmed by then is kept by the requests that read it.
WARM_CHUNK = 1024
WARM_SECONDS = 2.0


class SupportCounts(Protocol):
    """Distinct owners per item index (the histories of either state)."""

    @property
    def owner_counts(self) -> np.ndarray: ...


class ItemKNN(SavedState):
    """Neighbours need support: with `support` (the live histories) an item that fewer than
    `min_support` distinct users (or sessions) touched is nobody's neighbour. Cosine divides by
    both degrees, so an item one user touched co-occurs with everything that user saw at a
    similarity near 1.0, above the popular items' real neighbours, however many events that one
    user sends (issue 13.1).

    Saved (as part of a blend, e.g. the self-chosen default) as its compacted co-occurrence
    matrix and item degrees; the live one is the online state's and is never saved."""

    name: ClassVar[str] = "item_knn"

    def __init__(self, cooc: CoOccurrence | None = None, window: int = 20, gap_tau: float = 3 * 86_400.0,
                 max_neighbours: int = 0, support: SupportCounts | None = None, min_support: int = 0,
                 evict_halflife: float = 0.0, long_term_cache: LongTermCache | None = None,
                 rows: NeighbourRows | None = None) -> None:
        self.cooc = cooc if cooc is not None else CoOccurrence(window, gap_tau, max_neighbours=max_neighbours,
                                                               evict_halflife=evict_halflife)
        self.support = support
        self.min_support = min_support
        #: Users' long-term parts between requests (the live views; None: gathered every time).
        self.long_term_cache = long_term_cache
        #: Scored rows kept per revision (the live views; None: every row read each time).
        self.rows = rows
        self._last_revision: object = None  # the rows' revision at the previous request

    def _supported(self, idx: np.ndarray) -> np.ndarray:
        """Which of the neighbour indices `idx` have at least `min_support` distinct owners."""
        if self.support is None or self.min_support <= 1 or len(idx) == 0:
            return np.ones(len(idx), dtype=bool)
        owners = self.support.owner_counts
        if int(idx.max()) < len(owners):  # the usual case: one gather, no temporaries
            return owners[idx] >= self.min_support
        counts = np.zeros(len(idx), dtype=np.int64)
        inside = idx < len(owners)
        counts[inside] = owners[idx[inside]]
        return counts >= self.min_support

    def warm(self) -> int:
        """Keep the scored rows of the items the most owners touched (the rows most first
        requests read) at the current revision, as many as the rows' bound holds: a process
        started on a quiet state then serves a long history's first request without reading
        and normalising its rows. The caller holds a read of the state; returns the rows kept."""
        if self.rows is None or self.support is None:
            return 0
        owners = np.asarray(self.support.owner_counts)
        order = np.argsort(-owners, kind="stable")
        revision = self.cooc.revision
        self._last_revision = revision  # quiet from here: the next request reads the kept rows
        return self.rows.warm(order[owners[order] > 0], revision, self._read_rows, WARM_CHUNK, WARM_SECONDS)

    def saved_params(self) -> dict[str, Any]:
        cooc = self.cooc
        return {"window": cooc.window, "gap_tau": cooc.gap_tau, "max_neighbours": cooc.max_neighbours,
                "evict_halflife": cooc.evict_halflife, "min_support": self.min_support}

    def saved_values(self) -> dict[str, Any]:
        self.cooc.compact()
        return {"base": self.cooc.base, "degree": self.cooc.degree}

    @classmethod
    def from_saved(cls, params: dict[str, Any], values: dict[str, Any]) -> ItemKNN:
        model = cls(**params)
        model.cooc.base = sp.csr_matrix(values["base"], dtype=np.float64)
        model.cooc.degree = np.asarray(values["degree"], dtype=np.float64).copy()
        return model

    def fit(self, data: Interactions, catalog: Catalog | None = None) -> ItemKNN:
        # A trained item-kNN owns an in-memory CoOccurrence (the live views are never fitted).
        old = self.cooc
        cooc = CoOccurrence(old.window, old.gap_tau, max_neighbours=old.max_neighbours, evict_halflife=old.evict_halflife)
        order = np.argsort(data.timestamps, kind="stable")
        cooc.add_log(data.users[order], data.items[order], data.weights[order], data.timestamps[order])
        cooc.compact()  # rows read from the base alone, each bounded to max_neighbours like the live ones
        self.cooc = cooc
        return self

    def _contributions(self, query: Query) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(item, weighted similarity, position of the history item) for every neighbour entry:
        what both the scores and the explanation of a request are made of."""
        idx, sims, src = self._gathered(query.items)
        return idx, sims * np.asarray(query.weights, dtype=np.float64)[src], src

    def _gathered(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(item, similarity, position in `items`) of every supported neighbour entry of `items`:
        from the kept rows while the state was quiet since the previous request (under a stream
        of writes a kept row would not live to its next read), else read."""
        revision = self.cooc.revision
        if self.rows is not None and revision == self._last_revision:
            return self.rows.gather(items, revision, self._read_rows)
        return self._read_rows(items)

    def _read_rows(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx, sims, src = self.cooc.similar_rows(items.tolist())
        keep = self._supported(idx)
        return idx[keep], sims[keep], src[keep]

    def score_explained(self, query: Query, n_items: int) -> Scored:
        """Scores and explanation from one pass over the neighbour rows; with a long-term cache
        and a query carrying long-term taste, the recent rows' pass plus the user's kept part."""
        revision = self.cooc.revision
        try:
            if self.long_term_cache is not None and query.long_term > 0 and query.user is not None:
                return self._split_scores(query, n_items, revision)
            contributions = self._contributions(query)
        finally:
            self._last_revision = revision
        idx, vals, _ = contributions
        scores = np.bincount(idx, weights=vals, minlength=n_items)[:n_items] if len(idx) else None
        return Scored(scores, lambda items: _strongest_sources(query, contributions, items))

    def _split_scores(self, query: Query, n_items: int, revision: object) -> Scored:
        """score = sum over recent r of (w_r - lt) cos(r, .) + lt * A (the one pass's sum, to
        rounding): A from the user's kept part, else built from every row (and kept if the state
        was quiet since the previous request: under a stream of writes a part would not live to
        its next request). Kept or not, the scores are the same to the bit and the explanation
        the one pass's (`_split_sources`): a first request no longer ranks every entry."""
        lt, recent, owner = query.long_term, query.recent, query.user
        cache = self.long_term_cache
        assert cache is not None and owner is not None  # see score_explained
        weights = np.asarray(query.weights, dtype=np.float64)
        part = cache.get(owner, revision, query.items)
        if part is None:
            part = long_term_part(*self._gathered(query.items))
            if revision == self._last_revision:
                cache.put(owner, revision, query.items, part)
        idx, sims, src = self._gathered(query.items[:recent])
        recent_entries = (idx, sims * weights[src], src)  # at their full weight
        if len(idx) == 0 and len(part.items) == 0:
            return Scored(None, lambda items: [None] * len(items))
        scores = lt * part.dense(n_items)
        if len(idx):
            scores += np.bincount(idx, weights=sims * (weights[src] - lt), minlength=n_items)[:n_items]
        return Scored(scores, lambda items: _split_sources(query, recent_entries, part, items))

    def score(self, query: Query, n_items: int) -> np.ndarray | None:
        return self.score_explained(query, n_items).scores

    def explain(self, query: Query, items: np.ndarray) -> list[Reason | None]:
        """For each item, the history item that contributed most to its score."""
        return _strongest_sources(query, self._contributions(query), items)

    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        if not self.cooc.has_item(item):
            return None
        # Only the row's own entries are checked for support (a few hundred), not every item of
        # the catalogue: the same row as the dense one with unsupported items zeroed.
        idx, sims = self.cooc.similar_row(item)
        keep = self._supported(idx)
        return np.bincount(idx[keep], weights=sims[keep], minlength=n_items)[:n_items]


def _strongest_sources(query: Query, contributions: tuple[np.ndarray, np.ndarray, np.ndarray],
                       items: np.ndarray) -> list[Reason | None]:
    """For each of `items`, the history item whose neighbour entry added most to its score."""
    _, positions = _strongest(contributions, items)
    return _reasons(query, positions)


def _strongest(contributions: tuple[np.ndarray, np.ndarray, np.ndarray],
               items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of `items`, the strongest contribution to it and the query position of its
    history item (-inf and -1 for none); among equals the first in query order."""
    values, positions = np.full(len(items), -np.inf), np.full(len(items), -1, dtype=np.int64)
    idx, vals, src = contributions
    if len(idx) == 0 or len(items) == 0:
        return values, positions
    wanted = np.zeros(max(int(idx.max()), int(items.max())) + 1, dtype=bool)
    wanted[items] = True
    hit = wanted[idx]
    idx, vals, src = idx[hit], vals[hit], src[hit]
    order = np.lexsort((-vals, idx))  # by item, strongest contribution first
    idx, vals, src = idx[order], vals[order], src[order]
    firsts = np.flatnonzero(np.concatenate(([True], idx[1:] != idx[:-1]))) if len(idx) else np.empty(0, np.int64)
    found = np.searchsorted(idx[firsts], items)
    inside = found < len(firsts)
    known = np.zeros(len(items), dtype=bool)
    known[inside] = idx[firsts][found[inside]] == items[inside]
    values[known], positions[known] = vals[firsts][found[known]], src[firsts][found[known]]
    return values, positions


def _split_sources(query: Query, recent: tuple[np.ndarray, np.ndarray, np.ndarray], part: LongTermPart,
                   items: np.ndarray) -> list[Reason | None]:
    """`_strongest_sources` of a split score: the recent entries at full weight against lt x the
    kept strongest entry. Weights and similarities are >= 0, so a kept entry of a recent item
    never beats that item's own full-weight entry: the answer is the one pass's."""
    values, positions = _strongest(recent, items)
    found = np.searchsorted(part.items, items.astype(part.items.dtype))  # the probe in the array's dtype: no cast of it
    inside = found < len(part.items)
    known = np.zeros(len(items), dtype=bool)
    known[inside] = part.items[found[inside]] == items[inside]
    older = np.full(len(items), -np.inf)
    older[known] = query.long_term * part.best[found[known]]
    wins = older > values  # equal: the recent item, first in query order
    positions[wins] = part.source[found[wins]]
    return _reasons(query, positions)


def _reasons(query: Query, positions: np.ndarray) -> list[Reason | None]:
    return [None if pos < 0 else Reason("history", item=int(query.items[pos]), event_type=query.types[pos])
            for pos in positions.tolist()]
