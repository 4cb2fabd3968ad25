"""The storefront (GET /shop) on pulserec.js in a real headless Chromium, against a real uvicorn
server with secret and publishable keys, seeded with a synthetic shop (issue 14.1 and 14.6).

What the SDK sent is read back from the store's SQLite file. Screenshots are saved under a
temporary directory (or $PULSEREC_SCREENSHOTS) and named in the log. Every wait is bounded."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from test_dashboard import CHROMIUM, Tab, browser  # noqa: F401 - fixture

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.ingest.synthetic import as_events, generate
from pulserec.serving.server import BackgroundServer

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"chromium not found at {CHROMIUM}")

SECRET = "shop-secret-key-0123456789"

PK = "pk_shop_demo_0123456789"
WAIT_MS = 10_000  # the longest any page, widget or event is waited for


class Shop:
    def __init__(self, server: BackgroundServer, engine: Engine, data_dir: Path) -> None:
        self.server, self.engine, self.data_dir = server, engine, data_dir

    @property
    def url(self) -> str:
        return self.server.url

    def events(self, session_id: str) -> list[dict]:
        """The stored events of a session (or of the user it was merged into), oldest first."""
        with sqlite3.connect(self.data_dir / "pulserec.db") as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM events WHERE session_id = ? ORDER BY seq", (session_id,)).fetchall()
        return [dict(r) for r in rows]

    def shown(self, rec_id: str) -> list[str] | None:
        """The items of the stored impression of `rec_id`, if one was stored."""
        with sqlite3.connect(self.data_dir / "pulserec.db") as db:
            row = db.execute("SELECT items FROM impressions WHERE rec_id = ?", (rec_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def wait_for_events(self, session_id: str, done, what: str) -> list[dict]:
        deadline = time.monotonic() + WAIT_MS / 1000
        while time.monotonic() < deadline:
            events = self.events(session_id)
            if done(events):
                return events
            time.sleep(0.05)
        raise AssertionError(f"{what} never arrived; stored: {self.events(session_id)}")


class ElsewherePages:
    """Another shop's web server on 127.0.0.1: one product page using pulserec.js from the API.

    Reached as http://localhost:PORT it is an origin the API allows (cors_origins); as
    http://127.0.0.1:PORT an origin it does not know. (Loopback both: Chromium lets no public
    page call a loopback server.)"""

    def __init__(self) -> None:
        self.api_url = ""
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server hook
                body = pages.html().encode()
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.allowed, self.stranger = f"http://localhost:{self.port}", f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def html(self) -> str:
        return (f'<!doctype html><title>elsewhere</title><main data-pulserec-item="sku-00003">A product</main>'
                f'<div id="similar" data-pulserec-widget="similar">similar items</div>'
                f'<script src="{self.api_url}/sdk/pulserec.js" data-key="{PK}" data-item-url="/p/{{id}}"></script>')

    def __enter__(self) -> ElsewherePages:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[ElsewherePages]:
    with ElsewherePages() as pages:
        yield pages


@pytest.fixture(scope="module")
def shop(tmp_path_factory, elsewhere) -> Iterator[Shop]:
    data_dir = tmp_path_factory.mktemp("shop")
    engine = Engine(Settings.load(data_dir, api_keys=(SECRET,), publishable_keys=(PK,), cors_origins=(elsewhere.allowed,)))
    data = generate(n_users=60, n_items=120, n_events=3000, seed=3, end_ts=time.time() - 60)
    engine.put_items(list(data.items))
    engine.ingest(as_events(data.events))
    with BackgroundServer(engine) as server:
        elsewhere.api_url = server.url
        yield Shop(server, engine, data_dir)
    engine.close()


@pytest.fixture
def tab(browser, shop) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # a new visitor: empty localStorage
    opened = Tab(context.new_page(), shop.url)
    opened.page.set_default_timeout(WAIT_MS)
    yield opened
    context.close()


def listed(tab: Tab, widget: str) -> list[str]:
    tab.page.wait_for_selector(f"#{widget}[data-pulserec-state=ready]")
    return tab.page.eval_on_selector_all(f"#{widget} .pulserec-item", "els => els.map(e => e.dataset.pulserecItemId)")


def open_page(tab: Tab, path: str, widget: str) -> list[str]:
    tab.page.goto(tab.base_url + path)
    return listed(tab, widget)


def session_of(tab: Tab) -> str:
    return tab.page.evaluate("window.pulserec.sessionId")


def test_a_click_and_a_dwell_change_the_widget_on_the_next_page(tab, shop, shots):
    first = open_page(tab, "/shop", "recommendations")
    assert listed(tab, "trending") and len(first) == 6
    reasons = tab.page.locator("#recommendations .pulserec-reason").all_inner_texts()
    assert all(reasons), reasons  # every item says why it is there
    tab.page.screenshot(path=str(shots / "shop-home.png"), full_page=True)
    trending_rec = tab.page.get_attribute("#trending", "data-pulserec-rec-id")
    clicked = tab.page.locator("#trending .pulserec-item").first
    product = clicked.get_attribute("data-pulserec-item-id")
    clicked.locator("a").click()
    similar = listed(tab, "similar")
    assert product not in similar and tab.page.locator("#title").inner_text()
    tab.page.wait_for_timeout(1500)  # dwell on the product page
    tab.page.screenshot(path=str(shots / "shop-product.png"), full_page=True)
    started = time.perf_counter()
    tab.page.locator("#similar .pulserec-item a").first.click()
    after = listed(tab, "recommendations")
    took = time.perf_counter() - started
    print(f"click to the next page's recommendations: {took * 1000:.0f} ms")
    session = session_of(tab)
    events = shop.events(session)
    views = [e for e in events if e["type"] == "view" and e["item_id"] == product]
    assert len(views) == 1 and views[0]["dwell_seconds"] >= 1.5, events  # sent at the page's hide, with its visible time
    assert views[0]["rec_id"] == trending_rec  # the view of a recommended item keeps its attribution
    clicks = [e for e in events if e["type"] == "click"]
    assert [c["item_id"] for c in clicks][:1] == [product] and clicks[0]["rec_id"] == trending_rec
    assert clicks[1]["rec_id"].startswith("similar-")
    assert after != first and product not in after  # the history changed what is recommended
    viewed_title = shop.engine.item(product)["title"]
    assert any(viewed_title in r for r in tab.page.locator("#recommendations .pulserec-reason").all_inner_texts())
    assert took < 5.0
    tab.page.screenshot(path=str(shots / "shop-next-page.png"), full_page=True)
    tab.assert_clean()


def test_widgets_report_their_impressions(tab, shop):
    open_page(tab, "/shop", "recommendations")
    rec = tab.page.get_attribute("#recommendations", "data-pulserec-rec-id")
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline and not shop.shown(rec):
        time.sleep(0.05)
    assert shop.shown(rec) == listed(tab, "recommendations")
    tab.assert_clean()


def test_a_search_is_sent_with_its_query_and_changes_recommendations(tab, shop, shots):
    """The storefront's search is the BM25 one (GET /search and the page's own fallback list): a
    query with its words reversed and a plural, which no item's text holds as a substring, finds
    the running sandals first."""
    query = "sandals running"
    texts = {r.item_id: f"{r.title} {r.description}".lower() for r in shop.engine.store.load_items()}
    assert not any(query in text for text in texts.values())  # a substring search lists nothing
    page = httpx.get(f"{shop.url}/shop/search", params={"q": query}, headers={"x-api-key": SECRET})
    assert page.status_code == 200 and "Running sandal" in page.text  # the server's fallback list: BM25 too
    before = open_page(tab, "/shop", "recommendations")
    tab.page.fill("#q", query)
    tab.page.press("#q", "Enter")
    tab.page.wait_for_url("**/shop/search?q=sandals+running")
    after = listed(tab, "recommendations")
    results = listed(tab, "search")  # the query ranked for this visitor, replacing the server's list
    assert results and tab.page.locator("#search [data-pulserec-fallback]").is_hidden()
    titles = [shop.engine.item(i)["title"].lower() for i in results]
    assert titles[0].startswith("running sandal"), titles
    assert all("running" in t or "sandal" in t for t in titles), titles
    assert all(query in r for r in tab.page.locator("#search .pulserec-reason").all_inner_texts())
    events = shop.wait_for_events(session_of(tab), lambda es: any(e["type"] == "search" for e in es), "the search")
    assert [e["query"] for e in events if e["type"] == "search"] == [query]
    assert after != before  # what was searched for shapes what is recommended next
    tab.page.screenshot(path=str(shots / "shop-search.png"), full_page=True)
    tab.assert_clean()


def test_add_to_cart_redraws_the_lists_and_sign_in_merges_the_session(tab, shop):
    item = shop.engine.item("sku-00001")
    open_page(tab, "/shop/items/sku-00001", "recommendations")
    shown = tab.page.get_attribute("#recommendations", "data-pulserec-rec-id")
    tab.page.click("#add-to-cart")
    tab.page.wait_for_function(f"document.querySelector('#recommendations').dataset.pulserecRecId !== {shown!r}")
    session = session_of(tab)
    carts = shop.wait_for_events(session, lambda es: any(e["type"] == "add_to_cart" for e in es), "the add-to-cart")
    assert [(e["item_id"], e["value"]) for e in carts if e["type"] == "add_to_cart"] == [("sku-00001", item["price"])]
    tab.page.fill("#user", "shopper-42")
    tab.page.click("#sign-in button")
    tab.page.wait_for_selector("#signed-in:not([hidden])")
    headers = {"x-api-key": SECRET}
    deadline = time.monotonic() + WAIT_MS / 1000
    profile = None
    while time.monotonic() < deadline:
        answer = httpx.get(f"{shop.url}/users/shopper-42/profile", headers=headers)
        if answer.status_code == 200:
            profile = answer.json()
            break
        time.sleep(0.05)
    assert profile is not None and profile["counts_by_type"].get("add_to_cart") == 1  # the session's events are the user's
    tab.page.reload()
    listed(tab, "recommendations")
    assert tab.page.evaluate("window.pulserec.userId") == "shopper-42"
    tab.assert_clean()


def test_the_documented_api_is_there_and_refuses_misuse(tab, shop):
    open_page(tab, "/shop", "trending")
    api = tab.page.evaluate("Object.keys(window.pulserec).sort()")
    assert api == sorted(["version", "ready", "track", "identify", "reset", "refresh", "flush", "sessionId", "userId", "config"])
    for call in ("pulserec.track('rating', {item_id: 'sku-00001'})", "pulserec.track('view', {item_id: 'a', price: 1})",
                 "pulserec.identify('')"):
        assert tab.page.evaluate(f"() => {{ try {{ {call}; return 'no error'; }} catch (e) {{ return e.name; }} }}") == "TypeError"
    tab.assert_clean()


def test_a_page_on_an_allowed_origin_shows_widgets_and_sends_its_events(tab, shop, elsewhere):
    tab.page.goto(f"{elsewhere.allowed}/product")
    assert listed(tab, "similar")  # a cross-origin GET with the key in the query: no preflight
    session = session_of(tab)
    tab.page.wait_for_timeout(300)
    tab.page.goto(f"{elsewhere.allowed}/product")  # leaving the page beacons its view across origins
    listed(tab, "similar")
    views = shop.wait_for_events(session, lambda es: any(e["type"] == "view" for e in es), "the cross-origin view")
    assert [v["item_id"] for v in views if v["type"] == "view"][:1] == ["sku-00003"]
    assert not tab.errors, tab.errors


def test_a_page_on_another_origin_gets_nothing_and_writes_nothing(tab, shop, elsewhere):
    tab.page.goto(f"{elsewhere.stranger}/product")
    tab.page.wait_for_selector("#similar[data-pulserec-state=error]")
    session = session_of(tab)
    tab.page.evaluate("pulserec.track('like', {item_id: 'sku-00003'})")
    tab.page.wait_for_timeout(500)
    tab.page.goto(f"{elsewhere.stranger}/product")
    tab.page.wait_for_selector("#similar[data-pulserec-state=error]")
    tab.page.wait_for_timeout(300)
    assert shop.events(session) == []  # refused (403) before anything was stored
    assert any("CORS" in e or "403" in e for e in tab.errors), tab.errors


def test_the_storefront_of_an_app_talks_to_that_app(tab, shop):
    """Under /apps/{app}/shop the links, the script and the SDK's calls carry the app's prefix,
    its own publishable key is in the page, and what the visitor does lands in its store."""
    admin, key, app_pk = {"x-api-key": SECRET}, "acme-secret-key-0123456789", "pk_acme_0123456789abcdef"
    made = httpx.put(f"{shop.url}/apps/acme", json={"api_keys": [key], "settings": {"publishable_keys": [app_pk]}}, headers=admin)
    assert made.status_code == 201, made.text
    base, acme = f"{shop.url}/apps/acme", {"x-api-key": key}
    items = [{"item_id": f"acme-{k}", "title": f"Acme anvil {k}", "category": "tools"} for k in range(6)]
    assert httpx.post(f"{base}/items", json={"items": items}, headers=acme).status_code == 200
    events = [{"user_id": f"buyer-{u}", "item_id": f"acme-{(u + k) % 6}", "type": "view"} for u in range(8) for k in range(3)]
    assert httpx.post(f"{base}/events", json={"events": events}, headers=acme).json()["accepted"] == len(events)
    similar = open_page(tab, "/apps/acme/shop/items/acme-1", "similar")
    assert similar and all(i.startswith("acme-") for i in similar)
    assert tab.page.get_attribute("script[data-key]", "data-key") == app_pk
    assert tab.page.get_attribute("#similar .pulserec-item a", "href").startswith("/apps/acme/shop/items/")
    session = session_of(tab)
    tab.page.locator("#similar .pulserec-item a").first.click()
    listed(tab, "similar")
    deadline = time.monotonic() + WAIT_MS / 1000
    stored: list = []
    while time.monotonic() < deadline and not stored:
        with sqlite3.connect(shop.data_dir / "apps" / "acme" / "pulserec.db") as db:
            stored = db.execute("SELECT type, item_id FROM events WHERE session_id = ?", (session,)).fetchall()
        time.sleep(0.05)
    assert ("view", "acme-1") in stored and ("click", similar[0]) in stored
    assert shop.events(session) == []  # nothing of it in the default app's store
    tab.assert_clean()


def test_without_send_beacon_a_keepalive_fetch_carries_the_last_events(browser, shop):
    context = browser.new_context()
    context.add_init_script("Object.defineProperty(Navigator.prototype, 'sendBeacon', {value: undefined})")
    tab = Tab(context.new_page(), shop.url)
    tab.page.set_default_timeout(WAIT_MS)
    try:
        open_page(tab, "/shop/items/sku-00002", "similar")
        assert tab.page.evaluate("typeof navigator.sendBeacon") == "undefined"
        session = session_of(tab)
        tab.page.wait_for_timeout(800)
        # The page hides for a page without the SDK (so nothing sends it again): its view can only
        # go by the fetch(..., {keepalive: true}) made as it hides.
        tab.page.goto("about:blank")
        views = shop.wait_for_events(session, lambda es: any(e["type"] == "view" for e in es), "the view")
        assert [(v["item_id"], v["dwell_seconds"] >= 0.8) for v in views if v["type"] == "view"] == [("sku-00002", True)]
        tab.assert_clean()
    finally:
        context.close()
