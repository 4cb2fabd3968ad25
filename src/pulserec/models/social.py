"""Social strategy (issue 14.4): what the people you follow recently liked, shared, bought or rated.

Each followed user's recent touches (their history in the online state, either backend) of the
`types` count tie weight x the event's weight (type x dwell, as everywhere) x
2^(-age / halflife): a strong tie's purchase yesterday counts more than a weak tie's like last
month. The query carries the ties (`Query.ties`, read from store/social.py by the service), so
a user who follows people and has done nothing yet gets their ties' items (social cold start).

Explanations say what was done, "liked by someone you follow", naming the person only when
`reveal` is on (setting `social_reveal_names`): who follows whom is personal data."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np

from pulserec.models.base import OnlineScorer, Query, Reason, Scored
from pulserec.online.base import HistoryLookup, RecentColumns

#: Past tense of the types a tie's action is explained with.
DONE = {"like": "liked", "share": "shared", "purchase": "bought", "rating": "rated", "add_to_cart": "added to cart",
        "click": "clicked", "view": "viewed"}


class Social(OnlineScorer):
    """Scores items by the recent actions of the query's ties (see the module docstring)."""

    name: ClassVar[str] = "social"

    def __init__(self, histories: HistoryLookup, types: Sequence[str] = ("like", "share", "purchase", "rating"),
                 halflife: float = 14 * 86_400.0, reveal: bool = False) -> None:
        self.histories = histories
        self.types = frozenset(types)
        self.rate = math.log(2.0) / halflife
        self.reveal = reveal
        # Decided once (a protocol check is ~26 us): the in-memory histories read as columns.
        self._columnar: RecentColumns | None = histories if isinstance(histories, RecentColumns) else None

    def _columns(self, owner: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One tie's recent touches as (items, weights, times, types)."""
        if self._columnar is not None:
            return self._columnar.recent_columns(owner)
        touches = list(self.histories.recent(owner))
        if not touches:
            return np.empty(0, dtype=np.int64), np.empty(0), np.empty(0), np.empty(0, dtype=object)
        item, weight, ts, kind = zip(*touches)
        return (np.asarray(item, dtype=np.int64), np.asarray(weight, dtype=np.float64),
                np.asarray(ts, dtype=np.float64), np.asarray(kind, dtype=object))

    def score_explained(self, query: Query, n_items: int) -> Scored:
        # Vectorised over all ties' touches at once, read as columns where the histories can: a
        # per-touch Python loop was ~1.1 ms of a MovieLens request with 10 ties, the ties'
        # Touch tuples ~0.85 ms more (benchmarks/behaviours.py).
        ties = [self._columns(owner) for owner, _, _ in query.ties]
        counts = [len(columns[0]) for columns in ties]
        if not sum(counts):
            return Scored(None, lambda picks: [None] * len(picks))
        item, weight, ts, kind = (np.concatenate([columns[k] for columns in ties]) for k in range(4))
        tie = np.repeat(np.arange(len(ties)), counts)
        tie_weight = np.repeat(np.array([w for _, w, _ in query.ties], dtype=np.float64), counts)
        types = self.types
        keep = np.fromiter((k in types for k in kind.tolist()), dtype=bool, count=len(kind)) & (item >= 0) & (item < n_items)
        if not keep.any():
            return Scored(None, lambda picks: [None] * len(picks))
        item_arr = item[keep]
        value_arr = tie_weight[keep] * weight[keep] * np.exp(-self.rate * np.maximum(query.now - ts[keep], 0.0))
        scores = np.bincount(item_arr, weights=value_arr, minlength=n_items)[:n_items]
        return Scored(scores, self._explainer(query, item_arr, value_arr, tie[keep].tolist(), kind[keep].tolist()))

    def _explainer(self, query: Query, items: np.ndarray, values: np.ndarray, who: list[int],
                   kinds: list[str]) -> Callable[[np.ndarray], list[Reason | None]]:
        def explain(picks: np.ndarray) -> list[Reason | None]:
            out: list[Reason | None] = []
            for item in np.asarray(picks).tolist():
                rows = np.flatnonzero(items == item)
                if not len(rows):
                    out.append(None)
                    continue
                best = int(rows[np.argmax(values[rows])])  # the strongest tie's action explains it
                person = query.ties[who[best]][2] if self.reveal else "someone you follow"
                out.append(Reason("social", event_type=kinds[best], detail=f"{DONE.get(kinds[best], 'chosen')} by {person}"))
            return out
        return explain
