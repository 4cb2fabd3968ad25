"""The default that chooses itself (issue 18.4): training `auto` serves its validated blend as
the default, with the live item-kNN inside, shown in GET /models; strategy= still picks any model."""

from __future__ import annotations

import json
import time

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from pulserec.cli.main import app
from pulserec.config import AUTO_CANDIDATES, Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.records import ItemRecord
from pulserec.models import auto
from pulserec.models.blend import Blend, GatedBlend
from pulserec.models.base import Query
from pulserec.models.persist import load_model, read_meta, save_model
from pulserec.models.registry import build_model
from pulserec.recommend.aligned import AlignedModel
from pulserec.recommend.training import snapshot
from pulserec.recommend.auto_default import first_params
from pulserec.runtime.process import ServerProcess
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
    assert choice["validation_split"] == "balanced" and choice["chosen_at"] > 0
    assert choice["history_buckets"] == ["up to 10 items", "over 10 items"]
    assert set(choice["validation_targets"]) == {"next", "taste", "time"}  # three targets of one log
    assert sum(t["weight"] for t in choice["validation_targets"].values()) == pytest.approx(1.0)  # by precision
    assert all(len(w) == 2 for w in choice["weights"].values())  # a weight per history bucket
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


def wait_for(job, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while job.state == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.state == "succeeded", job.as_dict()


def test_a_start_chooses_the_default_only_when_none_is_served_and_the_log_is_large_enough(tmp_path, fill,
                                                                                           monkeypatch) -> None:
    monkeypatch.setattr(auto, "candidates", lambda sequence=None: list(SMALL))
    engine = Engine(Settings.load(tmp_path / "data", auto_train_min_events=3001))
    try:
        fill(engine)  # 3,000 events: one short of the threshold
        assert engine.training.choose_default() is None and engine.jobs.jobs() == []
        engine.settings = Settings.load(tmp_path / "data", auto_train_min_events=0)
        assert engine.training.choose_default() is None  # 0: never
        engine.settings = Settings.load(tmp_path / "data", auto_train_min_events=3000)
        job = engine.training.choose_default()
        assert job is not None and job.targets == ("auto",)
        wait_for(job)
        assert engine.service.models.default_choice["chosen_at"] > 0
        assert engine.training.choose_default() is None  # one is served now
    finally:
        engine.close()


def test_training_a_blended_model_chooses_the_default_again(engine, fill, monkeypatch) -> None:
    monkeypatch.setattr(auto, "candidates", lambda sequence=None: list(SMALL))
    fill(engine)
    engine.training.train(["auto"])
    first = engine.service.models.default_choice["chosen_at"]
    assert not any("auto" in line for line in engine.training.train(["bpr"]))  # not one of auto's inputs
    assert engine.jobs.jobs() == []
    lines = engine.training.train(["als"])
    assert any(line.startswith("auto: choosing the default again after als") for line in lines), lines
    (job,) = [j for j in engine.jobs.jobs() if j.targets == ("auto",)]
    wait_for(job)
    assert engine.service.models.default_choice["chosen_at"] > first
    engine.settings = Settings.load(engine.settings.data_dir, auto_reselect=False)
    assert not any("auto" in line for line in engine.training.train(["als"]))


def test_pulserec_train_without_a_model_trains_auto_and_a_blended_model_reselects_it(tmp_path, fill) -> None:
    data_dir = tmp_path / "data"
    engine = Engine(Settings.load(data_dir))
    fill(engine)
    engine.close()
    runner = CliRunner()
    small = json.dumps([list(spec) for spec in SMALL])
    result = runner.invoke(app, ["train", "--data-dir", str(data_dir), "-p", f"components={small}", "-p", "rounds=1"])
    assert result.exit_code == 0, result.output
    saved = data_dir / "models" / "auto.model"
    first = read_meta(saved)["info"]["trained_at"]
    result = runner.invoke(app, ["train", "--model", "bpr", "--data-dir", str(data_dir), "-p", "factors=4"])
    assert result.exit_code == 0 and "chosen again" not in result.output, result.output
    result = runner.invoke(app, ["train", "--model", "als", "--data-dir", str(data_dir), "-p", "factors=4"])
    assert result.exit_code == 0 and "auto: the default chosen again after als" in result.output, result.output
    meta = read_meta(saved)["info"]
    assert meta["trained_at"] > first and meta["params"]["rounds"] == 1  # its own parameters kept


def test_pulserec_serve_chooses_the_default_in_the_background_and_stays_fresh(tmp_path, shop, fill) -> None:
    """As a user drives it: a filled data dir, `pulserec serve`, nothing trained by hand."""
    data_dir = tmp_path / "data"
    engine = Engine(Settings.load(data_dir))
    fill(engine)
    engine.close()
    user = str(shop.events["user_id"].value_counts().index[0])
    with ServerProcess(data_dir, env={"PULSEREC_AUTO_TRAIN_MIN_EVENTS": "1000", "PULSEREC_AUTO_CANDIDATES": "item_knn,long_term,ease,als"}) as server, \
            httpx.Client(base_url=server.url, timeout=30) as http:
        deadline = time.monotonic() + 180
        while not (choice := http.get("/models").json()["default_choice"])["chosen"]:
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.5)
        (job,) = [j for j in http.get("/jobs").json()["jobs"] if j["target"] == "auto"]
        assert job["state"] == "succeeded" and "choosing the default on validation" in server.log_tail()
        assert set(choice["weights"]) == {"item_knn", "long_term", "ease", "als"}
        assert choice["validation"]["blend"] >= max(v for k, v in choice["validation"].items() if k != "blend")
        before = http.get(f"/users/{user}/recommendations", params={"n": 10}).json()
        assert before["strategy"] == "default" and before["items"]
        item = before["items"][0]["item_id"]
        event = {"event_id": "fresh-after-choice", "user_id": user, "item_id": item, "type": "view",
                 "timestamp": float(shop.events["ts"].max()) + 1}
        posted = http.post("/events", json={"events": [event]})
        assert posted.status_code == 200, posted.text
        after = http.get(f"/users/{user}/recommendations", params={"n": 10}).json()
        assert item not in [r["item_id"] for r in after["items"]]  # the event shows in the next answer
        # ... and not only as a seen item: a newcomer's one event re-ranks their list
        cold = [r["item_id"] for r in http.get("/users/newcomer/recommendations", params={"n": 11}).json()["items"]]
        posted = http.post("/events", json={**event, "event_id": "newcomer-1", "user_id": "newcomer"})
        assert posted.status_code == 200, posted.text
        warm = [r["item_id"] for r in http.get("/users/newcomer/recommendations", params={"n": 10}).json()["items"]]
        assert warm and warm != [i for i in cold if i != item][:10]
    assert (data_dir / "models" / "auto.model").is_file()  # saved: the next start serves it at once


