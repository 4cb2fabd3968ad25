"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from pulserec import __version__
from pulserec.engine import Engine
from pulserec.serving.errors import on_pydantic_validation, on_request_validation
from pulserec.serving.limits import BodySizeLimit
from pulserec.serving.operations import add_operations
from pulserec.serving.routes import events, feedback, items, recommendations, system, users

DESCRIPTION = """Real-time recommendations: send behaviour events, get fresh recommendations in milliseconds.

Every accepted event updates popularity, item co-occurrence, the user's profile and session
before `POST /events` returns, so the very next request reflects it."""


def create_app(engine: Engine) -> FastAPI:
    # docs_url=None: /docs is served from packaged assets by add_operations (works offline).
    app = FastAPI(title="pulserec", version=__version__, description=DESCRIPTION, docs_url=None, redoc_url=None)
    app.state.engine = engine
    app.add_exception_handler(RequestValidationError, on_request_validation)  # type: ignore[arg-type]
    app.add_exception_handler(ValidationError, on_pydantic_validation)  # type: ignore[arg-type]
    for module in (events, items, users, recommendations, feedback, system):
        app.include_router(module.router)
    app.add_middleware(BodySizeLimit, max_bytes=engine.settings.max_body_bytes)
    add_operations(app, engine)  # last: its middleware wraps the others
    return app
