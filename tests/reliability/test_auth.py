"""API keys: write/admin endpoints need an api key, reads a read key once read keys exist; CORS is opt-in."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.serving import auth
from pulserec.serving.app import create_app

WRITE_KEY = "write-key-0123456789abcdef"
OTHER_WRITE_KEY = "second-write-key-0123456789"
READ_KEY = "read-key-0123456789abcdef"

EVENT = {"user_id": "u1", "item_id": "i1", "type": "view"}
#: (method, path, json body) of every endpoint that changes data or is admin-only.
WRITES = [
    ("POST", "/events", EVENT),
    ("PUT", "/items/i1", {"title": "One"}),
    ("POST", "/items", {"items": [{"item_id": "i2"}]}),
    ("PUT", "/users/u1", {"attrs": {"plan": "pro"}}),
    ("DELETE", "/users/u1", None),
    ("GET", "/stats", None),
]
READS = [
    ("GET", "/users/u1/recommendations", None),
    ("GET", "/sessions/s1/recommendations", None),
    ("GET", "/items/i1", None),
    ("GET", "/items/i1/similar", None),
    ("GET", "/users/u1/profile", None),
    ("GET", "/models", None),
]


def make_client(tmp_path: Path, **settings: object) -> TestClient:
    engine = Engine(Settings.load(tmp_path / "data", **settings))
    client = TestClient(create_app(engine))
    client.post("/events", json=EVENT, headers={"x-api-key": WRITE_KEY})  # u1 and i1 exist
    return client


def call(client: TestClient, method: str, path: str, body: object, key: str | None = None, bearer: bool = False):
    headers = {}
    if key is not None:
        headers = {"authorization": f"Bearer {key}"} if bearer else {"x-api-key": key}
    return client.request(method, path, json=body, headers=headers)


KEYS = {"api_keys": (WRITE_KEY, OTHER_WRITE_KEY), "read_keys": (READ_KEY,)}


@pytest.fixture
def keyed(tmp_path):
    return make_client(tmp_path, **KEYS)


@pytest.fixture(scope="module")
def keyed_reads(tmp_path_factory):
    """One keyed app for the module's read-only cases (reads, refusals, the open documents): one
    app's route build and first request instead of one per case (writes take `keyed`)."""
    return make_client(tmp_path_factory.mktemp("reads"), **KEYS)


@pytest.mark.parametrize("method,path,body", WRITES)
def test_writes_need_a_write_key(keyed, method, path, body):
    missing = call(keyed, method, path, body)
    assert missing.status_code == 401 and "missing API key" in missing.json()["detail"]
    assert missing.headers["www-authenticate"] == "Bearer"
    assert call(keyed, method, path, body, key="wrong-key-0123456789abcdef").status_code == 401
    assert call(keyed, method, path, body, key=WRITE_KEY[:-1]).status_code == 401  # a prefix is not the key
    read_only = call(keyed, method, path, body, key=READ_KEY)
    assert read_only.status_code == 403 and "read-only" in read_only.json()["detail"]
    assert call(keyed, method, path, body, key=OTHER_WRITE_KEY).status_code == 200
    assert call(keyed, method, path, body, key=WRITE_KEY, bearer=True).status_code == 200


@pytest.mark.parametrize("method,path,body", READS)
def test_reads_need_a_read_or_write_key_when_read_keys_exist(keyed_reads, method, path, body):
    assert call(keyed_reads, method, path, body).status_code == 401
    assert call(keyed_reads, method, path, body, key="nope-0123456789abcdefgh").status_code == 401
    assert call(keyed_reads, method, path, body, key=READ_KEY).status_code == 200
    assert call(keyed_reads, method, path, body, key=READ_KEY, bearer=True).status_code == 200
    assert call(keyed_reads, method, path, body, key=WRITE_KEY).status_code == 200


def test_rejected_writes_change_nothing(keyed):
    before = call(keyed, "GET", "/stats", None, key=WRITE_KEY).json()["events_stored"]
    call(keyed, "POST", "/events", {**EVENT, "item_id": "i9"}, key=READ_KEY)
    call(keyed, "DELETE", "/users/u1", None)
    assert call(keyed, "GET", "/stats", None, key=WRITE_KEY).json()["events_stored"] == before


