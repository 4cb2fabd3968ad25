"""Publishable keys: what a key that sits in a web page may do, from which origins and how often.

A publishable key is public (anyone can read it in the page's source), so it grants only what a
shop's visitors do anyway: send the SDK's events (`POST /sdk/events`, restricted to the SDK's
event types there) and read recommendations (and the personalised item search). It travels in the `key` query parameter, so that
`navigator.sendBeacon` (which cannot set headers) and simple cross-origin GETs (no preflight) can
carry it; secret keys are refused there, since URLs end up in logs and browser histories.

A request with a publishable key is refused (403) when its `Origin` is neither the server's own
nor in the setting `cors_origins`, and each key and client address may make `sdk_rate` requests
a second in bursts of `sdk_burst` (429 with `Retry-After`). A browser always sends `Origin` on a
cross-origin request and on every POST; a request without one is not a cross-origin browser
request, and a non-browser client could send any `Origin` it likes, so it is not refused for that.
"""

from __future__ import annotations

import math

from fastapi import HTTPException, Request

from pulserec.config import Settings

SDK_EVENTS_PATH = "/sdk/events"
KEY_PARAM = "key"
#: (method, route template) that a publishable key may call.
PUBLISHABLE_ROUTES = frozenset({
    ("POST", SDK_EVENTS_PATH),
    ("GET", "/users/{user_id}/recommendations"),
    ("GET", "/sessions/{session_id}/recommendations"),
    ("GET", "/items/{item_id}/similar"),
    ("GET", "/search"),  # items matching a query, ranked for the asker (routes/search.py)
})


def own_origin(request: Request) -> str:
    """The origin the request was sent to (the page is same-origin when it came from here)."""
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def check_origin(request: Request, settings: Settings) -> None:
    origin = request.headers.get("origin")
    if origin is not None and origin not in settings.cors_origins and origin != own_origin(request):
        raise HTTPException(403, f"origin {origin!r} may not use publishable keys: add it to the setting cors_origins")


def throttle(request: Request, key: str | None, settings: Settings) -> None:
    """One request of (key, client address) against the app's :class:`RateLimiter`; 429 when spent."""
    host = request.client.host if request.client else ""
    wait = request.app.state.sdk_limiter.wait((key, host))
    if wait:
        raise HTTPException(429, f"rate limit of {settings.sdk_rate:g} requests/s (bursts of {settings.sdk_burst}) "
                                 f"per publishable key and client address exceeded; retry after {wait:.2f} s",
                            headers={"Retry-After": str(max(1, math.ceil(wait)))})


def admit(request: Request, path: str, key: str, settings: Settings) -> None:
    """The checks of a request made with the publishable key `key` for the route template `path`."""
    if (request.method, path) not in PUBLISHABLE_ROUTES:
        raise HTTPException(403, "a publishable key may only send SDK events (POST /sdk/events) and read recommendations "
                                 "(/users/{id}/recommendations, /sessions/{id}/recommendations, /items/{id}/similar, /search)")
    check_origin(request, settings)
    throttle(request, key, settings)