def test_the_candidates_setting_names_what_auto_blends() -> None:
    assert tuple(dict.fromkeys(name for name, _ in auto.candidates(True))) == AUTO_CANDIDATES
    assert [name for name, _ in first_params(Settings(auto_candidates=("ease", "sasrec")))["components"]] == \
        ["ease", "sasrec"]
    shipped = first_params(Settings())  # every installed candidate, the default budget
    assert [name for name, _ in shipped["components"]] == [name for name, _ in auto.candidates()]
    assert shipped["validation"] == "balanced"
    live = dict(shipped["components"])  # the item-kNN parts validated and priced as the live ones are built
    assert live["item_knn"]["max_neighbours"] == live["long_term"]["max_neighbours"] == Settings().cooc_max_neighbours
    assert live["long_term"]["model"] == "item_knn" and live["ease"] == {"keep": auto.PRUNED_KEEP}
    assert shipped["budget"] == [Settings().auto_budget_p50_ms, Settings().auto_budget_p99_ms]
    assert first_params(Settings(auto_budget_p50_ms=0.0, auto_budget_p99_ms=0.0))["budget"] is None
    with pytest.raises(ValueError, match="auto_candidates must name some of item_knn"):
        Settings.load(None, auto_candidates="ease,svd")


def test_the_validation_setting_says_what_auto_learns_on(engine, fill, monkeypatch) -> None:
    random = first_params(Settings(auto_validation="random"))
    assert (random["validation"], random["validation_params"]) == ("random", {"test_fraction": 0.25})
    assert first_params(Settings(auto_validation="time"))["validation_params"] == {"test_fraction": 0.4, "warm_start": 5}
    with pytest.raises(ValueError, match="auto_validation must be one of balanced"):
        Settings.load(None, auto_validation="weekly")
    monkeypatch.setattr(auto, "candidates", lambda sequence=None: list(SMALL))
    fill(engine)
    engine.settings = Settings.load(engine.settings.data_dir, auto_validation="leave-last-out")
    engine.training.train(["auto"])  # nothing saved yet: the setting's validation
    assert engine.service.models.default_choice["validation_split"] == "leave-last-out"
    engine.settings = Settings.load(engine.settings.data_dir)
    engine.training.train(["auto"])  # a retrain keeps what it was trained with
    assert engine.service.models.default_choice["validation_split"] == "leave-last-out"


