"""Apps (tenants, issue 15.5) over real HTTP: one uvicorn server, three apps (default, a, b).

The walk over the OpenAPI document covers every route, also those added later: each route exists
under `/apps/{app}`, and no GET of one app shows a marker of another app's data."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import httpx
import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.serving.server import BackgroundServer

#: Ids, a title and an attribute only app `a` holds: no answer of another app may contain one
#: (unless it echoes the request's own path, as "no item 'sku-of-a'" does).
MARKERS = ("alice-of-a", "sku-of-a", "Title-Of-A", "sess-of-a", "tier-of-a")
KEY_A = "key-of-app-a-0123456789"
KEY_B = "key-of-app-b-0123456789"
SERVER_KEY = "server-admin-key-0123456789"

#: Opening an app builds its engine (and closing one writes its snapshot): seconds on a loaded box.
HTTP = httpx.Client(timeout=60.0)

#: Path parameters by name for the walk (a's ids, so that leaks would show); others get "x".
PARAMS = {"user_id": "alice-of-a", "item_id": "sku-of-a", "session_id": "sess-of-a", "path": "report.html",
          "page": "users", "name": "als", "job_id": "0123abcd"}


def seed_a(url: str) -> None:
    headers = {"x-api-key": KEY_A}
    assert HTTP.put(f"{url}/apps/a/items/sku-of-a", json={"title": "Title-Of-A", "category": "c"},
                     headers=headers).status_code == 200
    assert HTTP.put(f"{url}/apps/a/items/sku-2", json={"title": "Other", "category": "c"}, headers=headers).status_code == 200
    events = [{"user_id": "alice-of-a", "item_id": item, "type": "view"} for item in ("sku-of-a", "sku-2")]
    events.append({"session_id": "sess-of-a", "item_id": "sku-of-a", "type": "view"})
    assert HTTP.post(f"{url}/apps/a/events", json={"events": events}, headers=headers).json()["accepted"] == 3
    assert HTTP.put(f"{url}/apps/a/users/alice-of-a", json={"attrs": {"tier": "tier-of-a"}}, headers=headers).status_code < 300
    assert HTTP.get(f"{url}/apps/a/dashboard/api/search", params={"q": "alice"}, headers=headers).json()["users"]


@pytest.fixture(scope="module")
def three_apps(tmp_path_factory):
    data = tmp_path_factory.mktemp("apps") / "data"
    engine = Engine(Settings.load(data, api_keys=(SERVER_KEY,), model_watch_interval=0.0))
    with BackgroundServer(engine) as server:
        admin = {"x-api-key": SERVER_KEY}
        for name, key in (("a", KEY_A), ("b", KEY_B)):
            answer = HTTP.put(f"{server.url}/apps/{name}", json={"api_keys": [key]}, headers=admin)
            assert answer.status_code == 201, answer.text
        seed_a(server.url)
        yield server, data
    engine.close()


def openapi_paths(url: str) -> dict[str, dict]:
    return HTTP.get(f"{url}/openapi.json").json()["paths"]


def filled(template: str) -> str:
    return re.sub(r"\{(\w+)(?::path)?\}", lambda m: PARAMS.get(m.group(1), "x"), template)


def test_every_route_exists_under_an_app(three_apps):
    server, _ = three_apps
    paths = openapi_paths(server.url)
    plain = {p: set(ops) for p, ops in paths.items() if not p.startswith("/apps")}
    for path, methods in plain.items():
        prefixed = paths.get(f"/apps/{{app}}{path}")
        assert prefixed is not None and set(prefixed) == methods, path
        for operation in prefixed.values():
            assert any(p["name"] == "app" and p["in"] == "path" for p in operation["parameters"]), path


def _get_paths(url: str) -> list[str]:
    return sorted(p for p, ops in openapi_paths(url).items() if "get" in ops and not p.startswith("/apps"))


@pytest.fixture(scope="module")
def get_paths(three_apps):
    return _get_paths(three_apps[0].url)


def test_the_walk_covers_every_route_family(get_paths):
    families = {p.split("/")[1] for p in get_paths}
    assert {"users", "items", "sessions", "search", "feedback", "stats", "models", "jobs", "metrics", "dashboard",
            "experiments"} <= families


def test_no_get_route_shows_another_apps_data(three_apps, get_paths):
    """Every GET route, asked of app b (with b's key) and of the default app (the server's key),
    with app a's ids as parameters: no answer holds anything of a's. App a answers them all."""
    server, _ = three_apps
    leaks, failing = [], []
    for template in get_paths:
        path = filled(template)
        query = {"q": "title"} if "search" in template else {}  # the searches need a query (a's item is "Title-Of-A")
        own = HTTP.get(f"{server.url}/apps/a{path}", params=query, headers={"x-api-key": KEY_A})
        if own.status_code >= 500:
            failing.append(f"{template}: {own.status_code}")
        for prefix, key in (("/apps/b", KEY_B), ("", SERVER_KEY)):
            answer = HTTP.get(f"{server.url}{prefix}{path}", params=query, headers={"x-api-key": key})
            if any(marker in answer.text and marker not in path for marker in MARKERS):
                leaks.append(f"{prefix}{template}")
    assert not failing and not leaks, (failing, leaks)
    # The walk can see a's data where it is a's: the markers are there to be found.
    assert "Title-Of-A" in HTTP.get(f"{server.url}/apps/a/items/sku-of-a", headers={"x-api-key": KEY_A}).text
    assert "tier-of-a" in HTTP.get(f"{server.url}/apps/a/users/alice-of-a/profile", headers={"x-api-key": KEY_A}).text
    assert "sku-of-a" in HTTP.get(f"{server.url}/apps/a/search", params={"q": "title"}, headers={"x-api-key": KEY_A}).text
    for prefix, key in (("/apps/b", KEY_B), ("", SERVER_KEY)):  # the routes that echo the id: not found elsewhere
        for path in ("/items/sku-of-a", "/users/alice-of-a/profile"):
            assert HTTP.get(f"{server.url}{prefix}{path}", headers={"x-api-key": key}).status_code == 404


def test_writes_stay_in_their_app(three_apps):
    server, _ = three_apps
    a, b = {"x-api-key": KEY_A}, {"x-api-key": KEY_B}
    before = HTTP.get(f"{server.url}/apps/a/stats", headers=a).json()
    assert HTTP.post(f"{server.url}/apps/b/events", json={"user_id": "alice-of-a", "item_id": "sku-of-a", "type": "view"},
                      headers=b).status_code == 200
    assert HTTP.delete(f"{server.url}/apps/b/users/alice-of-a", headers=b).status_code in (200, 404)
    after = HTTP.get(f"{server.url}/apps/a/stats", headers=a).json()
    assert after["events_stored"] == before["events_stored"] == 3 and after["items"] == 2
    assert HTTP.get(f"{server.url}/apps/a/users/alice-of-a/profile", headers=a).json()["event_count"] == 2
    assert HTTP.get(f"{server.url}/stats", headers={"x-api-key": SERVER_KEY}).json()["events_stored"] == 0


def test_keys_are_per_app(three_apps):
    server, _ = three_apps
    url = f"{server.url}/apps/a/users/alice-of-a/profile"
    assert HTTP.get(url, headers={"x-api-key": KEY_A}).status_code == 200
    for key in (KEY_B, SERVER_KEY):  # another app's key, the server's key: not a's
        answer = HTTP.get(url, headers={"x-api-key": key})
        assert answer.status_code == 401 and answer.json()["detail"] == "invalid API key"
    assert HTTP.get(f"{server.url}/apps", headers={"x-api-key": KEY_A}).status_code == 401  # managing apps: the server's key
    assert HTTP.get(f"{server.url}/apps/a/health").status_code == 200  # public routes stay public


def test_managing_apps_validates_and_names_the_cause(three_apps):
    server, data = three_apps
    admin = {"x-api-key": SERVER_KEY}
    listed = HTTP.get(f"{server.url}/apps", headers=admin).json()
    assert [a["app"] for a in listed["apps"]] == ["default", "a", "b"]
    shown = HTTP.get(f"{server.url}/apps/a", headers=admin).json()
    assert shown["keys"] == {"api_keys": 1, "read_keys": 0} and KEY_A not in str(shown)
    cases = [
        ("PUT", "/apps/Bad!", {"api_keys": [KEY_A]}, 422, None),
        ("PUT", "/apps/c", {}, 422, "api_keys"),  # a server with keys: the app needs its own
        ("PUT", "/apps/c", {"api_keys": [KEY_A], "settings": {"state_url": "redis://x"}}, 422, "not a per-app setting"),
        ("PUT", "/apps/c", {"api_keys": [KEY_A], "settings": {"no_such": 1}}, 422, "not a setting"),
        ("PUT", "/apps/c", {"api_keys": [KEY_A], "settings": {"history_len": "ten"}}, 422, "must be of type int"),
        ("PUT", "/apps/c", {"api_keys": [KEY_A], "settings": {"max_n": 0}}, 422, "max_n"),
        ("PUT", "/apps/c", {"api_keys": ["short"]}, 422, "at least 16"),
        ("PUT", "/apps/default", {"api_keys": [KEY_A]}, 422, "default app"),
        ("DELETE", "/apps/default", None, 422, "cannot be deleted"),
        ("DELETE", "/apps/nope", None, 404, "no app 'nope'"),
        ("GET", "/apps/nope/stats", None, 404, "PUT /apps/nope"),
        ("GET", "/apps/Bad!/stats", None, 422, None),
    ]
    for method, path, body, status, cause in cases:
        answer = HTTP.request(method, f"{server.url}{path}", json=body, headers=admin)
        assert answer.status_code == status, (method, path, answer.text)
        assert cause is None or cause in answer.text, (path, answer.text)
    assert not (data / "apps" / "c").exists()


def test_settings_are_per_app_and_apply_when_reopened(three_apps):
    server, data = three_apps
    admin, b = {"x-api-key": SERVER_KEY}, {"x-api-key": KEY_B}
    answer = HTTP.put(f"{server.url}/apps/b", json={"api_keys": [KEY_B], "settings": {"max_n": 3}}, headers=admin)
    assert answer.status_code == 200 and answer.json()["settings"] == {"max_n": 3}
    assert (data / "apps" / "b" / "app.json").stat().st_mode & 0o077 == 0  # it holds keys
    refused = HTTP.get(f"{server.url}/apps/b/users/u/recommendations", params={"n": 4}, headers=b)
    assert refused.status_code == 422 and "max_n" in refused.text
    assert HTTP.get(f"{server.url}/users/u/recommendations", params={"n": 4},
                     headers={"x-api-key": SERVER_KEY}).status_code == 200


def test_open_apps_are_bounded_and_reopen_with_their_data(tmp_path):
    engine = Engine(Settings.load(tmp_path / "data", max_open_apps=1, model_watch_interval=0.0))
    try:
        with BackgroundServer(engine) as server:
            for name in ("x", "y"):
                assert HTTP.put(f"{server.url}/apps/{name}", json={}).status_code == 201
                assert HTTP.post(f"{server.url}/apps/{name}/events",
                                  json={"user_id": f"u-{name}", "item_id": "i", "type": "view"}).status_code == 200
            assert HTTP.get(f"{server.url}/apps").json()["apps"][1:] == [
                {"app": "x", "open": False, "prefix": "/apps/x"}, {"app": "y", "open": True, "prefix": "/apps/y"}]
            profile = HTTP.get(f"{server.url}/apps/x/users/u-x/profile").json()  # reopened: y is closed for it
            assert profile["event_count"] == 1
            assert HTTP.get(f"{server.url}/apps/x/users/u-y/profile").status_code == 404
            assert HTTP.delete(f"{server.url}/apps/x").json() == {"deleted": "x"}
            assert not (tmp_path / "data" / "apps" / "x").exists()
            assert HTTP.get(f"{server.url}/apps/x/stats").status_code == 404
    finally:
        engine.close()


def test_the_python_client_takes_an_app(three_apps):
    from pulserec.client import Client, PulserecError

    server, _ = three_apps
    with Client(server.url, api_key=SERVER_KEY) as admin:
        assert "a" in [a["app"] for a in admin.list_apps()["apps"]]
        assert admin.get_app("a")["prefix"] == "/apps/a"
        assert admin.put_app("c", api_keys=["key-of-app-c-0123456789"])["app"] == "c"
    with Client(server.url, app="a", api_key=KEY_A) as a:
        assert a.profile("alice-of-a")["attrs"] == {"tier": "tier-of-a"}
    with Client(server.url, app="c", api_key="key-of-app-c-0123456789") as c:
        c.put_items([{"item_id": "c1", "title": "C"}])
        assert c.stats()["items"] == 1
        with pytest.raises(PulserecError) as missing:
            c.profile("alice-of-a")
        assert missing.value.status == 404
    with Client(server.url, api_key=SERVER_KEY) as admin:
        assert admin.delete_app("c") == {"deleted": "c"}


def teardown_module() -> None:
    HTTP.close()


def test_an_open_app_is_leased_on_the_loop_and_opened_or_closed_in_the_pool(tmp_path):
    """`app_scope` is async: an open app's lease is a dict lookup on the event loop (no thread
    hop per request); opening the app and closing it after a settings change run in the pool."""
    engine = Engine(Settings.load(tmp_path / "data", model_watch_interval=0.0))
    try:
        with BackgroundServer(engine) as server:
            apps = server.server.config.app.state.apps
            calls: list[tuple[str, str]] = []
            for name in ("acquire_open", "acquire", "close_released"):
                method = getattr(apps, name)
                setattr(apps, name, lambda *a, _m=method, _n=name: (calls.append((_n, threading.current_thread().name)),
                                                                    _m(*a))[1])
            assert HTTP.put(f"{server.url}/apps/z", json={}).status_code == 201
            event = {"user_id": "u", "item_id": "i", "type": "view"}
            assert HTTP.post(f"{server.url}/apps/z/events", json=event).status_code == 200  # opens z
            for _ in range(3):
                assert HTTP.post(f"{server.url}/apps/z/events", json=event).status_code == 200
            loop = server.thread.name
            assert calls[0] == ("acquire_open", loop) and calls[1][0] == "acquire" and calls[1][1] != loop
            assert calls[-3:] == [("acquire_open", loop)] * 3  # open: leased on the loop
            calls.clear()
            assert HTTP.put(f"{server.url}/apps/z", json={"settings": {"max_n": 3}}).status_code == 200
            assert HTTP.get(f"{server.url}/apps/z/users/u/recommendations", params={"n": 4}).status_code == 422
            assert HTTP.get(f"{server.url}/apps/z/users/u/profile").json()["event_count"] == 4
            assert HTTP.get(f"{server.url}/apps/nope/stats").status_code == 404
            assert HTTP.get(f"{server.url}/apps/BAD!/stats").status_code in (404, 422)
    finally:
        engine.close()
