"""Issue 13 items 2, 14, 18: what the API accepts is what it can store, serve and configure.

Each case was accepted (200) on main: a rating without a value or of 99, a purchase of -5, a
lone surrogate in an attribute value (then a 500 on every read), a timestamp sent as a string;
`max_id_len` and `max_n` were ignored."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.serving.app import create_app

JSON = {"content-type": "application/json"}


@pytest.fixture
def api(engine):
    return TestClient(create_app(engine), raise_server_exceptions=False)


def _event(**fields):
    return {"user_id": "u", "item_id": "a", **fields}


@pytest.mark.parametrize("body,field", [
    (_event(type="rating"), "value"),
    (_event(type="rating", value=99), "value"),
    (_event(type="rating", value=0.1), "value"),
    (_event(type="purchase", value=-5), "value"),
    ({"events": [_event(type="view"), _event(type="rating", value=6)]}, "events[1].value"),
])
def test_values_are_checked_per_event_type(refusing_api, refusing_engine, body, field):
    answer = refusing_api.post("/events", json=body)
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == [field]
    assert refusing_engine.store.event_count() == 0


def test_values_inside_the_declared_range_are_accepted(api):
    for body in (_event(type="rating", value=0.5), _event(type="rating", value=5), _event(type="purchase", value=0),
                 _event(type="view")):
        assert api.post("/events", json=body).status_code == 200


def test_value_rules_come_from_settings(tmp_path):
    settings = Settings.load(tmp_path, event_values={"rating": {"min": 1, "max": 10, "required": True}})
    with TestClient(create_app(Engine(settings)), raise_server_exceptions=False) as api:
        assert api.post("/events", json=_event(type="rating", value=9)).status_code == 200
        assert api.post("/events", json=_event(type="rating", value=0.5)).status_code == 422
        assert api.post("/events", json=_event(type="purchase", value=-5)).status_code == 200  # no rule declared


@pytest.mark.parametrize("rules,needle", [
    ({"nosuchtype": {"min": 0}}, "unknown event type"),
    ({"rating": {"min": 5, "max": 1}}, "min"),
    ({"rating": {"minimum": 1}}, "minimum"),
])
def test_bad_value_rules_are_refused_at_load(tmp_path, rules, needle):
    with pytest.raises(ValueError, match=needle):
        Settings.load(tmp_path, event_values=rules)


@pytest.mark.parametrize("method,path,body,field", [
    ("PUT", "/items/x", b'{"attrs": {"k": "\\udc00"}}', "attrs.k"),
    ("PUT", "/items/x", b'{"title": "a\\ud800b"}', "title"),
    ("PUT", "/items/x", b'{"tags": ["ok", "\\udfff"]}', "tags[1]"),
    ("PUT", "/users/u", b'{"attrs": {"k": "\\udc00"}}', "attrs.k"),
    ("POST", "/events", b'{"user_id": "u", "item_id": "a", "type": "view", "context": {"k": "\\udc00"}}', "context.k"),
    ("POST", "/events", b'{"user_id": "u", "type": "search", "query": "\\udc00"}', "query"),
    ("POST", "/impressions", b'{"recommendation_id": "r", "strategy": "\\udc00", "items": ["a"]}', "strategy"),
])
def test_lone_surrogates_are_rejected_where_they_enter(refusing_api, refusing_engine, method, path, body, field):
    answer = refusing_api.request(method, path, content=body, headers=JSON)
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["detail"] and "unicode" in answer.json()["detail"].lower()
    assert refusing_api.get("/items/x").status_code == 404  # nothing stored, so no read can fail later


@pytest.mark.parametrize("path,body", [
    ("/events", _event(type="view", timestamp="1700000000")),
    ("/impressions", {"recommendation_id": "r", "strategy": "s", "items": ["a"], "timestamp": "1700000000"}),
    ("/impressions", {"recommendation_id": "r", "strategy": "s", "items": ["a"], "timestamp": True}),
])
def test_numbers_sent_as_strings_are_rejected(refusing_api, path, body):
    answer = refusing_api.post(path, json=body)
    assert answer.status_code == 422, answer.text
    assert "timestamp" in answer.text


def test_id_length_and_result_count_settings_take_effect(tmp_path):
    settings = Settings.load(tmp_path, max_id_len=32, max_n=20)
    with TestClient(create_app(Engine(settings)), raise_server_exceptions=False) as api:
        long_id, ok_id = "i" * 33, "i" * 32
        answer = api.post("/events", json=_event(type="view", item_id=long_id))
        assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "item_id"
        assert api.put(f"/items/{long_id}", json={}).status_code == 422
        assert api.put(f"/users/{long_id}", json={}).status_code == 422
        assert api.put(f"/items/{ok_id}", json={}).status_code == 200
        assert api.get("/users/u/recommendations?n=20").status_code == 200
        answer = api.get("/users/u/recommendations?n=21")
        assert answer.status_code == 422 and "n" in [e["field"] for e in answer.json()["errors"]]
        assert api.get(f"/items/{ok_id}/similar?n=21").status_code == 422
        spec = api.get("/openapi.json").json()  # the document says what the server enforces
        n = next(p for p in spec["paths"]["/users/{user_id}/recommendations"]["get"]["parameters"] if p["name"] == "n")
        assert n["schema"]["maximum"] == 20
        item_id = next(p for p in spec["paths"]["/items/{item_id}"]["put"]["parameters"] if p["name"] == "item_id")
        assert item_id["schema"]["maxLength"] == 32


def test_limit_settings_are_bounded(tmp_path):
    with pytest.raises(ValueError, match="max_n"):
        Settings.load(tmp_path, max_n=0)
    with pytest.raises(ValueError, match="max_id_len"):
        Settings.load(tmp_path, max_id_len=100_000)
    with pytest.raises(ValueError, match="max_id_len"):
        Settings.load(tmp_path, max_id_len=8)  # below the server's own 32-digit ids


@pytest.mark.parametrize("name, value, says", [
    ("cooc_window", -1, "cooc_window must be between 1"),
    ("cooc_window", 0, "cooc_window must be between 1"),
    ("history_len", 10**9, "history_len must be between"),
    ("max_batch", 0, "max_batch must be between"),
    ("max_body_bytes", 10, "max_body_bytes must be between"),
    ("position_decay", 0.0, "position_decay must be positive"),
    ("long_term_weight", float("nan"), "long_term_weight must be a finite number"),
    ("trending_halflife", float("inf"), "trending_halflife must be a finite number"),
    ("cooc_window", 2.5, "cooc_window must be an integer"),
    ("cooc_window", True, "cooc_window must be an integer"),
    ("snapshots", "yes", "snapshots must be true or false"),
    ("state_namespace", 7, "state_namespace must be a string"),
])
def test_every_numeric_setting_is_typed_and_bounded(tmp_path, name, value, says):
    """A TOML file, an env var and an app's settings all pass Settings.validate: a wrong type or
    an unbounded value is named at load, not met as a TypeError or a huge allocation later."""
    with pytest.raises(ValueError, match=says):
        Settings.load(tmp_path, **{name: value})


def test_settings_files_and_env_vars_are_checked_the_same_way(tmp_path, monkeypatch):
    (tmp_path / "pulserec.toml").write_text('cooc_window = "20"\n')
    with pytest.raises(ValueError, match="cooc_window must be an integer"):
        Settings.load(tmp_path)
    (tmp_path / "pulserec.toml").unlink()
    monkeypatch.setenv("PULSEREC_SNAPSHOTS", "ture")
    with pytest.raises(ValueError, match="true/false setting"):
        Settings.load(tmp_path)
    monkeypatch.setenv("PULSEREC_SNAPSHOTS", "off")
    assert Settings.load(tmp_path).snapshots is False


def test_csv_import_applies_the_same_value_rules(tmp_path):
    from pulserec.ingest.importer import import_events

    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,type,timestamp,value\n"
                    "u1,i1,rating,1700000000,4.5\n"
                    "u2,i1,rating,1700000001,99\n"
                    "u3,i1,rating,1700000002,\n"
                    "u4,i1,purchase,1700000003,-5\n"
                    "u5,i1,purchase,1700000004,19.9\n")
    engine = Engine(Settings.load(tmp_path / "d"))
    report = import_events(engine, path)
    engine.close()
    assert (report.accepted, report.rejected) == (2, 3)
    assert {(e["row"], e["field"]) for e in report.errors} == {(2, "value"), (3, "value"), (4, "value")}


def test_movielens_reader_applies_the_rating_scale(tmp_path):
    from pulserec.ingest.movielens import read_checked_ratings, read_ratings

    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,10,4.0,964982703\n1,11,9.0,964982704\n"
                                          "2,10,0.0,964982705\n2,12,0.5,964982706\n")
    frame, errors = read_checked_ratings(tmp_path)
    assert frame["item_id"].tolist() == ["10", "12"]
    assert [(e["row"], e["field"]) for e in errors] == [(2, "rating"), (3, "rating")]
    assert "between 0.5 and 5" in errors[0]["message"]
    assert len(read_ratings(tmp_path)) == 2
    wide = Settings.load(tmp_path / "d", event_values={"rating": {"min": 0, "max": 10}})
    assert len(read_checked_ratings(tmp_path, wide.value_rules)[0]) == 4
