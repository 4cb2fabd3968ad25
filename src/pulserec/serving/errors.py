"""Uniform 4xx error bodies: {"detail": message, "errors": [{"field": "events[2].timestamp", "message": ...}]}."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.routing import Match

from pulserec.serving.routes.deps import engine_of
from pulserec.store.failures import StorageError, storage_error
from pulserec.validation import ID_PATTERN, InvalidInput


def field_path(loc: Sequence[Any]) -> str:
    """('body', 'events', 2, 'timestamp') -> 'events[2].timestamp'."""
    parts: list[str] = []
    for piece in loc:
        if piece in ("body", "query", "path") and not parts:
            continue
        if isinstance(piece, int):
            parts.append(f"[{piece}]")
        else:
            parts.append(("." if parts else "") + str(piece))
    return "".join(parts) or "body"


def parse_json(raw: bytes) -> Any:
    """A request body read by hand (to name the failing event, or whatever its content type: a
    beacon sends text/plain) parsed as JSON; a 400 naming the problem."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise HTTPException(400, "malformed JSON: nested too deeply") from None


#: What an id that breaks validation.ID_PATTERN is told (instead of the pattern itself).
BAD_ID = "must be printable text, not whitespace only (no control characters)"


def error_items(errors: Iterable[dict[str, Any]], prefix: Sequence[Any] = ()) -> list[dict[str, str]]:
    out = []
    for error in errors:
        loc = [*prefix, *[p for p in error.get("loc", ()) if not str(p).startswith("function-after")]]
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        if error.get("type") == "string_pattern_mismatch" and (error.get("ctx") or {}).get("pattern") == ID_PATTERN:
            message = BAD_ID
        out.append({"field": field_path(loc), "message": message})
    return out


def validation_response(items: list[dict[str, str]], status: int = 422) -> JSONResponse:
    head = "; ".join(f"{e['field']}: {e['message']}" for e in items[:5])
    more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
    return JSONResponse({"detail": f"invalid input: {head}{more}", "errors": items}, status_code=status)


async def on_request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        ctx = errors[0].get("ctx", {})
        return JSONResponse({"detail": f"malformed JSON: {ctx.get('error', 'cannot parse body')}"}, status_code=400)
    return validation_response(error_items(errors))


async def on_invalid_input(request: Request, exc: InvalidInput) -> JSONResponse:
    """A rule of the settings broken (`max_n`, `max_id_len`, value ranges): 422 naming the field."""
    return validation_response([{"field": exc.field, "message": exc.message, **exc.details}])


async def on_storage_error(request: Request, exc: Exception) -> JSONResponse:
    """A store that cannot work now: 507 (disk full) or 503, naming the cause, never a bare 500.
    A raw SQLite error (a read) is classified the same way; one that names no known cause is a 500."""
    failure = exc if isinstance(exc, StorageError) else storage_error(exc)  # type: ignore[arg-type]
    if failure is None:
        return JSONResponse({"detail": f"storage error: {exc}", "cause": "unknown"}, status_code=500)
    return JSONResponse({"detail": f"storage unavailable: {failure}", "cause": failure.kind},
                        status_code=failure.status, headers={"Retry-After": "10"})


async def on_pydantic_validation(request: Request, exc: ValidationError) -> JSONResponse:
    return validation_response(error_items(exc.errors()))


class FieldError(BaseModel):
    field: str
    message: str
    #: For a filter expression: the 1-based column of the error and what was expected there.
    position: int | None = None
    expected: list[str] | None = None


class ErrorBody(BaseModel):
    """Every 4xx answer: a one-line `detail`, and per-field `errors` for invalid input."""

    detail: str
    errors: list[FieldError] | None = None


#: OpenAPI extension of an operation: the rules a schema-valid request may still break (a 422
#: whose `detail` contains the rule's text). They depend on the state (an unknown experiment),
#: the clock (a timestamp in the future) or compare two fields (min_price > max_price), which
#: JSON Schema cannot state; everything else is in the schema (serving/openapi.py).
BEYOND_SCHEMA = "x-rules-beyond-schema"


