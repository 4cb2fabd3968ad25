"""CORS for the origins of the setting `cors_origins`: preflights answered, others refused in JSON.

Starlette's CORSMiddleware answers a refused preflight with a 400 in plain text; this one says
which origin was refused and which setting admits it, as every other error of the API does. An
allowed origin gets `Access-Control-Allow-Origin` on every answer (and `Retry-After` exposed, so
the SDK can back off after a 429). A simple cross-origin request from another origin is passed on
without CORS headers: the browser then hides the answer from the page, and requests made with a
publishable key are refused outright (serving/publishable.py), since a beacon's write would
happen whether or not the page may read the answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI

from pulserec.serving.auth import KEY_HEADER

ALLOW_METHODS = "GET, POST, PUT, DELETE"
ALLOW_HEADERS = f"authorization, content-type, {KEY_HEADER}"
#: Seconds a browser may reuse a preflight's answer.
MAX_AGE_S = 600


class Cors:
    def __init__(self, app: Any, origins: Iterable[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        origin = headers.get(b"origin", b"").decode("latin-1")
        if not origin:
            await self.app(scope, receive, send)
            return
        allowed = origin in self.origins
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            await _preflight(send, origin, allowed)
            return
        if not allowed:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_allow(origin),
                                      (b"access-control-expose-headers", b"retry-after")]
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _allow(origin: str) -> list[tuple[bytes, bytes]]:
    return [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]


async def _preflight(send: Any, origin: str, allowed: bool) -> None:
    if allowed:
        status, body = 200, b"{}"
        extra = [*_allow(origin), (b"access-control-allow-methods", ALLOW_METHODS.encode()),
                 (b"access-control-allow-headers", ALLOW_HEADERS.encode()), (b"access-control-max-age", str(MAX_AGE_S).encode())]
    else:
        status, extra = 403, [(b"vary", b"Origin")]
        body = json.dumps({"detail": f"origin {origin!r} is not allowed: add it to the setting cors_origins"}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


def add_cors(app: FastAPI, origins: Iterable[str]) -> None:
    """Allow browsers on `origins` to call the API; no origins (the default) leaves CORS off."""
    allowed = list(origins)
    if allowed:
        app.add_middleware(Cors, origins=allowed)
