"""The protocol every recommendation model implements.

A model scores the whole catalogue densely for a :class:`Query` (the user's recent behaviour
at request time); the serving layer applies filters, blends and cuts the top-n. Dense scores
keep models composable (blending is vector arithmetic) and vectorised.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from pulserec.ids import IdIndex
    from pulserec.models.interactions import Interactions
    from pulserec.online.catalog import Catalog


@dataclass
class Query:
    """What a model sees of the user at request time.

    `items` are the user's recent item indices, most recent first; `weights` their importance
    (event-type weight x recency); `types`/`timestamps` align with `items`."""

    user: int | None = None
    items: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    weights: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float32))
    types: tuple[str, ...] = ()
    timestamps: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float64))
    context: dict[str, Any] = field(default_factory=dict)
    now: float = 0.0
    n_items: int = 0
    #: Every item of the user's whole history (ascending), their long-term taste; `items` may
    #: hold only the recent ones (see models/query.py).
    history: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    #: The weight `with_long_term` added to every item of `items` (0: none), and how many of
    #: `items` are the recent ones (the rest are older history items): a model can score the
    #: long-term part apart (item-kNN caches it per user, models/long_term_cache.py).
    long_term: float = 0.0
    recent: int = 0
    #: The owner's active search (issue 14.3): (query text, strength in (0, 1]); None without one.
    search: tuple[str, float] | None = None
    #: The owner's social ties (issue 14.4): (followed owner's index, tie weight, their id).
    ties: tuple[tuple[int, float, str], ...] = ()
    #: The user's declared attributes (issue 14.5; read for users without a history, and for a model
    #: that ReadsAttributes): age band, country...
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def is_cold(self) -> bool:
        return len(self.items) == 0


@dataclass(frozen=True)
class Reason:
    """Why an item was recommended, rendered to text by the serving layer.

    kind: "history" (because of `item`, which the user touched with `event_type`),
    "trending" / "popular" (optionally within `detail` = category), or a model-specific kind
    with free-text `detail`."""

    kind: str
    item: int | None = None
    event_type: str | None = None
    detail: str | None = None


@runtime_checkable
class Recommender(Protocol):
    """A recommendation model. `name` is how requests select it (`?strategy=name`)."""

    name: ClassVar[str]

    def fit(self, data: Interactions, catalog: Catalog | None = None) -> Recommender:
        """Train on an interaction log (batch). Returns self."""
        ...

    def score(self, query: Query, n_items: int) -> np.ndarray | None:
        """Dense scores over item indices 0..n_items-1 (higher is better), or None if this
        model cannot score the query (e.g. no history and no user vector)."""
        ...

    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        """Dense similarity of every item to `item`, or None if the item is unknown to the model."""
        ...


@runtime_checkable
class Explainer(Protocol):
    """Optional: models that can say why they recommended each item."""

    def explain(self, query: Query, items: np.ndarray) -> list[Reason | None]: ...


@dataclass(frozen=True)
class Scored:
    """One request's scores and how to explain them, held by the caller for that request.

    A model keeps nothing of a request (no cache keyed on the query object), so an explanation
    never depends on which query was scored last; models whose explanation reuses work done for
    the scores (item-kNN's contributions, a blend's parts, the ranker's features) hand that work
    over here, in `explain`'s closure."""

    scores: np.ndarray | None
    explain: Callable[[np.ndarray], list[Reason | None]]


@runtime_checkable
class ScoresExplained(Protocol):
    """Optional: models that score and explain one request in one pass (see :class:`Scored`)."""

    def score_explained(self, query: Query, n_items: int) -> Scored: ...


class OnlineScorer:
    """Base of the online views that score and explain in one pass (search intent, social ties,
    segments): nothing to fit, no item-to-item similarity, `score` is `score_explained`'s."""

    def fit(self, data: Any, catalog: Any = None) -> Any:
        return self

    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        return None

    def score(self, query: Query, n_items: int) -> np.ndarray | None:
        return self.score_explained(query, n_items).scores  # type: ignore[attr-defined]


def declares(model: object, ability: type) -> bool:
    """Whether `model`'s class implements `ability`, a protocol of methods only (`Explainer`,
    `ScoresExplained`, `ScoresMany`): `isinstance`'s answer, asked of the class. The ABC machinery
    caches `issubclass` per class (0.3 us), while `isinstance` against a protocol walks its members
    on every call on Python 3.11 (10 us, 60 us when the answer is no) and a default-blend request
    asks seven times. Abilities are methods of a model's class, never attributes of an instance."""
    return issubclass(type(model), ability)


def _unexplained(items: np.ndarray) -> list[Reason | None]:
    return [None] * len(items)


def scored(model: Recommender, query: Query, n_items: int) -> Scored:
    """`model`'s scores for `query`, with their explanation (none for a model that gives none)."""
    if declares(model, ScoresExplained):
        return model.score_explained(query, n_items)  # type: ignore[attr-defined]
    scores = model.score(query, n_items)
    if declares(model, Explainer):
        return Scored(scores, lambda items: model.explain(query, items))
    return Scored(scores, _unexplained)


def explanation(model: object, query: Query, items: np.ndarray) -> list[Reason | None]:
    """`model.explain(query, items)` for an :class:`Explainer`, else no reasons."""
    return model.explain(query, items) if declares(model, Explainer) else _unexplained(items)  # type: ignore[attr-defined]


@runtime_checkable
class ScoresMany(Protocol):
    """Optional: models that score a batch of queries at once (one matrix product instead of one
    per query); evaluation uses it. Rows: queries; -inf where a query cannot be scored."""

    def score_many(self, queries: Sequence[Query], n_items: int) -> np.ndarray: ...


@runtime_checkable
class TrainedIds(Protocol):
    """Batch-trained models: the item ids they were fitted with (index i is `item_ids.id_of(i)`),
    so that serving can map live indices to theirs (`recommend/aligned.py`)."""

    name: ClassVar[str]
    item_ids: IdIndex


@runtime_checkable
class TrainedUserIds(Protocol):
    """Optional, with :class:`TrainedIds`: models with a vector per trained user."""

    user_ids: IdIndex


@runtime_checkable
class Described(Protocol):
    """Optional: what `GET /models` shows of a served model (version, training time, ...)."""

    @property
    def meta(self) -> Mapping[str, Any]: ...


@runtime_checkable
class FeatureImportances(Protocol):
    """Optional: learned models that weigh named features (the ranker)."""

    @property
    def feature_importance(self) -> Mapping[str, float]: ...


@runtime_checkable
class ReadsAttributes(Protocol):
    """Optional: a model that reads the user's declared attributes (`Query.attrs`) for users with
    a history too (the ranker's attribute features); others are given them only when cold."""

    @property
    def reads_attributes(self) -> bool: ...


def meta_of(model: object) -> Mapping[str, Any]:
    """A served model's metadata (empty for a model that has none)."""
    return (model.meta or {}) if isinstance(model, Described) else {}


class BatchScorer:
    """`score` of one query through the model's `score_many` (for models that score in batches)."""

    def score_many(self, queries: Any, n_items: int) -> np.ndarray:
        raise NotImplementedError

    def score(self, query: Query, n_items: int) -> np.ndarray | None:
        scores = self.score_many([query], n_items)[0]
        return None if np.isneginf(scores).all() else scores


def pad_scores(scores: np.ndarray, n_items: int) -> np.ndarray:
    """Models trained earlier know fewer items than the catalogue has now: pad with -inf."""
    if len(scores) >= n_items:
        return scores[:n_items]
    out = np.full(n_items, -np.inf, dtype=np.float32)
    out[: len(scores)] = scores
    return out


def write_atomically(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Write a file through a temporary file of this writer's own, then rename it into place:
    readers never see half a file, and concurrent saves of one model (two trainings) do not
    trip over each other."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the model from serving processes of other users
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