def beyond_schema(*rules: str) -> dict[str, Any]:
    """`openapi_extra` of a route whose schema-valid requests may be refused for `rules`."""
    return {BEYOND_SCHEMA: list(rules)}


#: The error answers every route may give, for the OpenAPI document.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Malformed request (e.g. invalid JSON)"},
    401: {"model": ErrorBody, "description": "Missing or invalid API key"},
    403: {"model": ErrorBody, "description": "The API key may not do this (read-only key)"},
    404: {"model": ErrorBody, "description": "Unknown user, item or session"},
    413: {"model": ErrorBody, "description": "Body or batch over the configured limit"},
    422: {"model": ErrorBody, "description": "Invalid input; `errors` names each bad field (a query parameter "
                                             "given more than once too: each takes one value)"},
    503: {"model": ErrorBody, "description": "A dependency is unavailable now: the shared Redis state, or the store "
                                             "(read-only, I/O error, locked; `cause` names it); retry after "
                                             "`Retry-After` seconds. For POST /events, `stored` says whether the "
                                             "events were stored (then they are applied later, and a retry with the "
                                             "same event ids answers `duplicates`)"},
    507: {"model": ErrorBody, "description": "The disk holding the store is full (`cause`: disk_full)"},
}


def unavailable(detail: str, retry_after_s: int, **extra: Any) -> JSONResponse:
    """503 with Retry-After: the request was right, a dependency cannot serve it now."""
    return JSONResponse({"detail": detail, "retry_after_s": retry_after_s, **extra}, status_code=503,
                        headers={"Retry-After": str(retry_after_s)})


async def on_state_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The online state is unreachable, stalled or being rebuilt (nothing was written)."""
    retry = int(getattr(exc, "retry_after_s", 2))
    _note_failure(request, exc)
    return unavailable(f"online state unavailable: {type(exc).__name__}: {exc}", retry)


async def on_stored_not_applied(request: Request, exc: Exception) -> JSONResponse:
    """POST /events stored the events but the online state could not take them now."""
    result = exc.result  # type: ignore[attr-defined]
    return unavailable(f"{exc}; the stored events are applied when the state is back (a retry with the same "
                       "event ids answers them as duplicates)", int(exc.retry_after_s),  # type: ignore[attr-defined]
                       stored=True, applied=False, accepted=result.accepted, duplicates=result.duplicates,
                       event_ids=result.event_ids)


def _note_failure(request: Request, exc: Exception) -> None:
    supervisor = engine_of(request).supervisor
    if supervisor is not None and not isinstance(exc, RuntimeError):  # a Redis error, not "resyncing"
        supervisor.note_failure(exc)


#: The methods a 405's `Allow` may list: those the API's routes are declared with.
METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


async def on_method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """405 whose `Allow` header lists every method of the path (Starlette's lists one route's only)."""
    allowed = allowed_methods(request.app.router.routes, request.scope)
    return JSONResponse({"detail": f"method {request.method} not allowed here"}, status_code=405,
                        headers={"Allow": ", ".join(allowed)})


def allowed_methods(routes: Iterable[Any], scope: dict[str, Any]) -> list[str]:
    """The methods some route answers at this request's path: each asked of the app's own routes
    as a request of that method (a fresh scope per probe). Walking the included routers' routes
    would not do: the `/apps/{app}` mount shares its route objects with the plain mount (FastAPI
    keeps one route and a per-mount context in the scope), so such a walk saw one method only."""
    allowed = []
    for method in METHODS:
        probe = {"type": "http", "method": method, "path": scope["path"], "root_path": scope.get("root_path", ""),
                 "headers": [], "query_string": b""}
        if any(route.matches(probe)[0] == Match.FULL for route in routes):
            allowed.append(method)
    return sorted(allowed)
