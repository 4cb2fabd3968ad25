"""Search intent (issue 14.3): what the owner's latest search asks for, as scores over items.

Two parts, each normalised to [0, 1] and mixed by `lexical_share`:

* **lexical**: BM25 of every item's text against the query (models/lexical.py);
* **learned**: what people clicked, viewed or bought right after similar searches in the same
  session (query -> item co-occurrence, read from the log by store/search_log.py), so that
  "sneakers" finds the shoes people chose after searching "sneakers" even where no title says it.

The query's `search` is (text, strength): strength fades with every event the owner makes
after the search (see `search_strength`), so the intent shapes the next answers and lets go as
the session moves on. Served alone as `?strategy=search`, and blended into every strategy's
answer by the service while a search is active."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

import numpy as np

from pulserec.models.base import OnlineScorer, Query, Reason, Scored
from pulserec.models.blend import normalised
from pulserec.models.lexical import LexicalIndex
from pulserec.online.base import ItemCatalog


class LearnedSearches(Protocol):
    """Where clicks after past searches come from (store/search_log.py:SearchLog)."""

    def clicks_after(self, text: str, types: Sequence[str], gap: float) -> dict[str, float]:
        """Item id -> score in [0, 1) (how surely people chose it after searches like `text`)."""

    def catalog_version(self) -> int: ...


def search_strength(weight: float, halflife_events: float, events_since: int, age: float, session_gap: float) -> float:
    """How much a search still shapes recommendations: `weight` halved every `halflife_events`
    events after it, and 0 once it is older than a session (`session_gap` seconds)."""
    if age > session_gap or age < -session_gap:
        return 0.0
    return weight * 0.5 ** (events_since / halflife_events)


class SearchIntent(OnlineScorer):
    """Items for the query's active search: lexical match and learned clicks, times strength."""

    name: ClassVar[str] = "search"

    def __init__(self, catalog: ItemCatalog, learned: LearnedSearches | None = None, *, lexical_share: float = 0.5,
                 click_types: Sequence[str] = ("click", "view", "add_to_cart", "purchase"),
                 session_gap: float = 1800.0) -> None:
        self.catalog = catalog
        self.learned = learned
        self.lexical_share = lexical_share
        self.click_types = tuple(click_types)
        self.session_gap = session_gap
        self.index = LexicalIndex()

    def lexical(self, text: str, n_items: int) -> np.ndarray:
        version = self.learned.catalog_version() if self.learned is not None else 0
        self.index.refresh(self.catalog.records(), (version, len(self.catalog)))
        return self.index.scores(text, n_items)

    def clicked(self, text: str, n_items: int) -> np.ndarray:
        out = np.zeros(n_items, dtype=np.float64)
        if self.learned is None:
            return out
        ids = self.catalog.item_ids
        for item_id, weight in self.learned.clicks_after(text, self.click_types, self.session_gap).items():
            idx = ids.get(item_id)
            if idx is not None and idx < n_items:
                out[idx] += weight
        return out

    def parts(self, text: str, n_items: int) -> tuple[np.ndarray, np.ndarray]:
        """(lexical, learned) scores, each normalised to [0, 1] and weighted by its share; a part
        with nothing to say (no word matches, no one searched alike) leaves its share to the other."""
        lexical, learned = normalised(self.lexical(text, n_items)), self.clicked(text, n_items)  # learned: in [0, 1) already
        share = self.lexical_share if lexical.any() and learned.any() else 1.0 if lexical.any() else 0.0
        return share * lexical, (1.0 - share) * learned

    def score_explained(self, query: Query, n_items: int) -> Scored:
        if query.search is None or query.search[1] <= 0:
            return Scored(None, lambda items: [None] * len(items))
        text, strength = query.search
        lexical, learned = self.parts(text, n_items)
        scores = strength * (lexical + learned)
        if not scores.any():
            return Scored(None, lambda items: [None] * len(items))
        return Scored(scores, self._explainer(text, lexical, learned))

    @staticmethod
    def _explainer(text: str, lexical: np.ndarray, learned: np.ndarray) -> Callable[[np.ndarray], list[Reason | None]]:
        def explain(items: np.ndarray) -> list[Reason | None]:
            return [Reason("search", detail=f'matches your search "{text}"' if lexical[i] >= learned[i]
                           else f'chosen by others who searched "{text}"') for i in np.asarray(items).tolist()]
        return explain


def with_intent(base: Scored | None, intent: Scored, strength: float) -> Scored:
    """A strategy's answer shaped by an active search: (1 - strength) x its normalised scores
    plus the intent's (which carry the strength already); each item is explained by the part
    that gave it more."""
    if intent.scores is None:
        return base if base is not None else intent
    if base is None or base.scores is None:
        return intent
    kept = (1.0 - strength) * normalised(np.asarray(base.scores, dtype=np.float64))
    intent_scores = intent.scores

    def explain(items: np.ndarray) -> list[Reason | None]:
        items = np.asarray(items)
        searched = intent_scores[items] > kept[items]
        mine, theirs = intent.explain(items[searched]), base.explain(items[~searched])
        picks, a, b = [], iter(mine), iter(theirs)
        for flag in searched.tolist():
            picks.append(next(a) if flag else next(b))
        return picks

    return Scored(kept + intent_scores, explain)
