"""The default that chooses itself (issue 18.4): training `auto` serves its validated blend as
the default, with the live item-kNN inside, shown in GET /models; strategy= still picks any model."""

from __future__ import annotations

import httpx
import numpy as np

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.models import auto
from pulserec.models.blend import Blend
from pulserec.serving.server import BackgroundServer

SMALL = [("item_knn", {}), ("long_term", {"model": "item_knn", "weight": 1.0}), ("als", {"factors": 8}), ("popular", {})]


def test_auto_serves_its_validated_blend_as_a_fresh_default(engine, shop, fill, monkeypatch) -> None:
    monkeypatch.setattr(auto, "candidates", lambda sequence=None: list(SMALL))
    fill(engine)
    assert engine.service.models.default_choice is None
    engine.training.train(["als", "auto"])
    choice = engine.service.models.default_choice
    singles = [v for k, v in choice["validation"].items() if k != "blend"]
    assert choice["validation"]["blend"] >= max(singles)  # never below its best input on validation
    assert choice["validation_split"] == "mixed" and choice["chosen_at"] > 0
    default = engine.service.strategies["default"]
    assert isinstance(default, Blend) and default is not engine.service.models.default
    live = engine.service.models.item_knn
    assert any(p is live or getattr(p, "inner", None) is live for p, _ in default.components) or \
        choice["weights"]["item_knn"] == choice["weights"]["long_term"] == 0

    user = str(shop.events["user_id"].value_counts().index[0])
    before = [r.item_id for r in engine.recommend(user, 10).items]
    item = before[0]
    engine.ingest([Event("fresh-1", user, item, "purchase", float(shop.events["ts"].max()) + 1)])
    after = [r.item_id for r in engine.recommend(user, 10).items]
    assert item not in after and after != before  # the event shows in the very next answer
    assert engine.recommend(user, 5, strategy="als").strategy == "als"

    with BackgroundServer(engine) as server:
        body = httpx.get(f"{server.url}/models").json()
    assert body["default_choice"]["chosen"] is True
    assert set(body["default_choice"]["weights"]) == {"item_knn", "long_term", "als", "popular"}


def test_a_restart_serves_the_saved_choice(engine, shop, fill, monkeypatch) -> None:
    monkeypatch.setattr(auto, "candidates", lambda sequence=None: list(SMALL))
    fill(engine)
    engine.training.train(["auto"])
    weights = engine.service.models.default_choice["weights"]
    user = str(shop.events["user_id"].value_counts().index[1])
    answer = [r.item_id for r in engine.recommend(user, 10).items]
    again = Engine(Settings.load(engine.settings.data_dir))
    try:
        assert again.service.models.default_choice["weights"] == weights
        assert [r.item_id for r in again.recommend(user, 10).items] == answer
    finally:
        again.close()
    assert np.isfinite(list(weights.values())).all()
