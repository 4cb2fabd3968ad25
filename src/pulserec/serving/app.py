"""The FastAPI application factory."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from pulserec import __version__
from pulserec.config import Settings
from pulserec.engine import STATE_UNAVAILABLE, Engine, StoredNotApplied
from pulserec.runtime.apps import Apps
from pulserec.runtime.tasks import Background
from pulserec.serving.access_log import ACCESS_LOGGER, redact_access_log
from pulserec.serving.auth import document_security, public_paths
from pulserec.serving.cors import add_cors
from pulserec.serving.errors import (
    ERROR_RESPONSES,
    on_invalid_input,
    on_method_not_allowed,
    on_pydantic_validation,
    on_request_validation,
    on_storage_error,
    on_state_unavailable,
    on_stored_not_applied,
)
from pulserec.serving.limits import BodySizeLimit, SettingLimits
from pulserec.serving.openapi import document_rules
from pulserec.serving.rate_limit import RateLimiter
from pulserec.serving.operations import add_operations
from pulserec.serving.metrics import ServingMetrics
from pulserec.serving.mounting import document_apps, mount_routers
from pulserec.serving.routes.deps import single_valued_query
from pulserec.serving.routes import (apps, controls, events, feedback, items, jobs, recommendations, sdk, search, shop,
                                     social, system, users)
from pulserec.store.failures import StorageError
from pulserec.validation import InvalidInput

DESCRIPTION = """Real-time recommendations: send behaviour events, get fresh recommendations in milliseconds.

Every accepted event updates popularity, item co-occurrence, the user's profile and session
before `POST /events` returns, so the very next request reflects it."""


def create_app(engine: Engine, close_engine: bool = False) -> FastAPI:
    """The API over `engine` (the `default` app) and the apps created under its data dir
    (`/apps/{app}/...`, runtime/apps.py). While it runs, the background tasks of each open engine
    (model watcher, snapshots) run and, with pseudonymised ids, the access log shows pseudonyms
    only; with `close_engine` the engine is closed when the app shuts down (the other apps always are)."""
    registry = Apps(engine, attach=AppExtras)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        background = Background(engine)
        # Installed here, in the serving process, after uvicorn configured its loggers.
        redact = redact_access_log(engine.pseudonym) if engine.pseudonym else None
        try:
            yield
        finally:
            if redact:
                logging.getLogger(ACCESS_LOGGER).removeFilter(redact)
            background.stop()
            registry.close()
            if close_engine:
                engine.close()

    # docs_url=None: /docs is served from packaged assets by add_operations (works offline).
    app = FastAPI(title="pulserec", version=__version__, description=DESCRIPTION, docs_url=None, redoc_url=None,
                  lifespan=lifespan)
    app.state.engine = engine
    app.state.apps = registry
    app.add_exception_handler(RequestValidationError, on_request_validation)  # type: ignore[arg-type]
    app.add_exception_handler(ValidationError, on_pydantic_validation)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidInput, on_invalid_input)  # type: ignore[arg-type]
    app.add_exception_handler(StorageError, on_storage_error)
    app.add_exception_handler(sqlite3.Error, on_storage_error)
    app.add_exception_handler(405, on_method_not_allowed)
    app.add_exception_handler(StoredNotApplied, on_stored_not_applied)
    for unavailable in STATE_UNAVAILABLE:
        app.add_exception_handler(unavailable, on_state_unavailable)
    # One access dependency on every router: the route's class (public, catalogue, personal,
    # write) is declared in serving/auth.py, and a GET route nobody classified is personal.
    mount_routers(app, (events, items, users, social, recommendations, search, feedback, controls, system, jobs, sdk, shop))
    app.include_router(apps.router, responses=ERROR_RESPONSES, dependencies=[Depends(single_valued_query)])
    app.state.sdk_limiter = RateLimiter(engine.settings.sdk_rate, engine.settings.sdk_burst)  # publishable keys
    app.add_middleware(BodySizeLimit, max_bytes=engine.settings.max_body_bytes)
    app.add_middleware(SettingLimits, max_id_len=engine.settings.max_id_len)
    add_cors(app, engine.settings.cors_origins)
    add_operations(app, engine)  # last: its middleware wraps the others
    document_security(app, public_paths(engine.settings))
    document_rules(app, engine)
    document_apps(app)  # last: it copies every documented operation under /apps/{app}
    return app


class AppExtras:
    """What runs beside an app's engine while it is open: its own metrics and background tasks."""

    def __init__(self, name: str, engine: Engine) -> None:
        self.metrics = ServingMetrics(engine)
        self.background = Background(engine)

    def close(self) -> None:
        self.background.stop()
        self.metrics.close()


def app_from_env() -> FastAPI:
    """App factory for worker processes (`uvicorn --factory pulserec.serving.app:app_from_env`).

    Settings come from PULSEREC_* env vars (PULSEREC_DATA_DIR, PULSEREC_API_KEYS, ...). With
    PULSEREC_FOLLOW_LOG=1, set by `pulserec serve --workers N`, the engine follows the log
    shared by all workers; the engine closes when the worker shuts down."""
    settings = Settings.load()
    if settings.follow_log:
        from pulserec.replica import ReplicaEngine

        engine: Engine = ReplicaEngine(settings)
    else:
        engine = Engine(settings)
    return create_app(engine, close_engine=True)
