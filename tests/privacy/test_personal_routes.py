"""Routes that reveal a person need a key as soon as any key is configured; a real server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.routing import APIRoute

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.serving import auth
from pulserec.serving.server import BackgroundServer

WRITE_KEY = "write-key-0123456789abcdef"
READ_KEY = "read-key-0123456789abcdef"

#: GET routes that reveal something about a person (the issue's list, and recommendations,
#: whose reasons name the items a user touched).
PERSONAL = ["/users/u1/profile", "/users/u1/recommendations", "/sessions/s1/recommendations", "/search?q=u1", "/dashboard/api/search?q=u1",
            "/feedback", "/experiments", "/experiments/exp", "/dashboard/api/overview", "/metrics"]
CATALOGUE = ["/items/i1", "/items/i1/similar", "/models", "/reports/metrics.json"]
PUBLIC = ["/health", "/dashboard", "/dashboard/users/u1", "/dashboard/items/i1", "/docs", "/openapi.json"]


def serve(tmp_path, **settings: object) -> Iterator[httpx.Client]:
    data = tmp_path / "data"
    (data / "reports").mkdir(parents=True)
    (data / "reports" / "metrics.json").write_text("{}")
    engine = Engine(Settings.load(data, **settings))
    headers = {"x-api-key": WRITE_KEY}
    with BackgroundServer(engine) as server, httpx.Client(base_url=server.url) as http:
        http.post("/events", json={"user_id": "u1", "session_id": "s1", "item_id": "i1", "type": "view"}, headers=headers)
        variants = [{"name": "A", "strategy": "popular", "weight": 1}, {"name": "B", "strategy": "default", "weight": 1}]
        assert http.put("/experiments/exp", json={"variants": variants}, headers=headers).status_code == 200
        yield http
    engine.close()


@pytest.fixture
def write_keys_only(tmp_path):
    yield from serve(tmp_path, api_keys=(WRITE_KEY,))


@pytest.fixture
def read_keys_too(tmp_path):
    yield from serve(tmp_path, api_keys=(WRITE_KEY,), read_keys=(READ_KEY,))


@pytest.mark.parametrize("path", PERSONAL)
def test_personal_reads_need_a_key_once_any_key_exists(write_keys_only, path):
    missing = write_keys_only.get(path)
    assert missing.status_code == 401 and "personal data" in missing.json()["detail"]
    assert write_keys_only.get(path, headers={"x-api-key": "wrong-key-0123456789abcdef"}).status_code == 401
    assert write_keys_only.get(path, headers={"x-api-key": WRITE_KEY}).status_code == 200


@pytest.mark.parametrize("path", PERSONAL + CATALOGUE)
def test_with_read_keys_every_read_takes_a_read_key(read_keys_too, path):
    assert read_keys_too.get(path).status_code == 401
    assert read_keys_too.get(path, headers={"authorization": f"Bearer {READ_KEY}"}).status_code == 200


def test_catalogue_reads_stay_open_with_write_keys_only(write_keys_only):
    for path in CATALOGUE:
        assert write_keys_only.get(path).status_code == 200, path


def test_public_routes_need_no_key(read_keys_too):
    for path in PUBLIC:
        assert read_keys_too.get(path).status_code == 200, path


def test_metrics_can_be_made_public_by_a_setting(tmp_path):
    for http in serve(tmp_path, api_keys=(WRITE_KEY,), public_metrics=True):
        assert http.get("/metrics").status_code == 200
        assert http.get("/users/u1/profile").status_code == 401
        schema = http.get("/openapi.json").json()
        assert "security" not in schema["paths"]["/metrics"]["get"]
        assert "security" in schema["paths"]["/users/{user_id}/profile"]["get"]


def test_every_get_route_is_classified_and_unknown_ones_are_personal(tmp_path):
    """A new GET route nobody classified falls into the strictest read class."""
    engine = Engine(Settings.load(tmp_path / "data", api_keys=(WRITE_KEY,)))
    from pulserec.serving.app import create_app

    app = create_app(engine)
    lighter = auth.PUBLIC_PATHS | auth.CATALOGUE_PATHS | auth.ADMIN_READ_PATHS
    routes = {r.path for r in api_routes(app.routes) if "GET" in r.methods}
    assert lighter - routes == set(), "a classified path that no longer exists"
    for path in routes - lighter:
        assert auth.access_of("GET", path, engine.settings) is auth.check_personal, path
    assert auth.access_of("GET", "/some/new/route", engine.settings) is auth.check_personal
    assert auth.access_of("POST", "/items/{item_id}", engine.settings) is auth.check_write
    engine.close()


def api_routes(routes) -> Iterator[APIRoute]:
    """Every APIRoute, also inside included routers (no router here has a prefix)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)


@pytest.mark.parametrize("host,keys,warns", [
    ("127.0.0.1", (), False), ("::1", (), False), ("0.0.0.0", (), True), ("10.1.2.3", (), True),
    ("0.0.0.0", (WRITE_KEY,), False),  # any key protects the personal reads
])
def test_serve_warns_when_personal_data_would_be_readable_from_other_hosts(tmp_path, host, keys, warns):
    warning = auth.exposure_warning(host, Settings.load(tmp_path, api_keys=keys or None))
    assert (warning is not None) is warns
    if warns:
        assert "profile" in warning
