"""Every trainable model, as a user drives it: `pulserec train --model X -p k=v`, then a real
`pulserec serve` over HTTP answers `?strategy=X`, and `POST /models/X/train` retrains it with
the parameters it was trained with."""

from __future__ import annotations

import time

import httpx
import pytest
from typer.testing import CliRunner

from pulserec.cli.main import app
from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.ingest.synthetic import as_events
from pulserec.models.persist import read_meta
from pulserec.models.registry import TRAINABLE
from pulserec.runtime.process import ServerProcess

#: Fast parameters for each model on the 3,000-event shop (seconds, not minutes).
FAST: dict[str, list[str]] = {
    "als": ["factors=4", "iterations=2"],
    "bpr": ["factors=4", "epochs=2"],
    "user_knn": ["k=5"],
    "item_knn_bm25": ["k=10"],
    "content": ["min_df=1"],
    "content_embed": ["batch_size=64"],
    "ease": ["regularization=20"],
    "ease_local": ["regularization=20", "time_scale=600", "floor=0.1"],
    "rp3beta": ["k=20", "beta=0.3"],
    "adjacency": ["window=2", "keep=50"],
    "hybrid": ['components=["item_knn_bm25", "popular"]', "rounds=1", "validation=leave-last-out"],
    "rerank": ['sources=["item_knn_bm25", "popular"]', "depth=20", "validation=random"],
    "auto": ['components=[["item_knn", {}], ["long_term", {"model": "item_knn"}], ["ease", {}]]', "rounds=1"],
    "sasrec": ["max_epochs=1", "dim=8", "n_layers=1", "max_len=10", "patience=null"],
    "gru4rec": ["max_epochs=1", "dim=8", "max_len=10", "patience=null"],
    # after the others: its sources must be served when it trains and when it is loaded
    "ranker": ["sources=item_knn,ease", "rounds=5", "max_queries=300", "backend=lightgbm"],
}


def pairs(params: list[str]) -> list[str]:
    return [arg for p in params for arg in ("-p", p)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shop):
    data_dir = tmp_path_factory.mktemp("every-model")
    engine = Engine(Settings.load(data_dir))
    engine.put_items(list(shop.items))
    engine.ingest(as_events(shop.events))
    engine.close()
    runner = CliRunner()
    for name, params in FAST.items():
        result = runner.invoke(app, ["train", "--model", name, "--data-dir", str(data_dir), *pairs(params)])
        assert result.exit_code == 0, f"{name}: {result.output}"
        if name == "auto":  # what it chose, what its parts were priced at (the default budget)
            budget = f", budget {Settings().auto_budget_p50_ms:g} / {Settings().auto_budget_p99_ms:g}"
            assert "auto chose " in result.output and budget in result.output, result.output
            assert "ms a request + the request's own work " in result.output, result.output  # whole-request budget
    return data_dir


def test_every_trainable_model_is_covered() -> None:
    assert set(FAST) == set(TRAINABLE)


def test_each_cli_trained_model_is_served_over_http_and_retrained_with_its_params(trained, shop) -> None:
    user = str(shop.events["user_id"].value_counts().index[0])
    models = trained / "models"
    assert sorted(p.name for p in models.iterdir()) == sorted(f"{n}.model" for n in FAST)
    assert read_meta(models / "als.model")["params"]["factors"] == 4
    with ServerProcess(trained, env={"PULSEREC_MODEL_WATCH_INTERVAL": "0.2"}) as server, \
            httpx.Client(base_url=server.url, timeout=30) as http:
        listed = {m["name"]: m for m in http.get("/models").json()["models"]}
        for name in FAST:
            assert name in listed, (name, server.log_tail())
            answer = http.get(f"/users/{user}/recommendations", params={"strategy": name, "n": 5})
            assert answer.status_code == 200, (name, answer.text)
            body = answer.json()
            assert body["strategy"] == name and body["items"], (name, body)
        assert listed["als"]["params"]["factors"] == 4 and listed["als"]["watermark_seq"] > 0
        assert listed["ranker"]["sources"] == ["item_knn", "ease"]
        latency = http.get("/models").json()["default_choice"]["latency"]  # the served default's priced parts
        assert latency["budget_ms"] == [Settings().auto_budget_p50_ms, Settings().auto_budget_p99_ms]
        assert set(latency["parts_ms"]) == {"item_knn", "long_term", "ease"}
        assert 0 < latency["request_overhead_ms"][0] <= latency["request_overhead_ms"][1]
        assert 0 < latency["served_ms"][0] <= latency["served_ms"][1] and latency["verify_rounds"]
        assert "refused" not in server.log_tail()
        before = {name: listed[name]["trained_at"] for name in ("als", "ranker")}
        for name in before:
            assert http.post(f"/models/{name}/train").status_code == 202
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            listed = {m["name"]: m for m in http.get("/models").json()["models"]}
            if all(listed[name].get("trained_at") != at for name, at in before.items()):
                break
            time.sleep(0.2)
        assert listed["als"]["version"] >= 2 and listed["als"]["params"]["factors"] == 4, server.log_tail()
        assert listed["ranker"]["params"]["rounds"] == 5 and listed["ranker"]["sources"] == ["item_knn", "ease"]
    assert read_meta(models / "als.model")["params"]["factors"] == 4  # the file a retrain wrote keeps them too
    assert read_meta(models / "ranker.model")["info"]["params"]["max_queries"] == 300


def test_online_and_unknown_models_are_refused_with_the_reason(tmp_path) -> None:
    result = CliRunner().invoke(app, ["train", "--model", "item_knn", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0 and "needs no training" in result.output
    result = CliRunner().invoke(app, ["train", "--model", "als", "--data-dir", str(tmp_path), "-p", "nope=1"])
    assert result.exit_code != 0
