"""What operators see and use, added to an app in one call: metrics, dashboard, search, reports, docs."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from pulserec.engine import Engine
from pulserec.serving.docs import STATIC_URL, add_docs
from pulserec.serving.examples import add_response_examples
from pulserec.serving.metrics import ServingMetrics
from pulserec.serving.mounting import mount_routers
from pulserec.serving.metrics_middleware import MetricsMiddleware, instrument_exception_handlers
from pulserec.serving.routes import dashboard, dashboard_api, monitoring, reports


def add_operations(app: FastAPI, engine: Engine) -> ServingMetrics:
    """Install /metrics, /search, /dashboard, /reports, /static and offline /docs on `app`.

    Call it last in the factory: the metrics middleware must wrap every other middleware, and
    the exception handlers registered so far are instrumented to report their exception type."""
    metrics = ServingMetrics(engine)
    app.state.metrics = metrics
    mount_routers(app, (monitoring, dashboard, dashboard_api, reports))
    app.mount(STATIC_URL, StaticFiles(directory=dashboard.STATIC_DIR), name="static")
    add_docs(app)
    add_response_examples(app)
    instrument_exception_handlers(app.exception_handlers)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return metrics
