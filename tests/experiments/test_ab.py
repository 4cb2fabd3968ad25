"""A/B assignment, the z-test, and CTR/conversion attribution over the real API."""

import math
import time
from collections import Counter

import httpx
import pytest

from pulserec.experiments.assignment import ExperimentConfig, assign, bucket
from pulserec.experiments.stats import two_proportion_z


def config(weights=(1.0, 1.0), default=False):
    return ExperimentConfig.model_validate({
        "variants": [{"name": f"v{i}", "strategy": s, "weight": w} for i, (s, w) in enumerate(zip(("default", "trending"), weights))],
        "default": default,
    })


def test_assignment_is_stable_and_close_to_the_weights():
    cfg = config((3.0, 1.0))
    users = [f"user-{i}" for i in range(20_000)]
    first = [assign("exp", cfg, u).variant for u in users]
    assert first == [assign("exp", cfg, u).variant for u in users]
    share = Counter(first)["v0"] / len(users)
    assert abs(share - 0.75) < 0.015  # 4+ standard errors
    assert assign("other-exp", cfg, "user-1") is not None
    assert {bucket("a", "u"), bucket("b", "u")} != {bucket("a", "u")}  # experiments are independent


def test_z_test_matches_a_hand_computed_value():
    # control 100/1000, treatment 130/1000: pooled p = 0.115, se = sqrt(.115*.885*(2/1000)) = 0.014268
    test = two_proportion_z(100, 1000, 130, 1000)
    assert test.z == pytest.approx(0.03 / math.sqrt(0.115 * 0.885 * 0.002), rel=1e-9)
    assert test.z == pytest.approx(2.1027, abs=1e-4)
    assert test.p_value == pytest.approx(0.03549, abs=1e-5)
    assert test.lift == pytest.approx(0.3)
    assert two_proportion_z(0, 0, 1, 10) is None


def test_variant_names_must_be_unique_and_weights_positive():
    with pytest.raises(ValueError):
        ExperimentConfig.model_validate({"variants": [{"name": "a", "strategy": "x", "weight": 1}] * 2})
    with pytest.raises(ValueError):
        ExperimentConfig.model_validate({"variants": [{"name": "a", "strategy": "x", "weight": 0},
                                                      {"name": "b", "strategy": "x", "weight": 1}]})


def test_impressions_clicks_and_experiment_report(server, client):
    url = server.url
    client.put_items([{"item_id": f"i{k}", "title": f"I{k}", "category": "c"} for k in range(6)])
    now = time.time() - 100
    client.send_events([{"user_id": f"seed{k}", "item_id": f"i{k % 6}", "type": "view", "timestamp": now + k} for k in range(30)])
    body = {"variants": [{"name": "control", "strategy": "default", "weight": 1},
                         {"name": "pop", "strategy": "popular", "weight": 1}], "default": True}
    assert httpx.put(f"{url}/experiments/homepage", json=body).status_code == 200
    bad = {"variants": [{"name": "a", "strategy": "nope", "weight": 1}, {"name": "b", "strategy": "default", "weight": 1}]}
    assert httpx.put(f"{url}/experiments/bad", json=bad).status_code == 422
    served = Counter()
    for k in range(40):
        user = f"visitor{k}"
        answer = client.recommend(user, n=3)
        assert answer["experiment"] == "homepage" and answer["variant"] in ("control", "pop")
        assert answer["strategy"] == ("default" if answer["variant"] == "control" else "popular")
        served[answer["variant"]] += 1
        rec = answer["recommendation_id"]
        assert httpx.post(f"{url}/impressions", json={"recommendation_id": rec, "user_id": user}).json()["recorded"]
        if answer["variant"] == "pop" or k % 4 == 0:  # the planted difference: pop gets every click
            client.send_event(user_id=user, item_id=answer["items"][0]["item_id"], type="click", recommendation_id=rec)
            if k % 2 == 0:
                client.send_event(user_id=user, item_id=answer["items"][0]["item_id"], type="purchase", recommendation_id=rec)
    assert client.recommend("visitor1", n=3, strategy="trending")["experiment"] is None  # a pinned strategy opts out
    report = httpx.get(f"{url}/experiments/homepage").json()
    rows = {v["name"]: v for v in report["variants"]}
    assert rows["control"]["impressions"] + rows["pop"]["impressions"] == 40
    assert rows["pop"]["impressions"] == served["pop"] and rows["pop"]["ctr"] == 1.0
    assert rows["control"]["ctr"] < 0.5
    assert rows["pop"]["ctr_vs_control"]["z"] > 0 and rows["pop"]["ctr_vs_control"]["significant"]
    by_strategy = {r["name"]: r for r in httpx.get(f"{url}/feedback").json()["strategies"]}
    assert by_strategy["popular"]["clicked"] == served["pop"]
    unknown = httpx.post(f"{url}/impressions", json={"recommendation_id": "never-served"})
    assert unknown.status_code == 422
    assert httpx.get(f"{url}/experiments/nope").status_code == 404
    assert httpx.get(f"{url}/users/u/recommendations", params={"experiment": "nope"}).status_code == 422
