"""Optional model abilities are declared protocols (checked with isinstance), and an explanation
comes from its own request's result, whatever was scored in between."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pulserec.models.base import Explainer, ScoresExplained, ScoresMany, TrainedIds, TrainedUserIds, declares, scored
from pulserec.models.popularity import Trending
from pulserec.recommend.aligned import AlignedModel


def queries(engine, shop):
    users = shop.events["user_id"].drop_duplicates().tolist()
    return [engine.service.query_for(engine.user_key(u)) for u in users[:6]]


@pytest.mark.parametrize("name", ["item_knn", "default", "trending"])
def test_an_explanation_is_that_of_its_own_request(engine, shop, fill, name):
    fill(engine, upto=2000)
    model = engine.service.strategies[name]
    first, *others = queries(engine, shop)
    n = len(engine.state.catalog)
    result = scored(model, first, n)
    for other in others:  # other requests scored in between
        scored(model, other, n).explain(np.arange(5))
    items = np.argsort(-np.nan_to_num(result.scores, neginf=0.0))[:10]
    again = dataclasses.replace(first)  # an equal query, not the same object
    assert result.explain(items) == model.explain(again, items)
    assert any(reason is not None for reason in result.explain(items))


def test_abilities_are_declared(engine, shop, fill):
    fill(engine, upto=2000)
    engine.training.train(["als"], save=False)
    served = engine.service.strategies
    als = served["als"].model
    assert isinstance(als, TrainedIds) and isinstance(als, TrainedUserIds)
    assert isinstance(served["item_knn"], ScoresExplained) and isinstance(served["default"], ScoresExplained)
    assert not isinstance(served["item_knn"], TrainedIds)
    assert isinstance(als, ScoresMany) == hasattr(type(als), "score_many")
    with pytest.raises(TypeError, match="no trained item ids"):
        AlignedModel(Trending(), engine.state.catalog, engine.state.owners)


def test_a_declared_ability_is_what_isinstance_says_of_every_served_model(engine, fill):
    """`declares` asks the class (cached); it must agree with `isinstance` on the instance for
    every served model, the trained and aligned ones included."""
    fill(engine, upto=2000)
    engine.training.train(["als", "ease"], save=False)
    models = list(engine.service.strategies.values())
    models += [m.model for m in models if isinstance(m, AlignedModel)]
    for model in models:
        for ability in (Explainer, ScoresExplained, ScoresMany):
            assert declares(model, ability) == isinstance(model, ability), (type(model).__name__, ability.__name__)
