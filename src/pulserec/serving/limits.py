"""ASGI middleware: request bodies over a size limit are refused (413) before parsing; the
settings' id limit reaches the request models' validators."""

from __future__ import annotations

import json
from typing import Any

from pulserec.validation import ID_LIMIT


class SettingLimits:
    """Sets :data:`pulserec.validation.ID_LIMIT` to this server's `max_id_len` for each request."""

    def __init__(self, app: Any, max_id_len: int) -> None:
        self.app = app
        self.max_id_len = max_id_len

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        token = ID_LIMIT.set(self.max_id_len)
        try:
            await self.app(scope, receive, send)
        finally:
            ID_LIMIT.reset(token)


class BodySizeLimit:
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reject(send, 400, "invalid Content-Length header")
                    return
                if declared > self.max_bytes:
                    await _reject(send, 413, f"request body larger than {self.max_bytes} bytes")
                    return
        received = 0
        too_large = False

        async def limited_receive() -> dict:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await _reject(send, 413, f"request body larger than {self.max_bytes} bytes")


class _TooLarge(Exception):
    pass


async def _reject(send: Any, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
