"""Hostile and malformed input: always a clear 4xx, never a 5xx, nothing stored.

Each case here was a 5xx, a silent coercion or an unbounded input before issue 7."""

from __future__ import annotations

import socket

import pytest
from fastapi.testclient import TestClient

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.serving.app import create_app
from pulserec.serving.server import BackgroundServer

JSON = {"content-type": "application/json"}
DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture
def api(engine):
    return TestClient(create_app(engine), raise_server_exceptions=False)


@pytest.mark.parametrize("method,path,body,status,needle", [
    ("POST", "/events", DEEP, 400, "nested too deeply"),
    ("POST", "/events", b'{"events": ' + DEEP + b"}", 400, "nested too deeply"),
    ("POST", "/items", b'{"items": ' + DEEP + b"}", 400, "parsing the body"),
    ("PUT", "/users/u1", b'{"attrs": ' + DEEP + b"}", 400, "parsing the body"),
    # A lone surrogate (a JSON escape) cannot be stored or sent back as UTF-8.
    ("PUT", "/users/u1", b'{"attrs": {"\\ud800": 1}}', 422, "valid Unicode"),
    ("PUT", "/items/i1", b'{"attrs": {"\\udc00k": "v"}}', 422, "valid Unicode"),
    ("POST", "/events", b'{"user_id": "\\ud800", "item_id": "a", "type": "view"}', 422, "unicode"),
    ("POST", "/events", b'{"user_id": "u", "item_id": "a", "type": "view", "context": {"\\ud800": 1}}', 422, "unicode"),
    # The wrapper must hold a list, as documented.
    ("POST", "/events", b'{"events": {"user_id": "u", "item_id": "a", "type": "view"}}', 422, "list of events"),
    ("POST", "/events", b'{"events": null}', 422, "list of events"),
    # JSON types as documented: no strings for numbers, no numbers for booleans.
    ("POST", "/events", b'{"user_id": "u", "item_id": "a", "type": "view", "value": "1.5"}', 422, "value"),
    ("PUT", "/items/i1", b'{"active": 0}', 422, "active"),
    ("PUT", "/items/i1", b'{"price": "9.5"}', 422, "price"),
    ("POST", "/events", b'{"user_id": "u", "item_id": "a", "type": "view", "value": NaN}', 422, "value"),
    ("PUT", "/items/i1", b'{"attrs": {"a": Infinity}}', 422, "finite"),
    ("POST", "/events", b'{"user_id": "' + b"u" * 129 + b'", "item_id": "a", "type": "view"}', 422, "user_id"),
    ("PUT", "/items/" + "i" * 129, b"{}", 422, "item_id"),
])
def test_malformed_input_is_a_clear_4xx_and_stores_nothing(api, engine, method, path, body, status, needle):
    answer = api.request(method, path, content=body, headers=JSON)
    assert answer.status_code == status, answer.text
    assert needle.lower() in answer.json()["detail"].lower()
    assert engine.store.event_count() == 0 and engine.store.user_count() == 0 and not engine.store.load_items()


def test_iso_timestamps_still_parse(api):
    answer = api.post("/events", json={"user_id": "u", "item_id": "a", "type": "view", "timestamp": "2024-05-01T10:00:00Z"})
    assert answer.status_code == 200
    assert api.put("/items/i1", json={"created_at": "2024-05-01T10:00:00+02:00"}).status_code == 200


@pytest.mark.parametrize("method,path,allowed", [
    ("POST", "/items/i1", "GET, PUT"),
    ("PATCH", "/users/u1", "DELETE, PUT"),
    ("DELETE", "/events", "POST"),
])
def test_wrong_method_lists_every_allowed_one(api, method, path, allowed):
    answer = api.request(method, path)
    assert answer.status_code == 405 and answer.headers["allow"] == allowed


@pytest.mark.parametrize("n", ["0", "501", "-1", "1e3", "ten"])
def test_result_count_is_bounded(api, n):
    assert api.get(f"/users/u1/recommendations?n={n}").status_code == 422


def test_query_strings_are_bounded(api):
    assert api.get("/users/u1/recommendations", params={"exclude": "x," * 4097}).status_code == 422
    assert api.get("/users/u1/recommendations", params={"strategy": "s" * 65}).status_code == 422
    assert api.get("/users/u1/recommendations", params={"min_price": "nan"}).status_code == 422


def test_chunked_body_over_the_limit_is_cut_off(tmp_path):
    """No Content-Length: the limit is enforced while reading, on a real socket."""
    engine = Engine(Settings.load(tmp_path, max_body_bytes=10_000))
    with BackgroundServer(engine) as server, socket.create_connection((server.host, server.port), timeout=10) as sock:
        chunk = b"x" * 4096
        head = (b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5)) + b"0\r\n\r\n"
        sock.sendall(head + body)
        reply = sock.recv(4096)
    engine.close()
    assert reply.startswith(b"HTTP/1.1 413"), reply[:80]
