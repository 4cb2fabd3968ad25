"""Prometheus metrics of one app: HTTP traffic, ingestion, online-update lag, state and model sizes.

Each app gets its own :class:`CollectorRegistry` (tests run many apps in one process). Counters
and histograms are updated by :class:`~pulserec.serving.metrics_middleware.MetricsMiddleware`
(requests, errors) and by an ingest listener on the engine (events); state sizes and model
metadata are read from the engine when `/metrics` is scraped."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request

from pulserec.engine import STATE_UNAVAILABLE, Engine
from pulserec.runtime.insights import model_age_s, model_list
from pulserec.runtime.live import EventRate, RecentAnswers
from pulserec.recommend.service import Answer

#: perf_counter() at which the current HTTP request was received (set by the middleware).
REQUEST_RECEIVED: contextvars.ContextVar[float | None] = contextvars.ContextVar("pulserec_request_received", default=None)
#: Scope key under which a route leaves the :class:`Answer` it served (see :func:`note_answer`).
ANSWER_KEY = "pulserec.answer"

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
EVENT_AGE_BUCKETS = (0.1, 1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86_400.0, 7 * 86_400.0, 30 * 86_400.0)


def note_answer(request: Request, answer: Answer) -> None:
    """Let the metrics see which strategy served a request and which items it showed."""
    request.scope[ANSWER_KEY] = answer


class ServingMetrics:
    """Everything the app measures; `render()` is the Prometheus text exposition."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("pulserec_http_requests", "HTTP requests by route template, strategy and status code.",
                                ["method", "endpoint", "strategy", "status"], registry=r)
        self.latency = Histogram("pulserec_http_request_duration_seconds", "HTTP request latency (receipt to last byte queued).",
                                 ["method", "endpoint", "strategy"], buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("pulserec_http_errors", "HTTP 4xx/5xx answers by status class and cause (exception type or status).",
                              ["endpoint", "status_class", "cause"], registry=r)
        self.events = Counter("pulserec_events_ingested", "Events accepted and applied to the online state, by type.",
                              ["type"], registry=r)
        self.duplicates = Counter("pulserec_events_duplicate", "Events skipped because their event_id was already stored.",
                                  registry=r)
        self.apply_lag = Histogram("pulserec_online_update_lag_seconds",
                                   "Time from receiving an ingest request to its events being applied to the online state.",
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.event_age = Histogram("pulserec_event_time_lag_seconds",
                                   "Wall clock at apply time minus the newest event timestamp of each ingested batch.",
                                   buckets=EVENT_AGE_BUCKETS, registry=r)
        self.registry.register(EngineCollector(engine))
        #: The request counter's and latency histogram's children by (method, endpoint, strategy,
        #: status): as bounded as the labels (see metrics_middleware).
        self._children: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
        self.rates = EventRate()
        self.answers = RecentAnswers()
        engine.ingest_listeners.append(self.on_ingest)

    def close(self) -> None:
        """Stop listening to the engine (the app is going away)."""
        if self.on_ingest in self.engine.ingest_listeners:
            self.engine.ingest_listeners.remove(self.on_ingest)

    # -- ingestion (called by the engine, under no lock) -------------------------------------
    def on_ingest(self, accepted_by_type: Mapping[str, int], duplicates: int, latest_ts: float | None) -> None:
        for event_type, count in accepted_by_type.items():
            if count:
                self.events.labels(event_type).inc(count)
        if duplicates:
            self.duplicates.inc(duplicates)
        self.rates.add(accepted_by_type)
        received = REQUEST_RECEIVED.get()
        if received is not None:
            self.apply_lag.observe(time.perf_counter() - received)
        if latest_ts is not None:
            self.event_age.observe(max(0.0, time.time() - latest_ts))

    # -- requests (called by the middleware) -------------------------------------------------
    def observe_request(self, method: str, endpoint: str, strategy: str, status: int, seconds: float,
                        cause: str | None, answer: Answer | None) -> None:
        children = self._children.get((method, endpoint, strategy, status))
        if children is None:  # labels() takes a lock and checks its arguments: once per label set
            children = self.requests.labels(method, endpoint, strategy, str(status)), self.latency.labels(method, endpoint, strategy)
            self._children[(method, endpoint, strategy, status)] = children
        children[0].inc()
        children[1].observe(seconds)
        if status >= 400:
            self.errors.labels(endpoint, f"{status // 100}xx", cause or "http_error").inc()
        elif answer is not None:
            self.answers.observe_latency(answer.strategy, seconds)
            self.answers.observe_items(r.item_id for r in answer.items)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class EngineCollector(Collector):
    """Gauges read from the engine at scrape time: state sizes, clocks, models."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        yield from _state_health(self.engine)
        try:
            stats = self.engine.stats()
        except STATE_UNAVAILABLE:  # the shared state cannot answer: the health gauges say so
            return
        yield GaugeMetricFamily("pulserec_state_unapplied_events",
                                "Events stored but not (yet) applied to the online state (stored minus applied).",
                                value=float(max(0, stats["events_stored"] - stats["events_applied"])))
        for name, key, doc in (
            ("pulserec_state_items", "items", "Items in the catalogue (including items first seen in events)."),
            ("pulserec_state_users", "users", "Users and sessions with a profile."),
            ("pulserec_state_cooccurrence_nnz", "cooccurrence_nnz", "Non-zero entries of the item co-occurrence matrix."),
            ("pulserec_state_events_applied", "events_applied", "Events applied to the online state."),
            ("pulserec_store_events", "events_stored", "Events in the durable store."),
            ("pulserec_uptime_seconds", "uptime_s", "Seconds since the engine started."),
        ):
            yield GaugeMetricFamily(name, doc, value=float(stats[key]))
        if stats["event_time"] is not None:
            yield GaugeMetricFamily("pulserec_event_clock_lag_seconds",
                                    "Wall clock minus the newest event timestamp applied (how stale the event-time clock is).",
                                    value=max(0.0, time.time() - float(stats["event_time"])))
        yield from _model_metrics(model_list(self.engine))


def _state_health(engine: Engine) -> Iterator[Metric]:
    check = engine.health.readiness()["checks"]["state"]
    yield GaugeMetricFamily("pulserec_state_backend_up",
                            "1 while the online state backend answers (always 1 for the in-memory state).",
                            value=0.0 if check["status"] == "unreachable" else 1.0)
    yield GaugeMetricFamily("pulserec_state_ready",
                            "1 while the online state can serve; 0 while unreachable or being rebuilt from the log.",
                            value=1.0 if check["ok"] else 0.0)


def _model_metrics(models: list[dict[str, Any]]) -> Iterator[Metric]:
    info = GaugeMetricFamily("pulserec_model_info", "Serving strategies (value 1) with kind and version.",
                             labels=["name", "kind", "version"])
    age = GaugeMetricFamily("pulserec_model_age_seconds", "Seconds since a batch model was trained.", labels=["name"])
    trained_on = GaugeMetricFamily("pulserec_model_trained_on", "Interactions a batch model was trained on.", labels=["name"])
    for model in models:
        info.add_metric([model["name"], model["kind"], str(model.get("version", "online"))], 1.0)
        seconds = model_age_s(model)
        if seconds is not None:
            age.add_metric([model["name"]], seconds)
        if isinstance(model.get("trained_on"), (int, float)):
            trained_on.add_metric([model["name"]], float(model["trained_on"]))
    yield from (info, age, trained_on)
