"""What every peer adapter shares: it scores batches of known users (`score_many`), one query
is a batch of one, and none of them answers similar-item requests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pulserec.models.base import Query


class BatchPeer:
    def score_many(self, queries: Sequence[Query], n_items: int) -> np.ndarray:
        raise NotImplementedError

    def score(self, query: Query, n_items: int) -> np.ndarray | None:
        row = self.score_many([query], n_items)[0]
        return None if np.isneginf(row).all() else row

    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        return None
