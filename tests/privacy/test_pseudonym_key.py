"""Pseudonymisation that the data dir alone cannot undo: the key lives elsewhere, sessions are
pseudonymised too, and the access log of a real `pulserec serve` shows pseudonyms only."""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.serving.access_log import redact_path
from pulserec.runtime.process import ServerProcess
from pulserec.store.pseudonym import KEY_ENV, LEGACY_KEY_FILE, Pseudonymizer, PseudonymKeyError

USER = "alice.pseudo@example.com"
SESSION = "sess-4f9a-secret"
LOCATION = "Hauptstrasse-12-Berlin"


def raw_forms(*ids: str) -> list[bytes]:
    """Every way an id could be written down: as is and URL-quoted."""
    return sorted({form.encode() for i in ids for form in (i, quote(i, safe=""), quote(i))})


def files_containing(root: Path, needles: list[bytes]) -> dict[str, list[bytes]]:
    found = {}
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits = [n for n in needles if n in data]
            if hits:
                found[str(path.relative_to(root))] = hits
    return found


@pytest.fixture(autouse=True)
def no_key_in_env(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv("PULSEREC_PSEUDONYM_KEY_FILE", raising=False)


def test_without_a_key_pseudonymisation_refuses_to_start(tmp_path):
    with pytest.raises(PseudonymKeyError, match=KEY_ENV):
        Engine(Settings.load(tmp_path / "data", pseudonymize_users=True))
    assert not (tmp_path / "data" / LEGACY_KEY_FILE).exists()  # no key invented beside the data


def test_a_key_file_inside_the_data_dir_is_refused(tmp_path):
    data = tmp_path / "data"
    for inside in (data / "pseudonym.key", data / "keys" / "k"):
        with pytest.raises(PseudonymKeyError, match="inside the data dir"):
            Pseudonymizer.from_settings(Settings.load(data, pseudonymize_users=True, pseudonym_key_file=str(inside)))


def test_key_file_outside_is_created_private_and_stable(tmp_path):
    key_file = tmp_path / "secrets" / "pseudonym.key"
    settings = Settings.load(tmp_path / "data", pseudonymize_users=True, pseudonym_key_file=str(key_file))
    first = Pseudonymizer.from_settings(settings)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_bytes()) == 32
    assert Pseudonymizer.from_settings(settings)(USER) == first(USER)
    assert first(USER) != first.session(USER)  # user and session ids never share a pseudonym


def test_key_from_the_environment_wins_and_must_be_long(tmp_path, monkeypatch):
    settings = Settings.load(tmp_path / "data", pseudonymize_users=True, pseudonym_key_file=str(tmp_path / "k"))
    monkeypatch.setenv(KEY_ENV, "x" * 31)
    with pytest.raises(PseudonymKeyError, match="at least 32"):
        Pseudonymizer.from_settings(settings)
    monkeypatch.setenv(KEY_ENV, "a-long-secret-pseudonym-key-0123456789")
    assert Pseudonymizer.from_settings(settings)(USER) == Pseudonymizer(b"a-long-secret-pseudonym-key-0123456789")(USER)
    assert not (tmp_path / "k").exists()


def test_a_legacy_key_in_the_data_dir_still_works_with_a_warning(tmp_path, caplog):
    data = tmp_path / "data"
    data.mkdir()
    (data / LEGACY_KEY_FILE).write_bytes(b"k" * 32)
    with caplog.at_level(logging.WARNING, logger="pulserec.store.pseudonym"):
        pseudonym = Pseudonymizer.from_settings(Settings.load(data, pseudonymize_users=True))
    assert pseudonym(USER) == Pseudonymizer(b"k" * 32)(USER)
    assert "inside the data dir" in caplog.text


def test_sessions_are_stored_under_pseudonyms_and_still_served(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "b" * 40)
    engine = Engine(Settings.load(tmp_path / "data", pseudonymize_users=True))
    try:
        engine.ingest([Event("e1", None, "i1", "view", 100.0, session_id=SESSION),
                       Event("e2", None, "i2", "view", 101.0, session_id=SESSION)])
        assert engine.recommend_session(SESSION, 5).history_size == 2
        engine.ingest([Event("e3", USER, "i3", "view", 102.0, session_id=SESSION)])  # login merges the session
        assert engine.profile(USER)["event_count"] == 3
    finally:
        engine.close()
    assert files_containing(tmp_path / "data", raw_forms(USER, SESSION)) == {}


def test_redact_path_pseudonymises_ids_and_drops_personal_query_values():
    pseudonym = Pseudonymizer(b"c" * 32)
    line = redact_path(f"/users/{quote(USER)}/recommendations?n=5&location={LOCATION}&strategy=als", pseudonym)
    assert line == f"/users/{pseudonym(USER)}/recommendations?n=5&location=-&strategy=als"
    assert redact_path(f"/sessions/{SESSION}/recommendations", pseudonym) == f"/sessions/{pseudonym.session(SESSION)}/recommendations"
    assert redact_path(f"/dashboard/api/search?q={quote(USER)}&limit=8", pseudonym) == "/dashboard/api/search?q=-&limit=8"
    assert redact_path("/items/sku-1/similar?n=3", pseudonym) == "/items/sku-1/similar?n=3"


def test_no_raw_id_in_the_data_dir_or_the_access_log_of_a_real_server(tmp_path):
    data, log = tmp_path / "data", tmp_path / "logs" / "server.log"
    env = {"PULSEREC_PSEUDONYMIZE_USERS": "1", "PULSEREC_PSEUDONYM_KEY_FILE": str(tmp_path / "secrets" / "key")}
    with ServerProcess(data, env=env, log_path=log, log_level="info") as server, httpx.Client(base_url=server.url) as http:
        assert http.put(f"/users/{quote(USER)}", json={"attrs": {"plan": "pro"}}).status_code == 200
        anonymous = {"item_id": "i1", "type": "view", "session_id": SESSION, "context": {"location": LOCATION}}
        assert http.post("/events", json=[anonymous, {**anonymous, "item_id": "i2"}]).status_code == 200
        assert http.get(f"/sessions/{SESSION}/recommendations").status_code == 200
        login = {"user_id": USER, "session_id": SESSION, "item_id": "i3", "type": "click"}
        assert http.post("/events", json=login).status_code == 200
        assert http.get(f"/users/{quote(USER)}/profile").json()["event_count"] == 3
        shown = http.get(f"/users/{quote(USER)}/recommendations", params={"n": 3, "location": LOCATION}).json()
        impression = {"recommendation_id": shown["recommendation_id"], "user_id": USER, "session_id": SESSION}
        assert http.post("/impressions", json=impression).status_code == 200
        assert http.get("/dashboard/api/search", params={"q": USER}).json()["users"] == [{"user_id": USER, "event_count": 3}]
    text = log.read_text()
    assert f"PUT /users/{Pseudonymizer.from_settings(Settings.load(data, **_settings(env)))(USER)}" in text  # the log is on
    assert [form for form in raw_forms(USER, SESSION, LOCATION) if form.decode() in text] == []
    assert files_containing(data, raw_forms(USER, SESSION)) == {}
    assert not (data / LEGACY_KEY_FILE).exists()


def _settings(env: dict[str, str]) -> dict[str, object]:
    return {"pseudonymize_users": True, "pseudonym_key_file": env["PULSEREC_PSEUDONYM_KEY_FILE"]}
