"""The served default's latency budget: the choice is a pure function of the priced costs and the
validation scores (models/latency_budget.py, models/blend_search.py; issue 18.4 / issue 2)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from test_gated_blend import staggered_log

from pulserec.evaluation.evaluate import Histories
from pulserec.models.auto import AutoBlend, LongTerm
from pulserec.models.base import Query
from pulserec.models.blend_search import TargetSearch
from pulserec.models.latency_budget import Budget, as_served, blend_cost, price, price_sample, verified_choice
from pulserec.models.persist import load_model, save_model
from pulserec.models.registry import build_model


def three_sources(n_users: int = 40, n_items: int = 30) -> tuple[np.ndarray, sp.csr_matrix, dict, np.ndarray]:
    """Source 0 ranks every user's wanted item first, source 1 second, source 2 tenth: the best
    blend is source 0 alone; without it, source 1."""
    rng = np.random.default_rng(0)
    users = np.arange(n_users)
    parts = rng.random((3, n_users, n_items)).astype(np.float32) * 0.5
    wanted = rng.integers(0, n_items, n_users)
    others = (wanted[:, None] + np.arange(1, 10)[None, :]) % n_items
    parts[1, users, others[:, 0]] = 1.0
    parts[1, users, wanted] = 0.95
    parts[2][users[:, None], others] = 1.0
    parts[2, users, wanted] = 0.9
    parts[0, users, wanted] = 1.0
    relevant = sp.csr_matrix((np.ones(n_users), (users, wanted)), shape=(n_users, n_items))
    return parts, sp.csr_matrix((n_users, n_items)), {"all": relevant}, np.zeros(n_users, dtype=np.int64)


def test_the_cost_of_a_blend_is_what_each_priced_query_pays_for_the_parts_its_bucket_weighs() -> None:
    costs = np.array([[1.0, 4.0, 0.5], [1.0, 4.0, 0.5], [2.0, 8.0, 0.5], [2.0, 8.0, 0.5]])
    buckets = np.array([0, 0, 1, 1])
    assert blend_cost(np.array([1.0, 0.0, 1.0]), costs, buckets) == pytest.approx((2.0, 2.5))
    gated = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # the expensive part for short histories only
    assert blend_cost(gated, costs, buckets) == pytest.approx((3.0, 4.0))
    assert Budget(3.0, 4.0).fits(*blend_cost(gated, costs, buckets))
    assert not Budget(3.0, 3.9).fits(*blend_cost(gated, costs, buckets))
    assert Budget(0.0, 0.0).fits(1e9, 1e9)  # 0: unbounded
    assert Budget(2.0, 10.0).less([0.5, 3.0]) == Budget(1.5, 7.0)  # the parts get what the request leaves
    assert Budget(2.0, 0.0).less([3.0, 3.0]) == Budget(1e-6, 0.0) and Budget(2.0, 10.0).less(None) == Budget(2.0, 10.0)
    with pytest.raises(ValueError, match="latency budget"):
        Budget(-1.0, 5.0)
    with pytest.raises(ValueError, match="latency budget"):
        Budget(float("nan"), 5.0)


def test_a_part_over_the_budget_is_left_out_whatever_its_validation_score() -> None:
    parts, seen, relevant, buckets = three_sources()
    costs = np.tile([5.0, 0.8, 0.3], (len(buckets), 1))  # the best source is the dearest
    free, best_free, singles = TargetSearch(parts, seen, relevant, buckets).search((0.0, 0.5, 1.0), 2)
    assert free[0, 0] > 0 and best_free == pytest.approx(1.0)
    fits = Budget(1.2, 6.0).admits(costs, buckets)
    weights, best, again = TargetSearch(parts, seen, relevant, buckets).search((0.0, 0.5, 1.0), 2, fits)
    assert again == singles  # each source's own score is reported as before
    assert weights[0, 0] == 0 and weights[0, 1] > 0, weights  # within budget: the best it admits
    assert fits(weights) and best >= singles[1] - 1e-12 and best < best_free
    assert weights[0, 2] == 0 or blend_cost(weights, costs, buckets)[0] <= 1.2
    roomy = Budget(6.0, 6.0).admits(costs, buckets)
    assert TargetSearch(parts, seen, relevant, buckets).search((0.0, 0.5, 1.0), 2, roomy)[0][0, 0] > 0


def test_when_no_part_fits_the_cheapest_serves_alone() -> None:
    parts, seen, relevant, buckets = three_sources()
    costs = np.tile([5.0, 3.0, 2.0], (len(buckets), 1))
    fits = Budget(1.0, 1.0).admits(costs, buckets)
    assert fits(np.array([0.0, 0.0, 1.0])) and not fits(np.array([0.0, 1.0, 1.0])) and not fits(np.array([1.0, 0, 0]))
    weights, _, _ = TargetSearch(parts, seen, relevant, buckets).search((0.0, 0.5, 1.0), 2, fits)
    assert (weights > 0).tolist() == [[False, False, True]]


def test_a_required_part_keeps_a_weight_in_every_bucket_whatever_it_costs_the_validation() -> None:
    parts, seen, relevant, buckets = three_sources()
    buckets = np.arange(len(buckets)) % 2  # two buckets, users interleaved
    free, best_free, singles = TargetSearch(parts, seen, relevant, buckets).search((0.0, 0.25, 1.0, 4.0), 2)
    assert (free[:, 2] == 0).all() and best_free == pytest.approx(1.0)  # left to itself: source 2 is never blended
    held, best, again = TargetSearch(parts, seen, relevant, buckets).search((0.0, 0.25, 1.0, 4.0), 2, required=[2])
    assert again == singles and (held[:, 2] > 0).all(), held  # in both buckets
    assert held[:, 0].min() > 0 and best >= singles[2] and best <= best_free + 1e-12
    costs = np.tile([0.1, 0.1, 3.0], (len(buckets), 1))  # the required part alone is over the budget
    only = Budget(1.0, 1.0).admits(costs, buckets, required=[2])
    assert only(np.array([0.0, 0.0, 1.0])) and not only(np.array([1.0, 0.0, 1.0])) and not only(np.array([1.0, 0.0, 0.0]))
    weights, _, _ = TargetSearch(parts, seen, relevant, buckets).search((0.0, 0.25, 1.0), 2, only, required=[2])
    assert (weights > 0).tolist() == [[False, False, True]] * 2
    fits = Budget(4.0, 4.0).admits(costs, buckets, required=[2])  # room beside it: the best source joins it
    weights, _, _ = TargetSearch(parts, seen, relevant, buckets).search((0.0, 0.25, 1.0), 2, fits, required=[2])
    assert (weights[:, 2] > 0).all() and (weights[:, 0] > 0).all()
    with pytest.raises(ValueError, match="required"):
        AutoBlend(components=[("popular", {})], required=["item_knn"])


def test_an_item_knn_is_priced_as_served_with_its_long_term_part_kept() -> None:
    data = staggered_log(n_users=30, per_user=60)  # 40 items a user: older ones beyond the recent 20
    knn = build_model("item_knn").fit(data)
    view = LongTerm.over(build_model("item_knn").fit(data), 1.0)
    assert as_served(knn) is knn and knn.long_term_cache is not None and view.inner.long_term_cache is None
    as_served(view)
    assert view.inner.long_term_cache is not None and as_served(build_model("popular").fit(data)) is not None
    histories = Histories(data)  # the served query: the whole history at long_term_weight
    queries = [histories.query(u) for u in range(5)]
    assert all(q.long_term > 0 and len(q.items) > q.recent for q in queries)
    price(knn, queries, data.n_items)
    assert knn.long_term_cache.hits >= len(queries)  # each query's second call read the part its first built


def test_pricing_times_each_query_as_one_request() -> None:
    data = staggered_log(n_users=30, per_user=15)
    model = build_model("popular").fit(data)
    queries = [Query(user=u, items=np.array([1, 2]), history=np.array([1, 2]), n_items=data.n_items) for u in range(5)]
    costs = price(model, queries, data.n_items)
    assert costs.shape == (5,) and np.isfinite(costs).all() and (costs > 0).all() and costs.max() < 100
    assert price_sample(10, size=20).tolist() == list(range(10))
    sample = price_sample(1000, size=50)
    assert len(sample) == 50 and len(set(sample.tolist())) == 50 and (np.diff(sample) > 0).all()
    assert price_sample(1000, size=50).tolist() == sample.tolist()  # the same queries for every candidate


def test_auto_prices_its_parts_fits_only_what_it_weighs_and_saves_the_pricing(tmp_path) -> None:
    data = staggered_log(n_users=30, per_user=15)
    specs = [("item_knn", {}), ("popular", {}), ("trending", {})]
    tight = AutoBlend(components=specs, budget=[1e-9, 0.0], rounds=1).fit(data)  # nothing fits: the online part alone
    served = [k for k, m in enumerate(tight.models) if m is not None]
    assert served == [0] and (tight.weight_rows()[:, 0] > 0).all() and tight.choice()["required"] == ["item_knn"]
    bare = AutoBlend(components=specs, budget=[1e-9, 0.0], rounds=1, required=[]).fit(data)  # the cheapest alone
    assert len([m for m in bare.models if m is not None]) == 1
    choice = tight.choice()["latency"]
    assert choice["budget_ms"] == [1e-9, 0.0] and set(choice["parts_ms"]) == {"item_knn", "popular", "trending"}
    assert 0 < choice["queries"] <= data.n_users and all(p50 > 0 for p50, _ in choice["parts_ms"].values())
    save_model(tight, tmp_path / "auto.model")
    loaded, meta = load_model(tmp_path / "auto.model")
    assert loaded.choice()["latency"] == choice and meta["params"]["budget"] == [1e-9, 0.0]
    assert [m is None for m in loaded.models] == [m is None for m in tight.models]
    query = Query(user=0, items=np.array([1, 2]), weights=np.ones(2), history=np.array([1, 2]), n_items=data.n_items)
    assert np.array_equal(loaded.score(query, data.n_items), tight.score(query, data.n_items))
    assert loaded.required == ["item_knn"]
    free = AutoBlend(components=specs, budget=None, rounds=1).fit(data)
    assert free.choice()["latency"] is None
    with pytest.raises(ValueError, match="latency budget"):
        AutoBlend(components=specs, budget=[-1.0, 5.0])


def test_a_part_that_fits_no_bucket_alone_is_unaffordable_and_a_barred_one_is_never_admitted() -> None:
    buckets = np.array([0, 0, 0, 1])
    assert Budget(0.0, 1.0).affords(np.array([5.0, 5.0, 5.0, 0.5]), buckets)  # for the one long history alone
    assert not Budget(0.0, 1.0).affords(np.array([0.5, 5.0, 5.0, 5.0]), buckets)
    costs = np.tile([0.1, 0.2], (4, 1))
    fits = Budget(1.0, 1.0).admits(costs, buckets, barred=[0])
    assert fits(np.array([0.0, 1.0])) and not fits(np.array([1.0, 0.0])) and not fits(np.array([[0.0, 1.0], [1.0, 0.0]]))
    only = Budget(0.01, 0.01).admits(costs, buckets, barred=[0])  # nothing fits: the cheapest part not barred
    assert only(np.array([0.0, 1.0])) and not only(np.array([1.0, 0.0]))


def test_a_sequence_model_priced_out_of_the_budget_is_never_trained(monkeypatch) -> None:
    pytest.importorskip("torch")
    from pulserec.models.sasrec import SASRec

    epochs: list[int] = []
    fit = SASRec.fit
    monkeypatch.setattr(SASRec, "fit", lambda self, data, catalog=None: (epochs.append(self.config.max_epochs), fit(self, data, catalog))[1])
    data = staggered_log(n_users=30, per_user=15)
    specs = [("popular", {}), ("sasrec", {"max_epochs": 2, "dim": 16})]
    auto = AutoBlend(components=specs, budget=[0.15, 0.15], history_edges=(), rounds=1).fit(data)  # a forward costs more
    assert epochs == [0] and auto.models[1] is None and (auto.weight_rows()[:, 1] == 0).all()
    assert auto.choice()["latency"]["not_trained"] == ["sasrec"] and "sasrec" not in auto.validation_scores
    assert auto.choice()["latency"]["parts_ms"]["sasrec"][0] > 0.15


def test_a_missed_budget_shrinks_the_parts_budget_by_the_excess_of_each_percentile_it_missed() -> None:
    whole, parts = Budget(2.0, 10.0), Budget(1.5, 9.0)
    shrunk = parts.backed_off([2.3, 9.0], whole, step=0.05)
    assert (shrunk.p50_ms, shrunk.p99_ms) == pytest.approx((1.5 - 0.3 - 0.05, 9.0))  # p99 within: kept
    assert parts.backed_off([1.0, 12.0], whole, step=0.0) == Budget(1.5, 7.0)
    assert parts.backed_off([9.0, 1.0], whole).p50_ms > 0  # never unbounded
    assert Budget(1.5, 0.0).floor() == Budget(1e-6, 0.0)


def fake_search(priced: dict[str, float], unseen_ms: float):
    """A search that picks the costliest blend whose price fits the parts' p50 budget (the floor's:
    the required part alone, "c"), and a meter that serves it at its price + `unseen_ms`."""
    budgets: list[Budget] = []

    def choose(budget: Budget) -> str:
        budgets.append(budget)
        fitting = [name for name, cost in priced.items() if cost <= budget.p50_ms]
        return max(fitting, key=priced.get) if fitting else "c"

    return choose, (lambda name: [priced[name] + unseen_ms, 5.0]), budgets


def test_a_blend_served_within_the_budget_is_kept_as_chosen() -> None:
    choose, measure, budgets = fake_search({"a": 1.4, "b": 1.0, "c": 0.3}, 0.5)
    chosen, served, rounds = verified_choice(choose, measure, Budget(2.0, 10.0), Budget(1.5, 9.0))
    assert chosen == "a" and served == [1.9, 5.0] and len(budgets) == 1
    assert rounds == [{"parts_budget_ms": [1.5, 9.0], "served_ms": [1.9, 5.0], "chose": None}]


def test_a_blend_served_over_the_budget_is_searched_again_within_a_smaller_parts_budget() -> None:
    choose, measure, budgets = fake_search({"a": 1.4, "b": 1.0, "c": 0.3}, 0.9)  # a serves 2.3 > 2.0
    chosen, served, rounds = verified_choice(choose, measure, Budget(2.0, 10.0), Budget(1.5, 9.0))
    assert chosen == "b" and served == [1.9, 5.0]
    assert [b.p50_ms for b in budgets] == pytest.approx([1.5, 1.5 - 0.3 - 0.05])
    assert [r["served_ms"][0] for r in rounds] == pytest.approx([2.3, 1.9])


def test_the_back_off_is_bounded_and_ends_with_the_floor_budgets_blend() -> None:
    choose, measure, budgets = fake_search({"a": 1.4, "b": 1.0, "c": 0.3}, 5.0)  # nothing fits as served
    chosen, served, rounds = verified_choice(choose, measure, Budget(2.0, 10.0), Budget(1.5, 9.0), rounds=3)
    assert chosen == "c" and served == [5.3, 5.0] and len(budgets) == len(rounds) == 4
    assert budgets[-1] == Budget(1.5, 9.0).floor()


def test_auto_verifies_its_blend_as_served_and_backs_off_to_the_required_part_alone() -> None:
    data = staggered_log(n_users=30, per_user=15)
    specs = [("item_knn", {}), ("popular", {}), ("trending", {})]
    served: list[list[bool]] = []

    def meter(auto, fitted_on, catalog) -> list[float]:  # a blend of more than the online part misses
        used = [m is not None for m in auto.models]
        served.append(used)
        assert fitted_on is data  # the blend served is the one fitted on all the training data
        return [0.5, 1.0] if sum(used) == 1 else [50.0, 1.0]

    auto = AutoBlend(components=specs, budget=[10.0, 0.0], rounds=1)
    auto.request_meter = meter
    auto.fit(data)
    latency = auto.choice()["latency"]
    assert served[0] != [True, False, False] and served[-1] == [True, False, False]  # a blend first, then the part
    assert [m is not None for m in auto.models] == [True, False, False] and latency["served_ms"] == [0.5, 1.0]
    assert latency["verify_rounds"][0]["served_ms"] == [50.0, 1.0] and len(latency["verify_rounds"]) == len(served) <= 4
    assert latency["verify_rounds"][-1]["chose"] == ["item_knn"] and len(latency["verify_rounds"][0]["chose"]) > 1
    unverified = AutoBlend(components=specs, budget=[10.0, 0.0], rounds=1).fit(data)
    assert "served_ms" not in unverified.choice()["latency"] and sum(m is not None for m in unverified.models) > 1