def test_health_and_docs_stay_open(keyed_reads):
    assert keyed_reads.get("/health").status_code == 200
    schema = keyed_reads.get("/openapi.json").json()
    assert {"APIKeyHeader", "HTTPBearer"} <= set(schema["components"]["securitySchemes"])


def test_only_write_keys_leaves_catalogue_reads_open_but_not_personal_ones(tmp_path):
    client = make_client(tmp_path, api_keys=(WRITE_KEY,))
    assert client.get("/items/i1/similar").status_code == 200
    assert client.get("/users/u1/recommendations").status_code == 401  # tests/privacy/test_personal_routes.py
    assert client.post("/events", json=EVENT).status_code == 401


def test_no_keys_is_open(tmp_path):
    client = make_client(tmp_path)
    for method, path, body in WRITES + READS:
        assert call(client, method, path, body).status_code in (200, 404), path


def test_keys_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PULSEREC_API_KEYS", f" {WRITE_KEY} ,{OTHER_WRITE_KEY},")
    monkeypatch.setenv("PULSEREC_READ_KEYS", READ_KEY)
    settings = Settings.load(tmp_path)
    assert settings.api_keys == (WRITE_KEY, OTHER_WRITE_KEY) and settings.read_keys == (READ_KEY,)
    assert WRITE_KEY not in repr(settings)


@pytest.mark.parametrize("overrides,message", [
    ({"read_keys": (READ_KEY,)}, "read_keys need api_keys"),
    ({"api_keys": ("short",)}, "at least 16"),
    ({"api_keys": ("é" * 20,)}, "printable ASCII"),
])
def test_bad_key_settings_are_refused(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        Settings.load(tmp_path, **overrides)


def test_key_comparison_is_exact():
    assert auth.key_matches(WRITE_KEY, (READ_KEY, WRITE_KEY))
    assert not auth.key_matches(WRITE_KEY + "x", (WRITE_KEY,))
    assert not auth.key_matches("", (WRITE_KEY,))
    assert not auth.key_matches("\ud800 odd", (WRITE_KEY,))  # any string compares without raising


def test_cors_is_off_by_default_and_opt_in(tmp_path):
    preflight = {"origin": "https://shop.example", "access-control-request-method": "POST",
                 "access-control-request-headers": "x-api-key"}
    closed = make_client(tmp_path / "a")
    assert "access-control-allow-origin" not in closed.get("/health", headers={"origin": "https://shop.example"}).headers
    assert "access-control-allow-origin" not in closed.options("/events", headers=preflight).headers
    opened = make_client(tmp_path / "b", cors_origins=("https://shop.example",))
    answer = opened.options("/events", headers=preflight)
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "https://shop.example"
    assert "x-api-key" in answer.headers["access-control-allow-headers"].lower()
    other = opened.options("/events", headers={**preflight, "origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("host,keys,warns", [
    ("127.0.0.1", (), False), ("localhost", (), False), ("::1", (), False),
    ("0.0.0.0", (), True), ("10.1.2.3", (), True), ("api.example.com", (), True),
    ("0.0.0.0", (WRITE_KEY,), False),
])
def test_serve_warns_when_exposed_without_keys(tmp_path, host, keys, warns):
    settings = Settings.load(tmp_path, api_keys=keys or None)
    assert (auth.exposure_warning(host, settings) is not None) is warns


@pytest.mark.parametrize("path", ["/users/u1/recommendations?n=2&n=3", "/apps/default/users/u1/profile?x=1&x=2"])
def test_the_key_is_checked_before_the_query_string(tmp_path, path):
    """One router dependency runs both checks (serving/mounting.py:route_checks): the access check
    first, so a caller without a key learns nothing about the query it sent."""
    client = make_client(tmp_path, api_keys=[WRITE_KEY])
    assert client.get(path).status_code == 401
    answer = client.get(path, headers={"x-api-key": WRITE_KEY})
    assert answer.status_code == 422 and "given 2 times" in answer.json()["errors"][0]["message"]
