"""The dashboard's data routes over HTTP: history, lists, item activity, config, session; with keys."""

from __future__ import annotations

import httpx
import pytest

from pulserec.config import Settings

ADMIN, READER = "admin-key-0123456789abcdef", "read-key-0123456789abcdef"
SECRET_URL = "redis://user:hunter2-secret@127.0.0.1:6379/0"


#: The keys of this module's servers (`settings` for the tests that write, `read_server` for the rest).
SERVER_SETTINGS = {"api_keys": (ADMIN,), "read_keys": (READER,)}


@pytest.fixture
def settings(tmp_path):
    return Settings.load(tmp_path / "data", **SERVER_SETTINGS)


def get(server, path, key=READER, **params):
    return httpx.get(f"{server.url}{path}", params=params, headers={"x-api-key": key} if key else {})


def test_history_lists_and_item_activity(server, engine, fill, shop):
    fill(engine)
    history = get(server, "/dashboard/api/history", days=2).json()
    assert history["bucket"] == "hour" and len(history["series"]) in (48, 49)
    assert history["series"][-1]["events"] > 0 and "view" in history["types"]
    daily = get(server, "/dashboard/api/history", days=90, bucket="day").json()
    assert sum(p["events"] for p in daily["series"]) <= len(shop.events) and len(daily["series"]) in (90, 91)
    page = get(server, "/dashboard/api/users", sort="events", order="desc", page=2, per_page=5).json()
    assert page["total"] == shop.events["user_id"].nunique() and len(page["rows"]) == 5 and page["offset"] == 5
    assert page["pseudonymous"] is False
    counts = [r["events"] for r in get(server, "/dashboard/api/users", per_page=200).json()["rows"]]
    assert counts == sorted(counts, reverse=True)
    items = get(server, "/dashboard/api/items", sort="title", order="asc", per_page=10).json()
    titles = [r["title"] for r in items["rows"]]
    assert titles == sorted(titles) and items["total"] >= len(shop.items)
    top = get(server, "/dashboard/api/items", per_page=1).json()["rows"][0]
    activity = get(server, f"/dashboard/api/items/{top['item_id']}/activity", recent=5).json()
    assert sum(p["events"] for p in activity["series"]) == top["events"] and len(activity["recent"]) == 5


@pytest.mark.parametrize("path, params", [
    ("/dashboard/api/history", {"days": 91}), ("/dashboard/api/history", {"bucket": "week"}),
    ("/dashboard/api/history", {"days": 0}), ("/dashboard/api/users", {"sort": "password"}),
    ("/dashboard/api/users", {"page": 0}), ("/dashboard/api/items", {"per_page": 201}),
    ("/dashboard/api/items", {"order": "sideways"}), ("/dashboard/api/items/x/activity", {"recent": 0}),
])
def test_bad_parameters_are_422_naming_the_field(read_server, path, params):
    server, _ = read_server
    answer = get(server, path, **params)
    assert answer.status_code == 422 and next(iter(params)) in answer.text


def test_unknown_item_is_404(read_server):
    server, _ = read_server
    answer = get(server, "/dashboard/api/items/nothing-here/activity")
    assert answer.status_code == 404 and "nothing-here" in answer.json()["detail"]


def test_personal_lists_need_a_key(read_server):
    server, _ = read_server
    assert get(server, "/dashboard/api/users", key=None).status_code == 401
    assert get(server, "/dashboard/api/items/x/activity", key=None).status_code == 401


def test_config_is_for_admins_and_redacts_secrets(tmp_path):
    from pulserec.engine import Engine
    from pulserec.serving.server import BackgroundServer

    settings = Settings.load(tmp_path / "d2", api_keys=(ADMIN,), read_keys=(READER,), max_jobs=3)
    engine = Engine(settings)
    try:
        with BackgroundServer(engine) as server:
            assert get(server, "/dashboard/api/config").status_code == 403  # a read key
            rows = {r["name"]: r for r in get(server, "/dashboard/api/config", key=ADMIN).json()["settings"]}
            text = get(server, "/dashboard/api/config", key=ADMIN).text
    finally:
        engine.close()
    assert ADMIN not in text and READER not in text
    assert rows["api_keys"] == {"name": "api_keys", "value": "<redacted> (1 set)", "secret": True, "default": False}
    assert rows["max_jobs"]["value"] == 3 and not rows["max_jobs"]["default"]
    assert rows["cooc_window"]["default"] and rows["data_dir"]["value"] == str(tmp_path / "d2")


def test_a_password_in_a_url_is_redacted():
    from pulserec.serving.config_view import effective_config, redact_url

    assert redact_url(SECRET_URL) == "redis://user:<redacted>@127.0.0.1:6379/0"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    rows = {r["name"]: r for r in effective_config(Settings(state_url=SECRET_URL))}
    assert "hunter2" not in str(rows) and rows["state_url"]["value"].startswith("redis://user:<redacted>@")


def test_session_says_what_the_key_may_do(read_server):
    server, _ = read_server
    assert get(server, "/dashboard/api/session", key=ADMIN).json() == {"role": "admin", "keys_required": True}
    assert get(server, "/dashboard/api/session").json()["role"] == "read"
    assert get(server, "/dashboard/api/session", key=None).json()["role"] == "none"
    assert get(server, "/dashboard/api/session", key="wrong-key").json()["role"] == "none"


def test_with_pseudonyms_the_user_list_shows_pseudonyms_and_says_so(tmp_path, monkeypatch):
    from pulserec.engine import Engine
    from pulserec.ingest.schemas import EventIn
    from pulserec.serving.server import BackgroundServer

    monkeypatch.setenv("PULSEREC_PSEUDONYM_KEY", "k" * 40)
    engine = Engine(Settings.load(tmp_path / "p", pseudonymize_users=True))
    try:
        engine.ingest([EventIn(user_id="alice", item_id="i1", type="view").to_event()])
        with BackgroundServer(engine) as server:
            page = get(server, "/dashboard/api/users", key=None).json()
    finally:
        engine.close()
    assert page["pseudonymous"] is True and page["total"] == 1
    assert page["rows"][0]["user_id"] != "alice" and "alice" not in str(page)
