"""Batch models train on the stored log, persist, serve after a restart, and retrain in the background."""

import time

import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.ingest.synthetic import as_events
from pulserec.recommend.training import RetrainScheduler




def test_trained_models_serve_and_survive_a_restart(engine, shop, fill):
    fill(engine)
    lines = engine.training.train(["als", "content"])
    assert len(lines) == 2
    answer = engine.recommend("u0003", 10, strategy="als")
    assert answer.strategy == "als" and len(answer.items) == 10
    meta = engine.service.strategies["als"].meta
    assert meta["version"] == 1 and meta["watermark_seq"] == engine.store.max_seq()
    again = Engine(Settings.load(engine.settings.data_dir))
    assert [r.item_id for r in again.recommend("u0003", 10, strategy="als").items] == [r.item_id for r in answer.items]
    again.close()


def test_a_new_user_gets_personal_factor_results_after_three_events(engine, shop, fill):
    fill(engine)
    engine.training.train(["als"], save=False)
    assert engine.recommend("brand-new", 5, strategy="als").cold_start
    shoes = [i.item_id for i in shop.items if i.category == "shoes"][:3]
    engine.ingest([Event(f"n{k}", "brand-new", item, "view", shop.events["ts"].max() + k) for k, item in enumerate(shoes)])
    answer = engine.recommend("brand-new", 5, strategy="als")
    assert not answer.cold_start and answer.items[0].source == "als"
    assert sum(r.category == "shoes" for r in answer.items) >= 3


def test_background_retrain_swaps_in_without_losing_events(engine, shop, fill):
    fill(engine, upto=1500)
    scheduler = RetrainScheduler(engine.training.train_in_turn, lambda: engine.state.applied, ["als"], every_events=100, poll=0.05).start()
    try:
        rest = shop.events.iloc[1500:]
        for start in range(0, len(rest), 100):
            chunk = rest.iloc[start:start + 100]
            engine.ingest(as_events(chunk))
            assert len(engine.recommend("u0001", 5).items) == 5
        deadline = time.monotonic() + 30
        while scheduler.runs < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.stop()
    assert scheduler.runs >= 2 and scheduler.last_error is None
    assert engine.state.applied == engine.store.event_count() == len(shop.events)
    assert engine.service.strategies["als"].meta["version"] >= 2


def test_scheduler_needs_a_trigger(engine):
    with pytest.raises(ValueError):
        RetrainScheduler(engine.training.train, lambda: engine.state.applied, ["als"])


def test_models_endpoint_and_background_train_over_http(client, engine, shop, server, fill):
    import httpx

    fill(engine, upto=800)
    assert httpx.post(f"{server.url}/models/nope/train").status_code == 404
    assert httpx.post(f"{server.url}/models/als/train").status_code == 202
    deadline = time.monotonic() + 30
    while "als" not in engine.service.strategies and time.monotonic() < deadline:
        time.sleep(0.05)
    listing = {m["name"]: m for m in client.models()["models"]}
    assert listing["als"]["version"] == 1 and listing["als"]["watermark_seq"] > 0 and not listing["als"]["online"]
    assert listing["item_knn"]["online"]
    assert httpx.post(f"{server.url}/admin/rebuild").status_code == 202
