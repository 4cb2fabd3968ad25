"""Peer libraries behind pulserec's Recommender protocol, so every model goes through the SAME
split, queries, seen-item exclusion, top-K and metrics (pulserec.evaluation).

Each adapter trains on the split's training log (the same summed event weights our models see)
and scores known users densely with the library's own factors. None of them can fold in an
unknown user here, which never happens in evaluation (test users all have training history).
Imports are lazy: a missing library makes `available()` False and the benchmark notes it.
LightFM was dropped: its source build fails with current setuptools (no wheels for
Python >= 3.11), so `.[peers]` could not install on a fresh machine; EASE and RP3beta
(closed_form.py) and RecBole's SASRec/GRU4Rec (recbole_peers.py) are the stronger peers."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from peer_base import BatchPeer

from pulserec.models.base import Query
from pulserec.models.interactions import Interactions


def available(peer) -> bool:
    """Can this peer run here? (its library importable, or its own check)."""
    check = getattr(peer, "available", None)
    if check is not None:
        return bool(check())
    return importlib.util.find_spec(peer.module) is not None


class FactorPeer(BatchPeer):
    """Scores = user_factors @ item_factors.T (+ item bias) for known users."""

    name: ClassVar[str] = "peer"
    module: ClassVar[str] = ""

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.users = np.zeros((0, 0), dtype=np.float32)
        self.items = np.zeros((0, 0), dtype=np.float32)
        self.bias: np.ndarray | float = 0.0

    def score_many(self, queries: Sequence[Query], n_items: int) -> np.ndarray:
        out = np.full((len(queries), n_items), -np.inf, dtype=np.float32)
        rows = np.array([q.user if q.user is not None else -1 for q in queries])
        ok = (rows >= 0) & (rows < len(self.users))
        n = min(n_items, len(self.items))
        bias = np.broadcast_to(np.asarray(self.bias, dtype=np.float32), (len(self.items),))[:n]
        out[np.flatnonzero(ok), :n] = self.users[rows[ok]] @ self.items[:n].T + bias
        return out


class ImplicitALS(FactorPeer):
    name = "implicit_als"
    module = "implicit"

    def fit(self, data: Interactions, catalog=None) -> ImplicitALS:
        from implicit.cpu.als import AlternatingLeastSquares

        model = AlternatingLeastSquares(random_state=0, num_threads=1, **self.params)
        model.fit(data.to_csr(), show_progress=False)
        self.users, self.items = np.asarray(model.user_factors), np.asarray(model.item_factors)
        return self


class ImplicitBPR(FactorPeer):
    name = "implicit_bpr"
    module = "implicit"

    def fit(self, data: Interactions, catalog=None) -> ImplicitBPR:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        model = BayesianPersonalizedRanking(random_state=0, num_threads=1, **self.params)
        model.fit(data.to_csr(), show_progress=False)
        self.users, self.items = np.asarray(model.user_factors), np.asarray(model.item_factors)
        return self


class SurpriseSVD(FactorPeer):
    """Explicit-rating SVD (Funk): gives RMSE/MAE; also ranked by predicted rating for top-N."""

    name = "surprise_svd"
    module = "surprise"

    def fit(self, data: Interactions, catalog=None) -> SurpriseSVD:
        import pandas as pd
        from surprise import SVD, Dataset, Reader

        rated = ~np.isnan(data.values)
        frame = pd.DataFrame({"u": data.users[rated], "i": data.items[rated], "r": data.values[rated]})
        trainset = Dataset.load_from_df(frame, Reader(rating_scale=(0.5, 5.0))).build_full_trainset()
        model = SVD(random_state=0, **self.params)
        model.fit(trainset)
        n_users, n_items, k = data.n_users, data.n_items, model.pu.shape[1]
        self.users = np.zeros((n_users, k + 1), dtype=np.float32)
        self.items = np.zeros((n_items, k + 1), dtype=np.float32)
        inner_users = [trainset.to_inner_uid(u) for u in range(n_users) if trainset.knows_user(u)]
        known_u = np.array([u for u in range(n_users) if trainset.knows_user(u)])
        known_i = np.array([i for i in range(n_items) if trainset.knows_item(i)])
        inner_items = [trainset.to_inner_iid(i) for i in known_i]
        self.users[known_u, :k], self.users[known_u, k] = model.pu[inner_users], 1.0
        self.items[known_i, :k], self.items[known_i, k] = model.qi[inner_items], model.bi[inner_items]
        self.user_bias = np.zeros(n_users)
        self.user_bias[known_u] = model.bu[inner_users]
        self.mean = trainset.global_mean
        return self

    def predict_ratings(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted stars, clipped to the scale (unknown users/items fall back to biases/mean)."""
        users = np.asarray(users)
        items = np.asarray(items)
        known_i = items < len(self.items)
        item_part = np.where(known_i[:, None], self.items[np.where(known_i, items, 0)], 0.0)
        pred = self.mean + self.user_bias[users] + np.einsum("nk,nk->n", self.users[users], item_part)
        return np.clip(pred, 0.5, 5.0)


from closed_form import EASE, RP3beta  # noqa: E402  (reference item-item peers, numpy only)
from recbole_peers import RecBoleGRU4Rec, RecBoleSASRec  # noqa: E402

PEERS: dict[str, type] = {
    cls.name: cls for cls in (EASE, RP3beta, ImplicitALS, ImplicitBPR, SurpriseSVD, RecBoleSASRec, RecBoleGRU4Rec)
}
