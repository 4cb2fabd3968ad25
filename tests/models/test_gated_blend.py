"""The default's three validation targets and its weights per history length (issue 18.6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from pulserec.config import DEFAULT_EVENT_WEIGHTS
from pulserec.evaluation.split import TARGETS, targets_split
from pulserec.models.base import Query
from pulserec.models.blend import Blend, GatedBlend
from pulserec.evaluation.metrics import hit_matrix
from pulserec.models.blend_search import TargetSearch, candidate_pools, history_bucket, target_weights
from pulserec.models.interactions import Interactions


def staggered_log(n_users: int = 60, per_user: int = 12) -> Interactions:
    """Users arriving one after another, each with `per_user` events a second apart."""
    rng = np.random.default_rng(1)
    rows = [(f"u{u}", f"i{int(rng.integers(0, 40))}-{u % 3}", 100.0 * u + k) for u in range(n_users) for k in range(per_user)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"]).assign(type="view")
    return Interactions.from_frame(frame, DEFAULT_EVENT_WEIGHTS)


def test_targets_split_holds_out_the_next_item_the_taste_and_the_latest_period_of_one_log() -> None:
    data = staggered_log()
    parts = targets_split(data, period=0.2, taste_fraction=0.25, max_warm_start=4)
    assert tuple(parts) == TARGETS
    train = parts["next"].train
    assert all(len(part.train) == len(train) for part in parts.values())
    cut = np.quantile(data.timestamps, 0.8, method="higher")
    train_ids = train.user_ids.ids_of(np.arange(train.n_users))
    late_users = {u for u, ts in zip(data.user_ids.ids_of(data.users), data.timestamps) if ts >= cut}
    warm = pd.Series(train.timestamps >= cut).groupby(train.users).sum()
    # a user who first appears after the cut keeps 1..max_warm_start of their first events
    new = [u for u in late_users if data.timestamps[data.users == data.user_ids.get(u)].min() >= cut]
    assert new and all(1 <= warm[list(train_ids).index(u)] <= 4 for u in new)
    time, nxt, taste = parts["time"].test, parts["next"].test, parts["taste"].test
    assert (time.timestamps >= cut).all() and (nxt.timestamps < cut).all() and (taste.timestamps < cut).all()
    assert len(np.unique(nxt.users)) == len(nxt)  # one next item per user
    for user in np.unique(nxt.users):  # the newest event before the cut, after all of the user's training ones
        before = train.timestamps[(train.users == user) & (train.timestamps < cut)]
        assert nxt.timestamps[nxt.users == user].item() >= before.max()
    held = sum(part.stats["test_rows"] for part in parts.values())  # before repeats of training items are dropped
    assert 0 < len(taste) and held + len(train) == len(data)
    with pytest.raises(ValueError, match="period"):
        targets_split(data, period=1.0)


def planted_parts(n_users: int = 40, n_items: int = 30) -> tuple[np.ndarray, sp.csr_matrix, dict, np.ndarray]:
    """Two sources, each right for one bucket of users and misleading for the other: for a user
    of bucket b, source b ranks the wanted item first, the other source a wrong item (which
    source b ranks second), so no single source and no equal blend serves both buckets."""
    rng = np.random.default_rng(0)
    users = np.arange(n_users)
    buckets = users % 2
    parts = rng.random((2, n_users, n_items)).astype(np.float32) * 0.5
    wanted = rng.integers(0, n_items // 2, n_users)
    wrong = wanted + n_items // 2
    parts[buckets, users, wanted] = 1.0
    parts[buckets, users, wrong] = 0.9
    parts[1 - buckets, users, wanted] = 0.0
    parts[1 - buckets, users, wrong] = 1.0
    relevant = sp.csr_matrix((np.ones(n_users), (users, wanted)), shape=(n_users, n_items))
    return parts, sp.csr_matrix((n_users, n_items)), {"all": relevant}, buckets


def test_weights_per_history_bucket_serve_each_kind_of_user_with_its_source() -> None:
    parts, seen, relevant, buckets = planted_parts()
    shared_w, shared, _ = TargetSearch(parts, seen, relevant, np.zeros_like(buckets)).search((0.0, 1.0), 2)
    weights, best, singles = TargetSearch(parts, seen, relevant, buckets).search((0.0, 1.0), 2)
    assert weights.shape == (2, 2) and weights[0, 0] > weights[0, 1] and weights[1, 1] > weights[1, 0], weights
    assert best == pytest.approx(1.0) and best > shared + 0.2 and shared >= max(singles)


def test_several_targets_are_weighed_relative_to_their_best_single_source() -> None:
    parts, seen, relevant, buckets = planted_parts()
    by_bucket = {f"b{b}": sp.diags((buckets == b).astype(np.float32)) @ relevant["all"] for b in (0, 1)}
    for matrix in by_bucket.values():
        matrix.eliminate_zeros()
    search = TargetSearch(parts, seen, by_bucket, np.zeros_like(buckets))
    scores = search.target_scores(np.array([1.0, 0.0]))
    assert scores["b0"] == pytest.approx(1.0) and scores["b1"] < 0.6
    assert search.best == {"b0": pytest.approx(1.0), "b1": pytest.approx(1.0)}
    with pytest.raises(ValueError, match="metric"):
        TargetSearch(parts, seen, relevant, buckets, metric="auc")


class Constant:
    """Scores item `item` highest for everyone."""

    name = "constant"

    def __init__(self, item: int) -> None:
        self.item = item

    def fit(self, data, catalog=None):
        return self

    def score(self, query: Query, n_items: int) -> np.ndarray:
        scores = np.zeros(n_items, dtype=np.float32)
        scores[self.item] = 1.0
        return scores

    def similar(self, item, n_items):
        return None


def test_a_gated_blend_asks_the_blend_of_the_users_history_length() -> None:
    short, long = Constant(0), Constant(1)
    gated = GatedBlend((3,), [Blend([(short, 1.0), (long, 0.1)]), Blend([(long, 1.0)])], name="default")
    few = Query(user=0, items=np.array([5]), history=np.array([5, 6, 7]), n_items=10)
    many = Query(user=1, items=np.array([5]), history=np.arange(2, 10), n_items=10)
    assert int(np.argmax(gated.score(few, 10))) == 0 and int(np.argmax(gated.score(many, 10))) == 1
    assert history_bucket(3, (3,)) == 0 and history_bucket(4, (3,)) == 1 and history_bucket(0, (3,)) == 0
    assert [(p, w) for p, w in gated.components] == [(short, 1.0), (long, 1.0)]  # each part once, its largest weight
    swapped = {id(short): Constant(2), id(long): Constant(3)}
    again = gated.rebound(lambda part: swapped[id(part)], None)
    assert isinstance(again, GatedBlend) and again.edges == (3,)
    assert int(np.argmax(again.score(few, 10))) == 2 and int(np.argmax(again.score(many, 10))) == 3
    with pytest.raises(ValueError, match="edges need"):
        GatedBlend((3, 9), [Blend([(short, 1.0)])])


def test_targets_count_by_how_precisely_the_validation_measures_them() -> None:
    rng = np.random.default_rng(0)
    noisy = (rng.random(400) < 0.05).astype(np.float64)  # one next item a user: mean 0.05, ~22% error
    steady = rng.normal(0.3, 0.1, 400).clip(0, 1)  # many taste items a user: ~1.7% error
    weights = target_weights({"next": noisy, "taste": np.r_[steady, [np.nan] * 10]}, 1.0)
    assert sum(weights.values()) == pytest.approx(1.0) and weights["taste"] > 5 * weights["next"]
    error = {"next": noisy.std() / 20 / noisy.mean(), "taste": steady.std() / 20 / steady.mean()}
    assert weights["taste"] / weights["next"] == pytest.approx(error["next"] / error["taste"])
    squared = target_weights({"next": noisy, "taste": steady}, 2.0)
    assert squared["taste"] / squared["next"] == pytest.approx((error["next"] / error["taste"]) ** 2)
    assert target_weights({"next": noisy, "taste": steady}, 0.0) == {"next": 0.5, "taste": 0.5}
    # an error that cannot be estimated (one user, nothing scored): every target alike
    assert target_weights({"next": np.array([1.0]), "taste": steady}) == {"next": 0.5, "taste": 0.5}
    assert target_weights({"next": np.zeros(5), "taste": steady}) == {"next": 0.5, "taste": 0.5}


def test_the_objective_is_the_precision_weighted_mean_of_the_targets_ratios() -> None:
    parts, seen, relevant, buckets = planted_parts()
    by_bucket = {f"b{b}": sp.diags((buckets == b).astype(np.float32)) @ relevant["all"] for b in (0, 1)}
    weights = np.array([1.0, 0.0])
    for power in (0.0, 1.0):
        search = TargetSearch(parts, seen, by_bucket, np.zeros_like(buckets), precision=power)
        means = search.target_scores(weights)
        assert sum(search.target_weights.values()) == pytest.approx(1.0)
        expected = sum(search.target_weights[t] * means[t] / search.best[t] for t in ("b0", "b1"))
        assert search._objective(means) == pytest.approx(expected)
    with pytest.raises(ValueError, match="precision"):
        TargetSearch(parts, seen, by_bucket, buckets, precision=-1.0)


def test_a_search_over_kept_pools_equals_the_search_over_scores() -> None:
    parts, seen, relevant, buckets = planted_parts()
    direct = TargetSearch(parts, seen, relevant, buckets).search((0.0, 1.0), 2)
    order = np.argsort(buckets, kind="stable")
    items, pooled, invalid = candidate_pools(parts[:, order], seen[order])
    kept = TargetSearch.pooled(pooled, invalid, {"all": hit_matrix(items, relevant["all"][order]) & ~invalid},
                               {"all": relevant["all"][order].getnnz(axis=1)}, buckets[order])
    again = kept.search((0.0, 1.0), 2)
    assert np.array_equal(direct[0], again[0]) and direct[1:] == again[1:]
    with pytest.raises(ValueError, match="ordered by bucket"):
        TargetSearch.pooled(pooled, invalid, {"all": invalid}, {"all": np.ones(len(buckets))}, buckets)
