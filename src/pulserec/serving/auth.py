"""Who may call the API: API keys checked by FastAPI dependencies, and opt-in CORS.

Keys come from the settings (`api_keys`, `read_keys`; env `PULSEREC_API_KEYS`, `PULSEREC_READ_KEYS`,
comma separated) and are presented as `x-api-key: KEY` or `Authorization: Bearer KEY`.

* `api_keys` configured: writes and admin endpoints need one of them.
* `read_keys` configured too: serving endpoints need a read key or an api key.
* nothing configured: the API is open (local development); `pulserec serve` warns when it
  binds a non-loopback interface that way.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware

from pulserec.config import Settings
from pulserec.serving.routes.deps import engine_of

#: Methods that only read; every other method needs a write key.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
KEY_HEADER = "x-api-key"

#: How the keys are documented in the OpenAPI schema (see :func:`document_security`).
SECURITY_SCHEMES = {
    "APIKeyHeader": {"type": "apiKey", "in": "header", "name": KEY_HEADER,
                     "description": "An API key (when keys are configured)."},
    "HTTPBearer": {"type": "http", "scheme": "bearer", "description": "The same API key as a bearer token."},
}


def presented_key(request: Request) -> str | None:
    """The key the caller sent, from `x-api-key` or else `Authorization: Bearer`.

    Read straight from the headers: the checks below run on every request, and FastAPI's
    security-scheme dependencies cost more than the check itself."""
    headers = request.headers
    key = headers.get(KEY_HEADER)
    if key:
        return key
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


def key_matches(presented: str, keys: Iterable[str]) -> bool:
    """True when `presented` equals one of `keys`, in constant time.

    Every key is compared (no early exit) with `hmac.compare_digest`, on UTF-8 bytes so that
    any header value can be compared."""
    given = presented.encode("utf-8", "surrogatepass")
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key.encode("utf-8"))
    return found


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def check_read(settings: Settings, key: str | None) -> None:
    """Serving endpoints: open unless read keys are configured; then a read or api key."""
    if not settings.read_keys:
        return
    if key is None:
        raise _unauthorized(f"missing API key: send {KEY_HEADER} or Authorization: Bearer")
    if not key_matches(key, (*settings.read_keys, *settings.api_keys)):
        raise _unauthorized("invalid API key")


def check_write(settings: Settings, key: str | None) -> None:
    """Writes and admin endpoints: open unless api keys are configured; then an api key."""
    if not settings.api_keys:
        return
    if key is None:
        raise _unauthorized(f"missing API key: send {KEY_HEADER} or Authorization: Bearer")
    if key_matches(key, settings.api_keys):
        return
    if key_matches(key, settings.read_keys):
        raise HTTPException(403, "this API key is read-only")
    raise _unauthorized("invalid API key")


async def require_read(request: Request) -> None:
    """Dependency for read-only endpoints."""
    check_read(engine_of(request).settings, presented_key(request))


async def require_write(request: Request) -> None:
    """Dependency for endpoints that change data or expose operational details."""
    check_write(engine_of(request).settings, presented_key(request))


async def require_by_method(request: Request) -> None:
    """Router-wide dependency: GET/HEAD need read access, every other method write access."""
    settings = engine_of(request).settings
    if request.method in READ_METHODS:
        check_read(settings, presented_key(request))
    else:
        check_write(settings, presented_key(request))


def document_security(app: FastAPI, open_paths: Iterable[str] = ("/health",)) -> None:
    """Declare the key schemes in the OpenAPI schema, on every operation but `open_paths`."""
    build = app.openapi
    open_paths = set(open_paths)

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
            for path, operations in schema.get("paths", {}).items():
                if path in open_paths:
                    continue
                for operation in operations.values():
                    operation.setdefault("security", [{name: []} for name in SECURITY_SCHEMES])
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def add_cors(app: FastAPI, origins: Iterable[str]) -> None:
    """Allow browsers on `origins` to call the API; no origins (the default) leaves CORS off."""
    allowed = list(origins)
    if not allowed:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=allowed,
        allow_methods=["GET", "POST", "PUT", "DELETE"],
        allow_headers=["authorization", "content-type", KEY_HEADER],
        allow_credentials=False,
        max_age=600,
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposure_warning(host: str, settings: Settings) -> str | None:
    """A warning when the API would be reachable from other machines without any API key."""
    if settings.api_keys or is_loopback(host):
        return None
    return (f"serving on {host} without API keys: anyone who can reach this address can write and delete data. "
            "Set PULSEREC_API_KEYS (and PULSEREC_READ_KEYS) or bind 127.0.0.1.")
