"""GET /metrics on a real server, parsed with prometheus_client's own parser; the live windows."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulserec.serving.app import create_app
from pulserec.runtime.live import EventRate, RecentAnswers, percentile
from pulserec.serving.server import BackgroundServer


def scrape(url: str) -> dict[str, list]:
    """Metric family name -> its samples."""
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def value(families: dict[str, list], sample_name: str, **labels: str) -> float:
    """Sum of the samples called `sample_name` whose labels include `labels` (0 if none)."""
    family = sample_name.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    return sum(s.value for s in families.get(family, [])
               if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_counters_move_with_traffic_and_use_route_templates(client, server):
    before = scrape(server.url)
    client.put_items([{"item_id": "shoe-1", "title": "Shoe", "category": "shoes"}, {"item_id": "shoe-2", "title": "Shoe 2"}])
    client.send_events([{"user_id": "ann", "item_id": "shoe-1", "type": "view"},
                        {"user_id": "ann", "item_id": "shoe-2", "type": "purchase"},
                        {"user_id": "bob", "item_id": "shoe-1", "type": "view"}])
    client.recommend("ann", n=3)
    client.recommend("bob", n=3, strategy="item_knn")
    after = scrape(server.url)

    endpoint = "/users/{user_id}/recommendations"
    assert value(after, "pulserec_http_requests_total", endpoint=endpoint, strategy="default", status="200") == 1
    assert value(after, "pulserec_http_requests_total", endpoint=endpoint, strategy="item_knn", status="200") == 1
    assert value(after, "pulserec_http_request_duration_seconds_count", endpoint=endpoint) == 2
    assert not any("ann" in str(s.labels) for s in after["pulserec_http_requests"])  # templates, not raw paths
    assert value(after, "pulserec_events_ingested_total", type="view") - value(before, "pulserec_events_ingested_total", type="view") == 2
    assert value(after, "pulserec_events_ingested_total", type="purchase") == 1
    assert value(after, "pulserec_online_update_lag_seconds_count") == 1  # one ingest request
    assert value(after, "pulserec_event_time_lag_seconds_count") == 1
    assert value(after, "pulserec_state_items") == 2 and value(after, "pulserec_state_users") == 2
    assert value(after, "pulserec_state_cooccurrence_nnz") > 0
    assert value(after, "pulserec_store_events") == 3
    assert value(after, "pulserec_model_info", name="item_knn", kind="ItemKNN") == 1


def test_duplicates_are_counted_separately(client, server):
    event = {"event_id": "dup", "user_id": "u", "item_id": "i", "type": "click"}
    client.send_events([event, event])
    families = scrape(server.url)
    assert value(families, "pulserec_events_ingested_total", type="click") == 1
    assert value(families, "pulserec_events_duplicate_total") == 1


def test_errors_by_status_class_and_cause(client, server, engine):
    class Broken:
        name = "broken"

        def score(self, query, n_items):
            raise RuntimeError("model exploded")

    engine.service.register(Broken())
    client.put_item("i", title="Something to score")
    assert httpx.post(f"{server.url}/events", content=b"{oops", headers={"content-type": "application/json"}).status_code == 400
    assert httpx.get(f"{server.url}/users/u/recommendations", params={"strategy": "nope"}).status_code == 422
    assert httpx.get(f"{server.url}/users/u/recommendations", params={"n": 0}).status_code == 422
    assert httpx.get(f"{server.url}/users/nobody/profile").status_code == 404
    assert httpx.get(f"{server.url}/no/such/route").status_code == 404
    assert httpx.get(f"{server.url}/users/u/recommendations", params={"strategy": "broken"}).status_code == 500
    families = scrape(server.url)
    errors = "pulserec_http_errors_total"
    assert value(families, errors, endpoint="/events", status_class="4xx", cause="HTTPException") == 1  # parse_json raises it
    recs = "/users/{user_id}/recommendations"
    assert value(families, errors, endpoint=recs, status_class="4xx", cause="HTTPException") == 1
    assert value(families, errors, endpoint=recs, status_class="4xx", cause="RequestValidationError") == 1
    assert value(families, errors, endpoint=recs, status_class="5xx", cause="RuntimeError") == 1
    assert value(families, errors, endpoint="/users/{user_id}/profile", cause="HTTPException") == 1
    assert value(families, errors, endpoint="unmatched", status_class="4xx") == 1
    assert value(families, "pulserec_http_requests_total", endpoint=recs, strategy="broken", status="500") == 1


def test_a_refused_request_is_labelled_with_the_strategy_it_asked_for(client, server):
    """No answer, so the strategy label comes from the query string: also when its key is
    percent-encoded (the middleware skips parsing only a query that cannot name it)."""
    recs = "/users/{user_id}/recommendations"
    before = scrape(server.url)
    for query in ("n=0&strategy=item_knn", "n=0&str%61tegy=item_knn", "n=0", "n=0&strategy=nope"):
        assert httpx.get(f"{server.url}/users/u/recommendations?{query}").status_code == 422
    after = scrape(server.url)
    moved = {strategy: value(after, "pulserec_http_requests_total", endpoint=recs, strategy=strategy, status="422")
             - value(before, "pulserec_http_requests_total", endpoint=recs, strategy=strategy, status="422")
             for strategy in ("item_knn", "", "nope")}
    assert moved == {"item_knn": 2, "": 2, "nope": 0}


def test_each_app_has_its_own_registry(engine):
    first, second = create_app(engine), create_app(engine)
    assert first.state.metrics.registry is not second.state.metrics.registry
    with BackgroundServer(engine) as server:
        httpx.get(f"{server.url}/health")
        assert value(scrape(server.url), "pulserec_http_requests_total", endpoint="/health") == 1


def test_model_age_and_training_size_come_from_model_metadata(client, server, engine):
    class Trained:
        name = "als"
        meta = {"trained_on": 1234, "trained_at": 1.0, "version": "v7"}

        def score(self, query, n_items):
            return np.zeros(n_items)

    engine.service.register(Trained())
    families = scrape(server.url)
    assert value(families, "pulserec_model_info", name="als", version="v7") == 1
    assert value(families, "pulserec_model_trained_on", name="als") == 1234
    assert value(families, "pulserec_model_age_seconds", name="als") > 1e9
    assert client.models()["models"][0]["name"] == "als"


def test_event_rate_ring_keeps_the_last_seconds_by_type():
    rate = EventRate(seconds=10)
    rate.add({"view": 3, "click": 1}, now=100.2)
    rate.add({"view": 2}, now=100.9)
    rate.add({"purchase": 1}, now=103.5)
    series = rate.series(window=5, now=104.1)
    assert [p["t"] for p in series] == [99, 100, 101, 102, 103]
    assert series[1] == {"t": 100, "total": 6, "by_type": {"view": 5, "click": 1}}
    assert series[4]["by_type"] == {"purchase": 1}
    rate.add({"view": 7}, now=110.0)  # same slot as second 100: the old count is dropped
    assert rate.series(window=9, now=111.0)[-1]["by_type"] == {"view": 7}
    assert all(p["total"] == 0 for p in rate.series(window=9, now=111.0)[:-1] if p["t"] == 100)
    with pytest.raises(ValueError):
        EventRate(seconds=0)


def test_recent_answers_percentiles_and_coverage():
    assert percentile([], 50) is None
    assert percentile([5, 1, 3, 2, 4], 50) == 3 and percentile(list(range(1, 101)), 99) == 99
    answers = RecentAnswers(size=3)
    for seconds, items in ((0.001, ["a", "b"]), (0.002, ["b", "c"]), (0.010, ["c"]), (0.004, ["d"])):
        answers.observe_latency("default", seconds)
        answers.observe_items(items)
    latency = answers.latency_ms()
    assert latency["count"] == 3 and latency["overall"]["p50"] == 4.0 and latency["overall"]["p99"] == 10.0
    assert answers.coverage(10) == {"answers": 3, "distinct_items": 3, "catalogue_items": 10, "share": 0.3}
    assert answers.coverage(0)["share"] is None
