"""The dashboard in a real headless Chromium, against a real server seeded with the synthetic shop.

Screenshots land in test-artifacts/ (gitignored). Skipped when playwright or chromium is missing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CHROMIUM = os.environ.get("PULSEREC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"chromium not found at {CHROMIUM}")


class Tab:
    """A browser page that records console errors, page errors and requests leaving 127.0.0.1."""

    def __init__(self, page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.errors: list[str] = []
        self.external: list[str] = []
        page.on("console", lambda m: self.errors.append(f"{m.text} ({m.location.get('url')})") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("request", self._request)

    def _request(self, request) -> None:
        host = urlparse(request.url).hostname
        if request.url.startswith(("http:", "https:")) and host != "127.0.0.1":
            self.external.append(request.url)

    def open(self, path: str, page_name: str) -> None:
        self.page.goto(self.base_url + path)
        self.page.wait_for_selector(f"#view[data-ready={page_name}]", timeout=10_000)

    def count(self, selector: str) -> int:
        return self.page.locator(selector).count()

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text()

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self, expected_errors: tuple[str, ...] = ()) -> None:
        """No console or page errors (but those containing one of `expected_errors`), no external request."""
        unexpected = [e for e in self.errors if not any(x in e for x in expected_errors)]
        assert not unexpected, unexpected
        assert not self.external, f"requests outside 127.0.0.1: {self.external}"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def tab(browser, seeded) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    yield Tab(context.new_page(), seeded.url)
    context.close()


def test_overview_renders_live_charts_from_the_seeded_store(tab, seeded):
    tab.open("/dashboard", "overview")
    overview = seeded.client.overview()
    assert tab.count("#events-chart g.column") == 60  # one column per second of the window
    # The seeding just happened; its second shows once complete (the still-filling second is left out).
    tab.page.wait_for_selector("#events-chart rect.bar", timeout=5_000)
    legend = tab.page.locator("#events-legend .legend-item").all_inner_texts()
    kinds = set(seeded.shop.events["type"])
    assert legend and all(any(kind in label for kind in kinds) for label in legend)  # one entry per seeded event type
    assert tab.count("#trending-chart rect.bar") == 10
    assert tab.text("#trending-chart") .count("#") >= 1  # titles of the synthetic items
    strategies = overview["latency_ms"]["by_strategy"]
    assert set(strategies) == {"default", "item_knn"}
    assert tab.count("#latency-chart rect.bar") == 3 * len(strategies)  # p50, p90, p99 each
    assert tab.count("#coverage-chart circle.arc") == 1 and "%" in tab.text("#coverage-chart")
    assert "no impressions yet" in tab.text("#engagement")
    assert tab.count("#models tbody tr") == len(seeded.client.models()["models"])
    assert "0.123" in tab.text("#models")  # the evaluation summary next to the report
    assert "Default: item_knn + trending (built-in" in tab.text("#default-choice")  # nothing chose one yet
    assert tab.page.get_attribute("#report-link", "href") == "/reports/index.html"
    assert tab.page.is_visible("#report-link")
    assert tab.text("#kpi-events") == f"{len(seeded.shop.events):,}"
    tab.screenshot("dashboard-overview.png")
    tab.assert_clean()


def test_models_table_says_what_each_model_was_trained_on(tab, seeded):
    """Issue 13.19: the table read `trained_on`, which the API never sends, so every model said
    "online"; GET /models sends a batch model's `events` and `trained_at`."""
    seeded.engine.training.train(["item_knn_bm25"])
    trained = next(m for m in seeded.client.models()["models"] if m["name"] == "item_knn_bm25")
    tab.open("/dashboard", "overview")
    row = tab.page.locator("#models tbody tr", has_text="item_knn_bm25").inner_text()
    assert f"{trained['events']:,} events" in row and "live" not in row  # trained just now: an age
    assert "online" in tab.page.locator("#models tbody tr", has_text="trending").inner_text()
    tab.assert_clean()