def test_serve_with_workers_chooses_the_default_once_for_all_of_them(tmp_path, fill) -> None:
    """`serve --workers 2`: the parent trains auto into models/; each worker's model watcher
    installs it, so whichever worker answers serves the chosen default."""
    data_dir = tmp_path / "data"
    engine = Engine(Settings.load(data_dir))
    fill(engine)
    engine.close()
    env = {"PULSEREC_AUTO_TRAIN_MIN_EVENTS": "1000", "PULSEREC_AUTO_CANDIDATES": "item_knn,long_term,ease",
           "PULSEREC_MODEL_WATCH_INTERVAL": "0.3"}
    with ServerProcess(data_dir, workers=2, env=env) as server:
        deadline = time.monotonic() + 180
        while not (data_dir / "models" / "auto.model").is_file():
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.3)
        chosen = 0
        while chosen < 10:  # ten answers in a row, each on a new connection (spread over the workers)
            assert time.monotonic() < deadline, server.log_tail()
            chosen = chosen + 1 if httpx.get(f"{server.url}/models", timeout=30).json()["default_choice"]["chosen"] else 0
            time.sleep(0.05)
        assert "the default chosen on" in server.log_tail()
    assert read_meta(data_dir / "models" / "auto.model")["info"]["params"]["validation"] == "balanced"


def test_a_long_trending_horizon_is_served_as_trained_and_the_weekly_one_live(engine, shop, fill, tmp_path) -> None:
    """auto's two trending horizons: the one that decays like the live counters is served by them
    (fresh after every event), the year's as trained, through its trained ids, saved and loaded."""
    fill(engine)
    year = ("trending", {"halflife": auto.LONG_TRENDING_HALFLIFE})
    chosen = auto.AutoBlend(components=[("item_knn", {}), ("trending", {}), year], rounds=1)
    data, _ = snapshot(engine.store, engine.settings.weighting)
    chosen.models = [build_model(name, **params).fit(data) for name, params in chosen.components]
    chosen.weights, chosen.user_ids, chosen.item_ids = [1.0, 0.5, 0.5], data.user_ids, data.item_ids
    chosen.after_load()
    save_model(chosen, tmp_path / "auto.model")
    loaded, _ = load_model(tmp_path / "auto.model", "auto")
    assert loaded.component_names() == ["item_knn", "trending", "trending(halflife=31536000.0)"]
    models = engine.service.models
    models.choose_default(loaded, {"version": 1})
    parts = [part for part, _ in engine.service.strategies["default"].components]
    assert parts[0] is models.item_knn and parts[1] is models.trending
    assert isinstance(parts[2], AlignedModel) and parts[2].model.halflife == auto.LONG_TRENDING_HALFLIFE
    yearly = parts[2].score(Query(), len(engine.state.catalog))
    counts = np.bincount(data.items, weights=data.weights, minlength=data.n_items)
    top = data.item_ids.ids[int(np.argmax(counts))]  # the shop's log spans days: a year decays little
    assert engine.state.catalog.item_ids.ids[int(np.nanargmax(yearly))] == top
    assert len(engine.recommend(str(shop.events["user_id"].iloc[0]), 5).items) == 5


