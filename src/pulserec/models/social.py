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
from pulserec.online.base import HistoryLookup

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

    def score_explained(self, query: Query, n_items: int) -> Scored:
        items, values, who, kinds = [], [], [], []
        for tie, (owner, weight, name) in enumerate(query.ties):
            for touch in self.histories.recent(owner):
                if touch.type in self.types and 0 <= touch.item < n_items:
                    items.append(touch.item)
                    values.append(weight * touch.weight * math.exp(-self.rate * max(query.now - touch.ts, 0.0)))
                    who.append(tie)
                    kinds.append(touch.type)
        if not items:
            return Scored(None, lambda picks: [None] * len(picks))
        item_arr, value_arr = np.asarray(items, dtype=np.int64), np.asarray(values, dtype=np.float64)
        scores = np.bincount(item_arr, weights=value_arr, minlength=n_items)[:n_items]
        return Scored(scores, self._explainer(query, item_arr, value_arr, who, kinds))

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
