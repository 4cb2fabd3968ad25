"""The protocol every recommendation model implements.

A model scores the whole catalogue densely for a :class:`Query` (the user's recent behaviour
at request time); the serving layer applies filters, blends and cuts the top-n. Dense scores
keep models composable (blending is vector arithmetic) and vectorised.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
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


@runtime_checkable
class OnlineRecommender(Recommender, Protocol):
    """A model whose state follows each event without a retrain."""

    def update(self, user: int, item: int, weight: float, ts: float) -> None: ...


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


class PickleMixin:
    """save/load for models whose state is plain arrays and dicts."""

    def save(self, path: str | Path) -> None:
        write_atomically(path, lambda fh: pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL))

    @classmethod
    def load(cls, path: str | Path) -> Any:
        with open(path, "rb") as fh:
            model = pickle.load(fh)
        if not isinstance(model, cls):
            raise TypeError(f"{path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model