def test_user_page_shows_the_profile_next_to_recommendations(tab, seeded):
    user = seeded.busiest_user()
    profile = seeded.client.profile(user)
    recommendations = seeded.client.recommend(user, n=10)
    tab.open(f"/dashboard/users/{user}", "user")
    assert tab.text("#user-id") == user
    assert tab.count("#interests-card rect.bar") == len(profile.interests["categories"])
    top_category = profile.interests["categories"][0]["name"]
    assert top_category in tab.text("#interests-card")
    assert tab.count("#segments .chip") == len(profile.segments)
    assert tab.count("#recent-card li") == len(profile.recent_items)
    assert tab.count("#rec-list li") == len(recommendations.items)
    assert recommendations.items[0].reason in tab.text("#rec-list li:first-child")
    tab.page.select_option("#strategy", "popular")
    tab.page.wait_for_function("document.querySelector('#rec-list .rec-score')?.textContent.includes('popular')")
    tab.screenshot("dashboard-user.png")
    tab.assert_clean()


def test_search_box_leads_to_user_and_item_pages(tab, seeded):
    tab.open("/dashboard", "overview")
    user = seeded.busiest_user()
    tab.page.fill("#search-input", user)
    tab.page.wait_for_selector("#search-results:not([hidden]) a.result")
    tab.screenshot("dashboard-search.png")
    tab.page.click(f"#search-results a[href='/dashboard/users/{user}']")
    tab.page.wait_for_selector("#view[data-ready=user]")
    assert tab.text("#user-id") == user

    item = seeded.shop.items[0]
    tab.page.fill("#search-input", item.title)
    tab.page.wait_for_selector(f"#search-results a[href='/dashboard/items/{item.item_id}']")
    tab.page.press("#search-input", "Enter")
    tab.page.wait_for_selector("#view[data-ready=item]")
    assert tab.text("#item-title") == item.title
    assert tab.count("#similar-card li") > 0
    tab.assert_clean()


def test_unknown_user_is_a_friendly_empty_state(tab):
    tab.open("/dashboard/users/nobody-at-all", "user")
    assert "No such user" in tab.text("#view")
    # The browser logs the API's 404 for the profile itself; nothing else may fail.
    assert len(tab.errors) == 1
    tab.assert_clean(expected_errors=("404", "/users/nobody-at-all/profile"))


def test_swagger_ui_renders_offline(tab, seeded):
    tab.page.goto(seeded.url + "/docs")
    tab.page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
    assert tab.count(".swagger-ui .opblock") >= 15
    tab.assert_clean()


# -- sign-in: a server with keys (issue 13.9) ------------------------------------------------

WRITE_KEY = "dashboard-write-key-0123456789"
READ_KEY = "dashboard-read-key-0123456789"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, shop) -> Iterator[str]:
    from pulserec.client import Client
    from pulserec.config import Settings
    from pulserec.engine import Engine
    from pulserec.serving.server import BackgroundServer

    engine = Engine(Settings.load(tmp_path_factory.mktemp("keyed"), api_keys=(WRITE_KEY,), read_keys=(READ_KEY,)))
    with BackgroundServer(engine) as server, Client(server.url, api_key=WRITE_KEY) as client:
        client.send_events([{"user_id": "u-keyed", "item_id": f"i{k}", "type": "view"} for k in range(3)])
        yield server.url
    engine.close()


def test_dashboard_signs_in_with_a_key_kept_for_the_tab_only(browser, keyed):
    context = browser.new_context()
    tab = Tab(context.new_page(), keyed)
    tab.page.goto(keyed + "/dashboard")
    tab.page.wait_for_selector("#login", timeout=10_000)
    assert "needs an API key" in tab.text("#login-message")
    tab.page.fill("#login-key", "not-the-key-0123456789abcdef")
    tab.page.click("#login button")
    tab.page.wait_for_function("document.querySelector('#login-message')?.textContent.includes('refused')")
    tab.page.fill("#login-key", READ_KEY)
    tab.page.click("#login button")
    tab.page.wait_for_selector("#view[data-ready=overview]", timeout=10_000)
    tab.page.wait_for_function("document.querySelector('#kpi-events')?.textContent === '3'")
    assert tab.count("#login") == 0
    tab.screenshot("dashboard-signed-in.png")
    tab.page.goto(keyed + "/dashboard/users/u-keyed")  # a full load: the key stays in this tab's session
    tab.page.wait_for_selector("#view[data-ready=user]", timeout=10_000)
    assert tab.text("#user-id") == "u-keyed" and tab.count("#login") == 0
    assert tab.page.evaluate("sessionStorage.getItem('pulserec.api_key')") == READ_KEY
    assert tab.page.context.cookies() == []  # nothing a cross-site request could carry
    tab.page.click("#logout")
    tab.page.wait_for_selector("#login", timeout=10_000)
    tab.assert_clean(expected_errors=("401",))
    other = Tab(browser.new_context().new_page(), keyed)  # another session starts signed out
    other.page.goto(keyed + "/dashboard")
    other.page.wait_for_selector("#login", timeout=10_000)
    other.page.context.close()
    context.close()


