"""Publishable keys (issue 14.1): only the SDK's events and recommendation reads, from allowed
origins, rate-limited per key and client address; each refusal is a JSON 4xx naming its cause.
Also the SDK's beacon route (POST /sdk/events) and the script's HTTP caching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.serving.app import create_app
from pulserec.serving.rate_limit import RateLimiter

SECRET = "secret-key-0123456789abcdef"
READER = "reader-key-0123456789abcdef"
PK = "pk_test_0123456789abcdef"
OTHER_PK = "pk_test_second_0123456789"
SHOP = "https://shop.example"
SCRIPT = Path(__file__).resolve().parents[2] / "clients" / "js" / "pulserec.js"


def beacon(client: TestClient, body: object, key: str | None = PK, origin: str | None = SHOP, **headers: str):
    """POST /sdk/events as navigator.sendBeacon sends it: text/plain, the key in the query."""
    if origin:
        headers["origin"] = origin
    path = f"/sdk/events?key={key}" if key else "/sdk/events"
    return client.post(path, content=body if isinstance(body, (str, bytes)) else json.dumps(body),
                       headers={"content-type": "text/plain;charset=UTF-8", **headers})


def view(event_id: str, session: str = "s-1", item: str = "i1", **extra: object) -> dict:
    return {"event_id": event_id, "session_id": session, "item_id": item, "type": "view", **extra}


def make(tmp_path: Path, **settings: object) -> tuple[TestClient, Engine]:
    engine = Engine(Settings.load(tmp_path / "data", **{"api_keys": (SECRET,), "read_keys": (READER,),
                                                          "publishable_keys": (PK, OTHER_PK), "cors_origins": (SHOP,),
                                                          **settings}))
    client = TestClient(create_app(engine))
    client.post("/items", json={"items": [{"item_id": f"i{k}", "title": f"Item {k}", "category": "c"} for k in range(4)]},
                headers={"x-api-key": SECRET})
    client.post("/events", json=[{"user_id": "u1", "item_id": f"i{k % 4}", "type": "view"} for k in range(12)],
                headers={"x-api-key": SECRET})
    return client, engine


@pytest.fixture
def api(tmp_path):
    client, engine = make(tmp_path)
    yield client
    engine.close()


def test_a_beacon_with_a_publishable_key_stores_events_and_impressions(api):
    answer = api.get(f"/sessions/s-1/recommendations?key={PK}", headers={"origin": SHOP})
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == SHOP
    rec = answer.json()["recommendation_id"]
    body = {"events": [view("s-1.a", recommendation_id=rec), {"event_id": "s-1.b", "session_id": "s-1", "type": "search",
                                                               "query": "red shoes"}],
            "impressions": [{"recommendation_id": rec, "session_id": "s-1", "items": ["i1", "i2"]}]}
    stored = beacon(api, body)
    assert stored.status_code == 200, stored.text
    assert stored.json() == {"accepted": 2, "duplicates": 0, "impressions": 1, "identified": False}
    again = beacon(api, body)  # the SDK sends a batch again when it cannot know the beacon arrived
    assert again.json() == {"accepted": 0, "duplicates": 2, "impressions": 0, "identified": False}
    item = api.get("/items/i1", headers={"x-api-key": SECRET}).json()
    assert item["events"] == 3 + 1  # three of the seed's views and the beacon's one


def test_an_empty_beacon_is_a_no_op(api, tmp_path):
    """`{}` is valid by the schema (every part has a default): answered with zeros, nothing stored."""
    before = api.get("/items/i1", headers={"x-api-key": SECRET}).json()["events"]
    for body in ({}, {"events": [], "impressions": []}):
        answer = beacon(api, body)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"accepted": 0, "duplicates": 0, "impressions": 0, "identified": False}
    assert api.get("/items/i1", headers={"x-api-key": SECRET}).json()["events"] == before
    assert beacon(api, {"events": [], "extra": 1}).status_code == 422  # still a closed shape


def test_identify_merges_the_session_into_the_user(api):
    beacon(api, {"events": [view("s-9.a", session="s-9", item="i3")]})
    merged = beacon(api, {"identify": {"user_id": "u-new", "session_id": "s-9"}})
    assert merged.status_code == 200 and merged.json()["identified"] is True
    profile = api.get("/users/u-new/profile", headers={"x-api-key": SECRET}).json()
    assert profile["event_count"] == 1 and profile["recent_items"][0]["item_id"] == "i3"


@pytest.mark.parametrize("method,path", [
    ("GET", "/users/u1/profile"), ("POST", "/events"), ("GET", "/stats"), ("GET", "/dashboard/api/overview"),
    ("DELETE", "/users/u1"), ("GET", "/feedback"), ("GET", "/dashboard/api/search?q=u1"), ("POST", "/impressions"),
    ("PUT", "/items/i9"), ("GET", "/items/i1"),
])
def test_a_publishable_key_may_not_read_profiles_admin_or_write_anything_else(api, method, path):
    sep = "&" if "?" in path else "?"
    for answer in (api.request(method, f"{path}{sep}key={PK}", json={}),
                   api.request(method, path, json={}, headers={"x-api-key": PK})):
        assert answer.status_code == 403, (path, answer.text)
        assert "publishable key may only" in answer.json()["detail"]


def test_a_publishable_key_reads_recommendations_similar_items_and_item_search(api):
    for path in ("/users/u1/recommendations", "/sessions/s-1/recommendations", "/items/i1/similar",
                 "/search?q=item&session_id=s-1"):
        answer = api.get(f"{path}{'&' if '?' in path else '?'}key={PK}", headers={"origin": SHOP})
        assert answer.status_code == 200, (path, answer.text)
    found = api.get(f"/search?q=item&user_id=u1&key={PK}").json()["items"]
    assert found and all(i["reason"] for i in found)


def test_public_routes_stay_open_with_a_publishable_key(api):
    for path in ("/health", "/sdk/pulserec.js", "/dashboard/api/session"):
        assert api.get(path, headers={"x-api-key": PK}).status_code == 200, path
        assert api.get(f"{path}?key={PK}").status_code == 200, path


def test_secret_and_unknown_keys_are_refused_in_the_query_string(api):
    for key in (SECRET, READER, "pk_not_a_known_key_000000"):
        answer = api.get(f"/sessions/s-1/recommendations?key={key}")
        assert answer.status_code == 401 and "publishable keys only" in answer.json()["detail"]
    assert api.get("/sessions/s-1/recommendations", headers={"x-api-key": READER}).status_code == 200
    refused = api.post("/sdk/events", content=json.dumps({"events": [view("r.1")]}), headers={"x-api-key": READER})
    assert refused.status_code == 403 and "read-only" in refused.json()["detail"]  # a read key writes nothing
    assert beacon(api, {"events": [view("r.2")]}, key=None).status_code == 401  # no key at all


def test_origins_outside_the_allow_list_are_refused(api):
    evil = "https://evil.example"
    assert beacon(api, {"events": [view("e.1")]}, origin=evil).status_code == 403
    read = api.get(f"/users/u1/recommendations?key={PK}", headers={"origin": evil})
    assert read.status_code == 403 and "cors_origins" in read.json()["detail"]
    assert "access-control-allow-origin" not in read.headers
    preflight = {"access-control-request-method": "GET", "access-control-request-headers": "x-api-key"}
    refused = api.options("/users/u1/recommendations", headers={"origin": evil, **preflight})
    assert refused.status_code == 403 and evil in refused.json()["detail"]
    allowed = api.options("/users/u1/recommendations", headers={"origin": SHOP, **preflight})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == SHOP
    assert "x-api-key" in allowed.headers["access-control-allow-headers"]
    own = api.get(f"/users/u1/recommendations?key={PK}", headers={"origin": "http://testserver"})
    assert own.status_code == 200  # the server's own pages (the storefront) are same-origin


def test_rate_limit_per_key_answers_429_with_retry_after(tmp_path):
    api, engine = make(tmp_path, sdk_rate=0.5, sdk_burst=3)
    try:
        codes = [api.get(f"/items/i1/similar?key={PK}").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = api.get(f"/items/i1/similar?key={PK}")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert "rate limit" in limited.json()["detail"]
        assert api.get(f"/items/i1/similar?key={OTHER_PK}").status_code == 200  # another key has its own bucket
        assert api.get("/items/i1/similar", headers={"x-api-key": SECRET}).status_code == 200  # secret keys: not limited
    finally:
        engine.close()


def test_buckets_are_per_caller_and_refill_at_the_rate():
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=2, clock=lambda: now[0], max_buckets=2)
    assert [limiter.wait(("k", "1.2.3.4")) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert limiter.wait(("k", "5.6.7.8")) == 0.0  # another address
    now[0] = 0.5  # one token back after 1/rate seconds
    assert limiter.wait(("k", "1.2.3.4")) == 0.0 and limiter.wait(("k", "1.2.3.4")) == pytest.approx(0.5)
    limiter.wait(("k", "9.9.9.9"))  # a third caller evicts the least recently used one
    assert len(limiter._buckets) == 2


@pytest.mark.parametrize("body,status,field", [
    ({"events": [{**view("x.1"), "type": "rating", "value": 4.0}]}, 422, "events[0].type"),
    ({"events": [{**view("x.2"), "timestamp": 1732521600}]}, 422, "events[0].timestamp"),
    ({"events": [{"session_id": "s-1", "item_id": "i1", "type": "view"}]}, 422, "events[0].event_id"),
    ({"events": [{"event_id": "x.3", "item_id": "i1", "type": "view"}]}, 422, "events[0].session_id"),
    ({"events": [view("x.4", extra_field=1)]}, 422, "events[0].extra_field"),
    ({"events": [view(f"x.{k}") for k in range(201)]}, 422, "events"),
    ({"impressions": [{"recommendation_id": "never-served", "session_id": "s-1"}]}, 422, None),
    ({"identify": {}}, 422, "identify.user_id"),
    ("{not json", 400, None),
])
def test_bad_beacons_are_refused_naming_the_field(api, body, status, field):
    answer = beacon(api, body)
    assert answer.status_code == status, answer.text
    detail = answer.json()
    assert detail["detail"]
    if field:
        assert field in [e["field"] for e in detail["errors"]]


def test_the_script_is_served_with_its_type_and_caching_headers(api):
    answer = api.get("/sdk/pulserec.js")
    assert answer.status_code == 200 and answer.content == SCRIPT.read_bytes()
    assert answer.headers["content-type"] == "text/javascript; charset=utf-8"
    assert answer.headers["cache-control"] == "public, max-age=300" and answer.headers["x-content-type-options"] == "nosniff"
    unchanged = api.get("/sdk/pulserec.js", headers={"if-none-match": answer.headers["etag"]})
    assert unchanged.status_code == 304 and not unchanged.content
    assert api.get("/sdk/pulserec.js", headers={"if-none-match": '"other"'}).status_code == 200


def test_publishable_keys_need_secret_keys_and_must_differ_from_them(tmp_path):
    with pytest.raises(ValueError, match="need api_keys"):
        Settings.load(tmp_path, publishable_keys=(PK,))
    with pytest.raises(ValueError, match="must not also be"):
        Settings.load(tmp_path, api_keys=(SECRET,), publishable_keys=(SECRET,))
    with pytest.raises(ValueError, match="sdk_rate"):
        Settings.load(tmp_path, sdk_rate=0.0)
