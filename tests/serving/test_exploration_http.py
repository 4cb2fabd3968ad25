"""Exploration over real HTTP: new items get slots, are counted in GET /feedback, and stop
being explored once shown `exploration_max_impressions` times; the per-strategy default."""

from __future__ import annotations

import httpx

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.serving.server import BackgroundServer


def test_new_items_get_explored_until_they_have_exposure(tmp_path):
    settings = Settings.load(tmp_path / "data", exploration_max_impressions=2, exploration_defaults={"trending": 0.5})
    engine = Engine(settings)
    with BackgroundServer(engine) as server:
        url = server.url
        old = [{"item_id": f"old{k}", "category": "a"} for k in range(6)]
        httpx.post(f"{url}/items", json={"items": old + [{"item_id": "new", "category": "b"}]})
        httpx.post(f"{url}/events", json={"events": [{"user_id": f"u{u}", "item_id": f"old{k}", "type": "view"}
                                                     for u in range(4) for k in range(6)]})
        for k in range(2):  # the old items have been shown enough
            httpx.post(f"{url}/impressions", json={"recommendation_id": f"seed{k}", "strategy": "default",
                                                   "items": [i["item_id"] for i in old]})
        engine.service.exposure.refresh(force=True)
        plain = httpx.get(f"{url}/users/u0/recommendations", params={"n": 4, "exclude_seen": False}).json()["items"]
        assert all("explored" not in r for r in plain) and "new" not in [r["item_id"] for r in plain]
        default = httpx.get(f"{url}/users/u1/recommendations", params={"n": 4, "strategy": "trending", "exclude_seen": False})
        assert [r["item_id"] for r in default.json()["items"] if r.get("explored")] == ["new"]  # the strategy's default
        for round_ in range(2):
            answer = httpx.get(f"{url}/users/u0/recommendations", params={"n": 4, "exploration": 0.25, "exclude_seen": False}).json()
            explored = [r for r in answer["items"] if r.get("explored")]
            assert [r["item_id"] for r in explored] == ["new"] and explored[0]["reason"] == "new here: exploring", round_
            assert len(answer["items"]) == 4
            httpx.post(f"{url}/impressions", json={"recommendation_id": answer["recommendation_id"]})
        httpx.post(f"{url}/events", json={"user_id": "u0", "item_id": "new", "type": "click",
                                          "recommendation_id": answer["recommendation_id"]})
        report = httpx.get(f"{url}/feedback").json()["exploration"]
        assert report == [{"strategy": "default", "impressions": 2, "clicks": 1, "ctr": 0.5}]
        assert httpx.get(f"{url}/feedback").json()["promotions"] == []
        engine.service.exposure.refresh(force=True)
        later = httpx.get(f"{url}/users/u0/recommendations", params={"n": 4, "exploration": 0.25, "exclude_seen": False})
        assert all("explored" not in r for r in later.json()["items"])  # shown twice: no longer explored
        for bad in ({"exploration": 1.5}, {"exploration": -1}, {"exploration": "some"}):
            response = httpx.get(f"{url}/users/u0/recommendations", params=bad)
            assert response.status_code == 422 and response.json()["errors"][0]["field"] == "exploration"
    engine.close()


def test_exploration_defaults_are_checked():
    import pytest

    with pytest.raises(ValueError, match="exploration_defaults"):
        Settings(exploration_defaults={"default": 2.0}).validate()
    with pytest.raises(ValueError, match="exploration_max_impressions"):
        Settings(exploration_max_impressions=0).validate()
