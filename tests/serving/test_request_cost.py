"""The served request's own work, measured at fit through the service (recommend/request_cost.py):
what `auto`'s whole-request budget leaves for the blend's parts (issue 2 / 18.4)."""

from __future__ import annotations

import numpy as np

from pulserec.config import Settings
from pulserec.models.auto import AutoBlend
from pulserec.recommend.request_cost import request_overhead, sampled_state
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
    assert built_for_training("auto", {"components": [("popular", {})], "budget": None}, Settings()).request_overhead is None
