"""Operator endpoints on a real server: search, overview JSON, report files, offline docs, OpenAPI examples."""

from __future__ import annotations

import re
import socket

import httpx
import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.recommend.search import rank_matches
from pulserec.serving.routes.reports import safe_file
from pulserec.serving.server import BackgroundServer


def test_search_finds_users_and_items_prefix_first(client, server):
    client.put_items([{"item_id": "sku-1", "title": "Red running shoe"}, {"item_id": "shoe-2", "title": "Blue shoe"},
                      {"item_id": "hat-3", "title": "Sun hat"}])
    client.send_events([{"user_id": "shoe-lover", "item_id": "sku-1", "type": "view"},
                        {"user_id": "hat-fan", "item_id": "hat-3", "type": "view"},
                        {"session_id": "shoe-session", "item_id": "sku-1", "type": "view"}])
    found = client.find("SHOE")
    assert [u["user_id"] for u in found.users] == ["shoe-lover"]  # sessions are not users
    assert [i["item_id"] for i in found.items] == ["shoe-2", "sku-1"]  # id prefix first, then title matches
    assert client.find("shoe", kind="items").users == []
    assert len(client.find("s", limit=1).items) == 1
    for bad in ({"q": ""}, {"q": "x" * 200}, {"q": "a", "limit": 0}, {"q": "a", "limit": 51}, {"q": "a", "kind": "robots"}):
        assert httpx.get(f"{server.url}/dashboard/api/search", params=bad).status_code == 422, bad


def test_rank_matches_is_bounded_and_case_insensitive():
    texts = [(0, "Alpha"), (1, "beta alpha"), (2, "ALPHABET"), (3, "gamma")]
    assert rank_matches("alpha", texts, 10) == [0, 2, 1]
    assert rank_matches("alpha", texts, 1) == [0]
    assert rank_matches("zzz", texts, 10) == []


def test_search_with_pseudonymised_users_needs_the_exact_id(tmp_path):
    engine = Engine(Settings.load(tmp_path / "data", pseudonymize_users=True, pseudonym_key_file=str(tmp_path / "key")))
    with BackgroundServer(engine) as server:
        httpx.post(f"{server.url}/events", json={"user_id": "alice", "item_id": "i", "type": "view"})
        find = f"{server.url}/dashboard/api/search"
        assert httpx.get(find, params={"q": "ali"}).json()["users"] == []
        assert httpx.get(find, params={"q": "alice"}).json()["users"] == [{"user_id": "alice", "event_count": 1}]
    engine.close()


def test_overview_document_and_engagement_hook(client, server, monkeypatch):
    client.put_items([{"item_id": f"i{k}", "title": f"Item {k}"} for k in range(4)])
    client.send_events([{"user_id": "u", "item_id": f"i{k}", "type": "view"} for k in range(3)])
    client.recommend("u", n=2)
    doc = client.overview(window=10, top=2)
    assert len(doc["events_per_second"]["series"]) == 10
    assert doc["totals"]["items"] == 4 and len(doc["trending"]) == 2
    assert doc["latency_ms"]["by_strategy"]["default"]["count"] == 1
    assert doc["coverage"]["answers"] == 1 and doc["coverage"]["catalogue_items"] == 4
    assert doc["engagement"] == {"available": False, "note": doc["engagement"]["note"], "rows": []}
    assert "impressions" in doc["engagement"]["note"]
    assert doc["evaluation"] == {"report_url": None, "metrics": None}

    class Impressions:
        def engagement_rows(self):
            return [{"strategy": "default", "variant": "B", "impressions": 200, "clicks": 10, "conversions": 2}]

    feedback = server.server.config.app.state.engine.feedback  # the engine's impressions, as an app resolves it
    monkeypatch.setattr(feedback, "engagement_rows", Impressions().engagement_rows)
    rows = client.overview()["engagement"]["rows"]
    assert rows == [{"strategy": "default", "variant": "B", "impressions": 200, "clicks": 10, "conversions": 2,
                     "ctr": 0.05, "conversion_rate": 0.01}]
    for bad in ({"window": 5}, {"window": 1000}, {"top": 0}, {"top": 51}):
        assert httpx.get(f"{server.url}/dashboard/api/overview", params=bad).status_code == 422


def raw_get(url: str, path: str) -> int:
    """Status of a GET sent byte-for-byte (httpx would normalise `..` away)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        head = sock.recv(4096).decode("latin-1")
    return int(head.split()[1])


def test_reports_are_served_read_only_and_never_outside_their_directory(server, engine, tmp_path):
    assert httpx.get(f"{server.url}/reports/index.html").status_code == 404  # no report yet
    reports = engine.settings.data_dir / "reports"
    reports.mkdir()
    (reports / "index.html").write_text("<h1>Evaluation</h1>")
    (reports / "plot.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "secret.txt").write_text("secret")
    (reports / "escape").symlink_to(tmp_path / "secret.txt")
    assert httpx.get(f"{server.url}/reports/").text == "<h1>Evaluation</h1>"
    assert httpx.get(f"{server.url}/reports/plot.png").headers["content-type"] == "image/png"
    assert httpx.get(f"{server.url}/dashboard/api/overview").json()["evaluation"]["report_url"] == "/reports/index.html"
    assert httpx.post(f"{server.url}/reports/index.html").status_code == 405
    assert httpx.get(f"{server.url}/reports/escape").status_code == 404
    for path in ("/reports/../pulserec.db", "/reports/%2e%2e/pulserec.db", "/reports/..%2fpulserec.db",
                 "/reports/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/reports//etc/passwd"):
        assert raw_get(server.url, path) in (400, 404), path
    assert safe_file(reports, "../pulserec.db") is None and safe_file(reports, "/etc/passwd") is None
    assert safe_file(reports, "plot.png") == (reports / "plot.png").resolve()


def test_docs_work_offline_with_packaged_assets(read_server):
    server, _ = read_server
    page = httpx.get(f"{server.url}/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)""", page.text) + re.findall(r"url: '([^']+)'", page.text)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    for url in urls:
        assert httpx.get(f"{server.url}{url}").status_code == 200, url
    assert "http://" not in page.text and "https://" not in page.text
    assert httpx.get(f"{server.url}/redoc").status_code == 404  # the CDN-only ReDoc page is off


def test_every_operation_documents_an_example(read_server):
    server, _ = read_server
    schema = httpx.get(f"{server.url}/openapi.json").json()
    missing = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation.get("responses", {})
            success = next((code for code in responses if code.startswith("2")), "200")
            content = responses.get(success, {}).get("content", {})
            if not any("example" in media or "examples" in media for media in content.values()):
                missing.append(f"{method.upper()} {path}")
            assert operation.get("summary"), f"{method.upper()} {path} has no summary"
    assert not missing, f"operations without a response example: {missing}"
    assert {"/metrics", "/search", "/dashboard/api/search", "/dashboard/api/overview"} <= set(schema["paths"])


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/users/u42", "/dashboard/items/sku-1"])
def test_dashboard_pages_are_the_packaged_app(read_server, path):
    server, _ = read_server
    page = httpx.get(f"{server.url}{path}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/static/dashboard/app.js" in page.text and "https://" not in page.text
