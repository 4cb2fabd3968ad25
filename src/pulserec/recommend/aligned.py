"""Serve a batch-trained model whose item/user numbering differs from the live catalogue's.

Models trained offline keep the `item_ids`/`user_ids` they were fitted with; this adapter maps
live indices to the model's and its scores back, so a model trained yesterday keeps serving
while new items and users arrive (they simply get no score from it)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pulserec.ids import IdIndex
from pulserec.models.base import Explainer, Query, Reason, Recommender, TrainedIds, TrainedUserIds, declares
from pulserec.online.base import ItemCatalog, OwnerIndex


class AlignedModel:
    def __init__(self, model: Recommender, catalog: ItemCatalog, owners: OwnerIndex, meta: dict[str, Any] | None = None) -> None:
        self.model = model
        self.name = model.name
        self.catalog = catalog
        self.owners = owners
        self.meta = dict(meta or {})
        if not isinstance(model, TrainedIds):
            raise TypeError(f"{type(model).__name__} has no trained item ids to align")
        self.model_items: IdIndex = model.item_ids
        self.model_users: IdIndex | None = model.user_ids if isinstance(model, TrainedUserIds) else None
        self._to_model = np.empty(0, dtype=np.int64)
        self._to_catalog = np.full(len(self.model_items), -1, dtype=np.int64)
        #: Users deleted since this model was trained: their trained row is never used (they are
        #: served like new users) until a retrain without them replaces the model.
        self.forgotten: set[str] = set()

    def aligned_to(self, catalog: ItemCatalog, owners: OwnerIndex) -> AlignedModel:
        """The same model, aligned to another live state (after a state rebuild)."""
        aligned = AlignedModel(self.model, catalog, owners, self.meta)
        aligned.forgotten = self.forgotten
        return aligned

    def holds(self, user_key: str) -> bool:
        """Whether the trained model has a row for this user."""
        return self.model_users is not None and user_key in self.model_users

    def _sync(self) -> None:
        n = len(self.catalog)
        known = len(self._to_model)
        if n == known:
            return
        ids = self.catalog.item_ids.ids[known:n]
        fresh = np.array([self.model_items.get(i) if i in self.model_items else -1 for i in ids], dtype=np.int64)
        self._to_model = np.concatenate([self._to_model, fresh])
        hit = fresh >= 0
        self._to_catalog[fresh[hit]] = np.arange(known, n)[hit]

    def _translate(self, query: Query) -> Query:
        self._sync()
        mapped = self._to_model[query.items] if len(query.items) else query.items
        keep = mapped >= 0
        user = None
        if query.user is not None and self.model_users is not None and query.user < len(self.owners):
            key = self.owners.id_of(query.user)
            user = None if key in self.forgotten else self.model_users.get(key)
        return Query(
            user=user,
            items=mapped[keep],
            weights=query.weights[keep],
            types=tuple(t for t, k in zip(query.types, keep) if k),
            timestamps=query.timestamps[keep],
            context=query.context,
            now=query.now,
            n_items=len(self.model_items),
        )

    def _to_live(self, scores: np.ndarray | None, n_items: int) -> np.ndarray | None:
        if scores is None:
            return None
        out = np.full(n_items, -np.inf, dtype=np.float64)
        valid = self._to_catalog >= 0
        out[self._to_catalog[valid]] = scores[: len(valid)][valid]
        return out

    def score(self, query: Query, n_items: int) -> np.ndarray | None:
        inner = self._translate(query)
        return self._to_live(self.model.score(inner, len(self.model_items)), n_items)

    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        self._sync()
        if item >= len(self._to_model) or self._to_model[item] < 0:
            return None
        return self._to_live(self.model.similar(int(self._to_model[item]), len(self.model_items)), n_items)

    def explain(self, query: Query, items: np.ndarray) -> list[Reason | None]:
        if not declares(self.model, Explainer):
            return [None] * len(items)
        inner = self._translate(query)
        reasons = self.model.explain(inner, self._to_model[items])
        out: list[Reason | None] = []
        for reason in reasons:
            if reason is not None and reason.item is not None:
                live = int(self._to_catalog[reason.item])
                reason = Reason(reason.kind, item=live if live >= 0 else None, event_type=reason.event_type, detail=reason.detail)
            out.append(reason)
        return out
