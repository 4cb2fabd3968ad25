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
from pulserec.models.persist import SavedState
from pulserec.online.catalog import Catalog
from pulserec.online.cooccurrence import CoOccurrence


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
                 evict_halflife: float = 0.0) -> None:
        self.cooc = cooc if cooc is not None else CoOccurrence(window, gap_tau, max_neighbours=max_neighbours,
                                                               evict_halflife=evict_halflife)
        self.support = support
        self.min_support = min_support

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
        self.cooc = cooc
        return self

    def _contributions(self, query: Query) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(item, weighted similarity, position of the history item) for every neighbour entry:
        what both the scores and the explanation of a request are made of."""
        idx, sims, src = self.cooc.similar_rows(query.items.tolist())
        keep = self._supported(idx)
        idx, sims, src = idx[keep], sims[keep], src[keep]
        return idx, sims * np.asarray(query.weights, dtype=np.float64)[src], src

    def score_explained(self, query: Query, n_items: int) -> Scored:
        """Scores and explanation from one pass over the neighbour rows."""
        contributions = self._contributions(query)
        idx, vals, _ = contributions
        scores = np.bincount(idx, weights=vals, minlength=n_items)[:n_items] if len(idx) else None
        return Scored(scores, lambda items: _strongest_sources(query, contributions, items))

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
    idx, vals, src = contributions
    if len(idx) == 0 or len(items) == 0:
        return [None] * len(items)
    wanted = np.zeros(max(int(idx.max()), int(items.max())) + 1, dtype=bool)
    wanted[items] = True
    hit = wanted[idx]
    idx, vals, src = idx[hit], vals[hit], src[hit]
    order = np.lexsort((-vals, idx))  # by item, strongest contribution first
    idx, src = idx[order], src[order]
    firsts = np.flatnonzero(np.concatenate(([True], idx[1:] != idx[:-1]))) if len(idx) else np.empty(0, np.int64)
    best = dict(zip(idx[firsts].tolist(), src[firsts].tolist()))
    reasons: list[Reason | None] = []
    for item in items.tolist():
        pos = best.get(item)
        reasons.append(None if pos is None else Reason("history", item=int(query.items[pos]), event_type=query.types[pos]))
    return reasons
