"""The served request's own work, measured at fit through the service (recommend/request_cost.py):
what `auto`'s whole-request budget leaves for the blend's parts (issue 2 / 18.4)."""

from __future__ import annotations

import numpy as np

from pulserec.config import Settings
from pulserec.models.auto import AutoBlend
from pulserec.models.latency_budget import REPEATS
from pulserec.recommend.request_cost import request_overhead, sampled_state, served_cost, timed_requests
from pulserec.recommend.service import RecommendationService
from pulserec.recommend.training import built_for_training, snapshot


def test_the_overhead_is_a_served_request_around_a_flat_part(engine, fill) -> None:
    fill(engine)
    data, _ = snapshot(engine.store, engine.settings.weighting)
    users = np.arange(0, data.n_users, 7)
    state = sampled_state(data, None, engine.settings, users)
    assert len(state.catalog) == data.n_items  # the whole catalogue: the filters' mask is its size
    assert state.applied == int(np.isin(data.users, users).sum()) and len(state.owners) == len(users)
    p50, p99 = request_overhead(data, None, engine.settings, size=20)
    assert 0 < p50 <= p99 < 1e3


def test_training_tells_a_budgeted_blend_what_a_request_costs_and_an_unbudgeted_one_nothing() -> None:
    budgeted = built_for_training("auto", {"components": [("popular", {})], "budget": [2.0, 10.0]}, Settings())
    assert isinstance(budgeted, AutoBlend) and budgeted.request_overhead is not None
    assert budgeted.request_meter is not None  # the default it becomes is verified as served
    assert built_for_training("hybrid", {"components": ["popular"], "budget": [2.0, 10.0]}, Settings()).request_meter is None
    assert built_for_training("auto", {"components": [("popular", {})], "budget": None}, Settings()).request_overhead is None


def test_the_served_cost_is_the_fitted_default_served_whole_to_fresh_users(engine, fill) -> None:
    fill(engine)
    data, _ = snapshot(engine.store, engine.settings.weighting)
    auto = AutoBlend(components=[("item_knn", {}), ("popular", {})], budget=None, rounds=1).fit(data)
    p50, p99 = served_cost(auto, data, None, engine.settings, size=20)
    assert 0 < p50 <= p99 < 1e3
    users = np.arange(0, data.n_users, 5)
    service = RecommendationService(sampled_state(data, None, engine.settings, users), engine.settings)
    service.models.choose_default(auto, {})
    kept: list[int] = []  # the long-term parts kept when each pass starts: the meter drops them
    knn = service.models.item_knn
    timed_requests(service, [str(data.user_ids.ids[u]) for u in users], None, lambda: kept.append(len(knn.long_term_cache)))
    assert len(kept) == REPEATS and kept[-1] > 0  # the default's item-kNN kept what the passes gathered
