"""Hostile and malformed input: always a clear 4xx, never a 5xx, nothing stored.

Each case here was a 5xx, a silent coercion or an unbounded input before issue 7."""

from __future__ import annotations

import re
import socket

import pytest
from fastapi.testclient import TestClient

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.serving.app import create_app
from pulserec.serving.errors import BAD_ID
from pulserec.serving.server import BackgroundServer
from pulserec.validation import ID_PATTERN

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
def test_malformed_input_is_a_clear_4xx_and_stores_nothing(refusing_api, refusing_engine, method, path, body, status,
                                                            needle):
    answer = refusing_api.request(method, path, content=body, headers=JSON)
    assert answer.status_code == status, answer.text
    assert needle.lower() in answer.json()["detail"].lower()
    store = refusing_engine.store
    assert store.event_count() == 0 and store.user_count() == 0 and not store.load_items()


def test_iso_timestamps_still_parse(api):
    answer = api.post("/events", json={"user_id": "u", "item_id": "a", "type": "view", "timestamp": "2024-05-01T10:00:00Z"})
    assert answer.status_code == 200
    assert api.put("/items/i1", json={"created_at": "2024-05-01T10:00:00+02:00"}).status_code == 200


@pytest.mark.parametrize("method,path,allowed", [
    ("POST", "/items/i1", "GET, PUT"),
    ("PATCH", "/users/u1", "DELETE, PUT"),
    ("DELETE", "/events", "POST"),
])
def test_wrong_method_lists_every_allowed_one(refusing_api, method, path, allowed):
    answer = refusing_api.request(method, path)
    assert answer.status_code == 405 and answer.headers["allow"] == allowed


def test_every_documented_path_lists_its_documented_methods_in_allow(api):
    """Plain and under `/apps/{app}` alike: the app mount shares route objects with the plain one,
    and listing the methods by walking the routers once gave `Allow: PUT` for GET/PUT paths there."""
    assert api.put("/apps/shop", json={}).status_code == 201
    paths = api.get("/openapi.json").json()["paths"]
    assert any(path.startswith("/apps/{app}/items") for path in paths)
    for path, operations in paths.items():
        url = re.sub(r"\{[^}]+\}", "x1", path.replace("{app}", "shop"))
        answer = api.options(url)
        assert answer.status_code == 405, path
        assert answer.headers["allow"] == ", ".join(sorted(m.upper() for m in operations)), path
        assert answer.json()["detail"] == "method OPTIONS not allowed here"


#: Every character Python's str.strip() removes (the ids' stripping) that is not a control character.
SPACES = [chr(c) for c in range(0x110000) if chr(c).isspace() and c > 0x1f and c != 0x7f]


def test_the_id_pattern_refuses_exactly_whitespace_only_and_control_characters():
    assert len(SPACES) == 20 and not any(re.fullmatch(ID_PATTERN, c * 3) for c in SPACES)
    assert all(re.fullmatch(ID_PATTERN, f"{c}a{c}") for c in SPACES)  # surrounded: valid, and stripped
    assert not any(re.fullmatch(ID_PATTERN, f"a{chr(c)}b") for c in [*range(0x20), 0x7f])
    assert all(re.fullmatch(ID_PATTERN, text) for text in ("a", "sku 12", "é", "\u200b", "x" * 1024))


@pytest.mark.parametrize("method,path,body,field", [
    ("PUT", "/items/%20%20", {"title": "x"}, "item_id"),
    ("PUT", "/users/%C2%A0", {}, "user_id"),
    ("GET", "/sessions/%E3%80%80/recommendations", None, "session_id"),
    ("POST", "/items", {"items": [{"item_id": " "}]}, "items[0].item_id"),
    ("POST", "/events", {"user_id": "\u2003", "item_id": "a", "type": "view"}, "user_id"),
    ("GET", "/search?q=shoe&user_id=%20", None, "user_id"),
])
def test_a_whitespace_only_id_is_refused_by_the_documented_pattern(refusing_api, refusing_engine, method, path, body,
                                                                   field):
    answer = refusing_api.request(method, path, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0] == {"field": field, "message": BAD_ID}
    assert refusing_engine.store.event_count() == 0 and not refusing_engine.store.load_items()


def test_surrounding_whitespace_is_stripped_from_path_and_body_ids_alike(api, engine):
    assert api.put("/items/%20sku-1%20", json={"title": "x"}).json()["item_id"] == "sku-1"
    assert api.post("/events", json={"user_id": " u1\u00a0", "item_id": "sku-1 ", "type": "view"}).status_code == 200
    assert api.get("/users/u1/profile").json()["recent_items"][0]["item_id"] == "sku-1"
    assert api.get("/users/%20u1/profile").json()["event_count"] == 1
    document = api.get("/openapi.json").json()
    parameter = document["paths"]["/items/{item_id}"]["put"]["parameters"][0]["schema"]
    assert parameter["pattern"] == ID_PATTERN == document["components"]["schemas"]["EventIn"]["properties"]["user_id"]["anyOf"][0]["pattern"]


@pytest.mark.parametrize("path", ["/users/u1/recommendations?device=a&device=b", "/items/i1/similar?n=2&n=3",
                                  "/search?q=a&q=b", "/apps?x=1&x=2", "/apps/shop/sessions/s1/recommendations?device=a&device=b"])
def test_a_query_parameter_given_twice_is_a_422_naming_it(api, path):
    assert api.put("/apps/shop", json={}).status_code == 201
    answer = api.get(path)
    assert answer.status_code == 422, answer.text
    name = path.split("?")[1].split("=")[0]
    assert answer.json()["errors"] == [{"field": name, "message": "given 2 times; a query parameter takes one value"}]
    assert api.get(path.split("&")[0]).status_code != 422  # once: answered as usual


def test_no_query_parameter_of_the_document_is_a_list(refusing_api):
    """What makes refusing every repeated query parameter right: none is declared as several values."""
    operations = [op for ops in refusing_api.get("/openapi.json").json()["paths"].values() for op in ops.values()]
    query = [p for op in operations for p in op.get("parameters", []) if p["in"] == "query"]
    assert len(query) > 50 and not [p["name"] for p in query if "array" in str(p["schema"])]


@pytest.mark.parametrize("n", ["0", "501", "-1", "1e3", "ten"])
def test_result_count_is_bounded(refusing_api, n):
    assert refusing_api.get(f"/users/u1/recommendations?n={n}").status_code == 422


def test_query_strings_are_bounded(refusing_api):
    assert refusing_api.get("/users/u1/recommendations", params={"exclude": "x," * 4097}).status_code == 422
    assert refusing_api.get("/users/u1/recommendations", params={"strategy": "s" * 65}).status_code == 422
    assert refusing_api.get("/users/u1/recommendations", params={"min_price": "nan"}).status_code == 422


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
