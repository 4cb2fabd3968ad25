"""Who may call the API: API keys checked by one FastAPI dependency (CORS: serving/cors.py).

Keys come from the settings (`api_keys`, `read_keys`; env `PULSEREC_API_KEYS`, `PULSEREC_READ_KEYS`,
comma separated) and are presented as `x-api-key: KEY` or `Authorization: Bearer KEY`.

Every route is in one of four classes (:func:`access_of`; the table is in docs/security.md):

* public: liveness (`/health`) and readiness (`/health/ready`, no personal data), the docs, the dashboard's HTML shell (it holds no data; the
  data it fetches is personal), and `/metrics` with `public_metrics = true`.
* catalogue reads (items, similar items, models, evaluation reports): open unless `read_keys`
  are configured; then a read or api key.
* personal reads: everything else that a GET reaches (profiles, recommendations, search,
  feedback, experiments, dashboard data, metrics) reveals something about a person, so it
  needs a read or api key as soon as *any* key is configured. A new GET route is personal
  unless it is added to a lighter class here.
* writes and admin (every other method, and `/stats`): an api key once `api_keys` exist.

Publishable keys (`publishable_keys`, for web pages) open only the browser SDK's routes, from
allowed origins and rate-limited: serving/publishable.py.

Nothing configured: the API is open (local development); `pulserec serve` warns when it
binds a non-loopback interface that way.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Iterable

from fastapi import FastAPI, HTTPException, Request

from pulserec.config import Settings
from pulserec.serving import publishable
from pulserec.serving.routes.deps import APP_PREFIX, engine_of

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


def _read_or_api_key(settings: Settings, key: str | None, guarded: bool, why: str = "") -> None:
    """Once `guarded`, a read or an api key (the two read classes differ only in when they are)."""
    if not guarded:
        return
    if key is None:
        raise _unauthorized(f"missing API key: {why}send {KEY_HEADER} or Authorization: Bearer")
    if not key_matches(key, (*settings.read_keys, *settings.api_keys)):
        raise _unauthorized("invalid API key")


def check_read(settings: Settings, key: str | None) -> None:
    """Serving endpoints: open unless read keys are configured; then a read or api key."""
    _read_or_api_key(settings, key, bool(settings.read_keys))


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


def check_personal(settings: Settings, key: str | None) -> None:
    """Reads that reveal a person: open only while no key at all is configured (read_keys cannot
    exist without api_keys, Settings.validate)."""
    _read_or_api_key(settings, key, bool(settings.api_keys), "this route reveals personal data; ")


def _open(settings: Settings, key: str | None) -> None:
    """Public routes."""


def key_role(settings: Settings, key: str | None) -> str:
    """What `key` may do: "admin" (writes, retrain), "read", "publishable" (the browser SDK's
    routes) or "none"; with no keys configured everyone is "admin" (the API is open)."""
    if not settings.api_keys or (key is not None and key_matches(key, settings.api_keys)):
        return "admin"
    if key is not None and key_matches(key, settings.read_keys):
        return "read"
    if key is not None and key_matches(key, settings.publishable_keys):
        return "publishable"
    return "none"


#: Route templates (as declared, e.g. `/reports/{path:path}`) by access class; see the module.
PUBLIC_PATHS = frozenset({"/health", "/health/ready", "/dashboard", "/dashboard/users/{user_id}", "/dashboard/items/{item_id}",
                          "/dashboard/{page}", "/dashboard/api/session", "/sdk/pulserec.js"})  # session: what the presented key may do
CATALOGUE_PATHS = frozenset({"/items/{item_id}", "/items/{item_id}/similar", "/models", "/reports/{path:path}",
                             "/jobs", "/jobs/{job_id}",  # jobs: model names, timings, results; no person
                             "/shop", "/shop/items/{item_id}", "/shop/search",  # the storefront shows the catalogue
                             "/filters", "/filters/{name}",  # merchandising rules and their
                             "/promotions", "/promotions/{name}"})  # aggregate CTR: no person
ADMIN_READ_PATHS = frozenset({"/stats", "/dashboard/api/config"})
METRICS_PATH = "/metrics"

Check = Callable[[Settings, "str | None"], None]


def access_of(method: str, path: str, settings: Settings) -> Check:
    """The check that a request for the route template `path` must pass (see the module)."""
    if method not in READ_METHODS or path in ADMIN_READ_PATHS:
        return check_write
    if path in PUBLIC_PATHS or (path == METRICS_PATH and settings.public_metrics):
        return _open
    if path in CATALOGUE_PATHS:
        return check_read
    return check_personal


# The access dependencies are `async`: they compare a header with the settings (no lock, no
# I/O), so they run on the event loop instead of costing a thread-pool hop per request.
async def require_read(request: Request) -> None:
    """Per-route marker for catalogue reads (`require_access` on the router applies the same check)."""
    check_read(engine_of(request).settings, presented_key(request))


async def require_write(request: Request) -> None:
    """Per-route marker for admin endpoints, whatever their method (also checked by `require_access`)."""
    check_write(engine_of(request).settings, presented_key(request))


async def require_access(request: Request) -> None:
    """The one access dependency, on every router: the route's class decides (see the module);
    a publishable key (serving/publishable.py) is admitted to its few routes only."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    if path is None:  # not `getattr(route, "path", request.url.path)`: that builds a URL for every request
        path = request.url.path
    if path.startswith(APP_PREFIX + "/"):  # an app's route: the same class, with that app's keys
        path = path[len(APP_PREFIX):]
    settings = engine_of(request).settings
    key = presented_key(request)
    if settings.publishable_keys:
        browser_key = request.query_params.get(publishable.KEY_PARAM)
        if browser_key is not None:
            if key is None and not key_matches(browser_key, settings.publishable_keys):
                raise _unauthorized(f"the {publishable.KEY_PARAM} query parameter takes publishable keys only "
                                    f"(send secret keys as {KEY_HEADER})")
            key = key or browser_key
        if key is not None and key_matches(key, settings.publishable_keys):
            if access_of(request.method, path, settings) is not _open:  # public routes stay open to everyone
                publishable.admit(request, path, key, settings)
            return
    elif key is None and path == publishable.SDK_EVENTS_PATH and not settings.api_keys:
        publishable.throttle(request, None, settings)  # an open API: the browsers' route is still limited
    access_of(request.method, path, settings)(settings, key)


def public_paths(settings: Settings) -> set[str]:
    """The documented paths that need no key under `settings`."""
    return {"/health", "/health/ready", "/dashboard/api/session", "/sdk/pulserec.js", *((METRICS_PATH,) if settings.public_metrics else ())}


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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposure_warning(host: str, settings: Settings) -> str | None:
    """A warning when the API would be reachable from other machines without read protection.

    Any configured key protects the personal reads (see the module), so the warning is for
    no keys at all: then anyone who can reach the address reads profiles and histories too."""
    if settings.api_keys or is_loopback(host):
        return None
    return (f"serving on {host} without API keys: anyone who can reach this address can read every user's profile, "
            "history and recommendations, and write and delete data. "
            "Set PULSEREC_API_KEYS (and PULSEREC_READ_KEYS) or bind 127.0.0.1.")
