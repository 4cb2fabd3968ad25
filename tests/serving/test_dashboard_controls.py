"""The dashboard's Controls page in a real headless Chromium against a real server: named filters,
promotions with the impressions, clicks and CTR of their slots, and exploration's outcomes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from test_dashboard import CHROMIUM, Tab, browser  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"chromium not found at {CHROMIUM}")


def test_controls_page_lists_filters_promotions_with_ctr_and_exploration(browser, server, client, shots):
    url = server.url
    client.put_items([{"item_id": f"i{k}", "title": f"Item {k}", "category": "sale" if k >= 6 else "shoes"} for k in range(10)])
    client.send_events([{"user_id": f"u{u}", "item_id": f"i{k}", "type": "view"} for u in range(4) for k in range(6)])
    client.put_filter("shoes-only", 'category == "shoes"')
    client.put_promotion("sale", 'category == "sale"', share=0.25)
    client.put_promotion("later", "price < 10", boost=2.0, starts=4_000_000_000)
    for user in ("u0", "u1"):
        answer = client.recommend(user, n=4, exclude_seen=False, exploration=0.25)
        client.post_impression(answer.recommendation_id, user_id=user)
        promoted = next(r for r in answer.items if r.reason == "promoted")
        if user == "u0":
            client.send_event(user_id=user, item_id=promoted.item_id, type="click", recommendation_id=answer.recommendation_id)
    assert httpx.get(f"{url}/promotions/sale").json()["impressions"] == 2
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    tab = Tab(context.new_page(), url)
    try:
        tab.open("/dashboard/controls", "controls")
        assert "category == \"shoes\"" in tab.text("#filters-table tr[data-filter=shoes-only]")
        sale = tab.text("#promotions-table tr[data-promotion=sale]")
        assert "25.0% of each slate" in sale and "running" in sale and "50.0%" in sale  # 1 click of 2 promoted slots
        assert "not running" in tab.text("#promotions-table tr[data-promotion=later]")
        assert "score × 2" in tab.text("#promotions-table tr[data-promotion=later]")
        assert tab.count("#exploration-table tr[data-strategy]") == 1
        tab.page.screenshot(path=str(shots / "controls.png"), full_page=True)
        tab.assert_clean()
    finally:
        context.close()