@pytest.fixture(scope="module")
def two_apps(tmp_path_factory) -> Iterator[str]:
    """A server (no keys) whose default app holds 3 events and whose app `shop` holds 5."""
    from pulserec.client import Client
    from pulserec.config import Settings
    from pulserec.engine import Engine
    from pulserec.serving.server import BackgroundServer

    engine = Engine(Settings.load(tmp_path_factory.mktemp("two-apps"), model_watch_interval=0.0))
    with BackgroundServer(engine) as server, Client(server.url) as default:
        default.send_events([{"user_id": "u-default", "item_id": f"i{k}", "type": "view"} for k in range(3)])
        default.put_app("shop")
        with Client(server.url, app="shop") as shop:
            shop.send_events([{"user_id": "u-shop", "item_id": f"s{k}", "type": "view"} for k in range(5)])
        yield server.url
    engine.close()


def test_dashboard_switches_between_apps(browser, two_apps):
    tab = Tab(browser.new_context().new_page(), two_apps)
    tab.open("/dashboard", "overview")
    tab.page.wait_for_function("document.querySelector('#kpi-events')?.textContent === '3'")
    tab.page.wait_for_function("document.querySelectorAll('#app-select option').length === 2")
    assert [o.strip() for o in tab.page.locator("#app-select option").all_inner_texts()] == ["default", "shop"]
    tab.page.select_option("#app-select", "shop")
    tab.page.wait_for_selector("#view[data-ready=overview]", timeout=10_000)
    tab.page.wait_for_function("document.querySelector('#kpi-events')?.textContent === '5'")
    # the switch's options are fetched after the page loads: wait for it to show the app (bounded)
    tab.page.wait_for_function("document.querySelector('#app-select')?.value === 'shop'", timeout=10_000)
    assert "app=shop" in tab.page.url
    tab.open("/dashboard/users/u-shop", "user")  # a full load keeps the app of this tab
    assert tab.text("#user-id") == "u-shop"
    tab.open("/dashboard/users/u-default", "user")  # the default app's user is not shop's
    assert "No such user" in tab.text("#view")
    tab.screenshot("dashboard-app-shop.png")
    tab.assert_clean(expected_errors=("404", "/apps/shop/users/u-default/profile"))


def test_the_default_choice_shows_each_history_buckets_weights(tab, seeded):
    """auto's choice with a weight vector per history bucket: the dashboard names each bucket's
    users and weights, with the validation scores and the date."""
    from pulserec.models.auto import AutoBlend
    from pulserec.models.registry import build_model
    from pulserec.recommend.training import snapshot

    engine = seeded.engine
    chosen = AutoBlend(components=[("item_knn", {}), ("popular", {})], history_edges=(10,))
    data, _ = snapshot(engine.store, engine.settings.weighting)
    chosen.models = [build_model(name, **params).fit(data) for name, params in chosen.components]
    chosen.weights, chosen.user_ids, chosen.item_ids = [[0.0, 1.0], [1.0, 0.25]], data.user_ids, data.item_ids
    chosen.validation_scores, chosen.chosen_at = {"item_knn": 0.9, "popular": 0.5, "blend": 0.95}, 1.7e9
    chosen.after_load()
    models = engine.service.models
    models.choose_default(chosen, {"version": 1})
    try:
        tab.open("/dashboard", "overview")
        text = tab.text("#default-choice")
        assert "up to 10 items: popular 1" in text and "over 10 items: item_knn 1, popular 0.25" in text, text
        assert "validation: item_knn 0.9" in text and "blend 0.95" in text
        tab.assert_clean()
    finally:
        models.register(models.default)  # the built-in blend again for the module's other tests
        models.default_choice = None