def test_weights_per_history_length_are_served_with_the_live_parts(engine, shop, fill) -> None:
    """A choice with one weight vector per history bucket serves one blend per bucket over the
    same live item-kNN and trained parts; a state rebuild keeps the buckets."""
    fill(engine)
    chosen = auto.AutoBlend(components=[("item_knn", {}), ("popular", {}), ("als", {"factors": 8})], history_edges=(5,))
    data, _ = snapshot(engine.store, engine.settings.weighting)
    chosen.models = [build_model(name, **params).fit(data) for name, params in chosen.components]
    chosen.weights, chosen.user_ids, chosen.item_ids = [[0.0, 1.0, 0.0], [1.0, 0.0, 0.5]], data.user_ids, data.item_ids
    chosen.after_load()
    models = engine.service.models
    models.choose_default(chosen, {"version": 1})
    default = engine.service.strategies["default"]
    assert isinstance(default, GatedBlend) and default.edges == (5,)
    short, long = ([part for part, w in blend.components if w > 0] for blend in default.blends)
    assert short[0] is models.popular and long[0] is models.item_knn and isinstance(long[1], AlignedModel)
    assert models.default_choice["weights"] == {"item_knn": [0.0, 1.0], "popular": [1.0, 0.0], "als": [0.0, 0.5]}
    veteran = str(shop.events["user_id"].value_counts().index[0])
    popular = [r.item_id for r in engine.recommend("nobody-yet", 10).items]
    assert [r.item_id for r in engine.recommend(veteran, 10).items] != popular
    rebuilt = models.rebound(engine.state)
    again = rebuilt.strategies["default"]
    assert isinstance(again, GatedBlend) and again.blends[1].components[0][0] is rebuilt.item_knn


def test_the_trained_default_reflects_a_long_history_users_new_pairs(engine, shop, fill, monkeypatch) -> None:
    """Issue 18.4: the online item-kNN is a part of every history bucket of the trained default
    (`required`), so an item that exists only since training surfaces for a returning user with
    a long history as soon as its pairs exist: the batch parts have never seen it."""
    monkeypatch.setattr(auto, "candidates", lambda sequence=None: [("item_knn", {}), ("als", {"factors": 8}),
                                                                    ("popular", {})])
    fill(engine)
    engine.training.train(["auto"])
    choice = engine.service.models.default_choice
    assert choice["required"] == ["item_knn"] and min(choice["weights"]["item_knn"]) > 0, choice["weights"]
    overhead = choice["latency"]["request_overhead_ms"]  # measured through the service: the budget is the request's
    assert 0 < overhead[0] <= overhead[1] < 1e3
    served = choice["latency"]["served_ms"]  # the chosen blend verified as the default serves it, whole
    assert 0 < served[0] <= served[1] and served == choice["latency"]["verify_rounds"][-1]["served_ms"]
    counts = shop.events["user_id"].value_counts()
    veteran = str(counts.index[0])
    assert counts.iloc[0] > 10  # the long-history bucket
    ts = float(shop.events["ts"].max())
    anchor = str(shop.events.loc[shop.events["user_id"] != veteran, "item_id"].value_counts().index[-1])
    engine.put_items([ItemRecord("brand-new")])
    others = [str(u) for u in counts.index[-8:]]
    engine.ingest([Event(f"pair-{k}-{j}", user, item, "purchase", ts + 10 * k + j)
                   for k, user in enumerate(others) for j, item in enumerate((anchor, "brand-new"))])
    assert "brand-new" not in [r.item_id for r in engine.recommend(veteran, 10).items]
    engine.ingest([Event("veteran-anchor", veteran, anchor, "purchase", ts + 100)])
    answer = {r.item_id: r for r in engine.recommend(veteran, 10).items}
    assert "brand-new" in answer, list(answer)
    title = next(record.title or record.item_id for record in shop.items if record.item_id == anchor)
    assert answer["brand-new"].reason == f"because you bought {title}"  # the live item-kNN put it there
