"""ASGI middleware that times every HTTP request and records it in :class:`ServingMetrics`.

Labels stay bounded: the endpoint is the route template (`/users/{user_id}/profile`, never the
raw path), the strategy is one the engine knows, and the error cause is an exception type name
or the HTTP status phrase."""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pulserec.serving.metrics import ANSWER_KEY, REQUEST_RECEIVED, ServingMetrics
from pulserec.serving.routes.deps import APP_KEY

#: Scope key where instrumented exception handlers leave the type name of the handled exception.
CAUSE_KEY = "pulserec.error_cause"
UNMATCHED = "unmatched"

ExceptionHandler = Callable[[Request, Exception], Awaitable[Any] | Any]


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = time.perf_counter()
        token = REQUEST_RECEIVED.set(received)
        status = 500
        cause: str | None = None

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        except Exception as exc:
            status, cause = 500, type(exc).__name__
            raise
        finally:
            REQUEST_RECEIVED.reset(token)
            if status >= 400 and cause is None:
                cause = scope.get(CAUSE_KEY) or _status_phrase(status)
            metrics = self._metrics_of(scope)
            metrics.observe_request(scope["method"], endpoint_of(scope), self._strategy(scope, metrics), status,
                                    time.perf_counter() - received, cause, scope.get(ANSWER_KEY))

    def _metrics_of(self, scope: Scope) -> ServingMetrics:
        """The metrics of the app that served the request (the default app's when none did)."""
        opened = scope.get(APP_KEY)
        extras = opened.extras if opened is not None else None
        return extras.metrics if extras is not None else self.metrics

    def _strategy(self, scope: Scope, metrics: ServingMetrics) -> str:
        """The strategy that served the request, or the known one it asked for; '' if none."""
        answer = scope.get(ANSWER_KEY)
        if answer is not None:
            return answer.strategy
        query = scope.get("query_string", b"")
        if b"strategy" not in query and b"%" not in query:  # no such key, even percent-decoded: skip the parse
            return ""
        asked = QueryParams(query).get("strategy")
        return asked if asked and metrics.engine.serves(asked) else ""


def endpoint_of(scope: Scope) -> str:
    """The route template that served (or would serve) the request, or 'unmatched'."""
    route = scope.get("route")
    if route is None:  # refused before routing (e.g. body too large): match it ourselves
        app = scope.get("app")
        for candidate in getattr(app, "routes", ()):
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                route = candidate
                break
    return getattr(route, "path", None) or UNMATCHED


def instrument_exception_handlers(handlers: dict[Any, ExceptionHandler]) -> None:
    """Wrap each handler so the middleware learns the type of the exception it turned into a 4xx."""
    for key, handler in list(handlers.items()):
        if key in (500, Exception):
            continue
        handlers[key] = _tagging(handler)


def _tagging(handler: ExceptionHandler) -> ExceptionHandler:
    async def tagged(request: Request, exc: Exception) -> Any:
        request.scope[CAUSE_KEY] = type(exc).__name__
        result = handler(request, exc)
        return await result if inspect.isawaitable(result) else result

    tagged.__wrapped__ = handler  # type: ignore[attr-defined]
    return tagged


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).name.lower()
    except ValueError:
        return f"status_{status}"
