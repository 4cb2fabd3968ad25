"""Connection timeouts uvicorn does not have: headers and body must arrive in bounded time.

uvicorn times out idle keep-alive connections only. A client that sends half a request line, or
a body one byte a minute, held its connection (and the request's memory) for as long as it
liked: 65 s in the issue, unbounded in general. This protocol arms a timer from the first byte
of each request until its headers are complete (`header_timeout`), then between body chunks
(`body_timeout`, idle time, so a large upload at a steady pace is not cut off), and answers
408 with a JSON body when one expires before the application started its response."""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pulserec.config import Settings


class TimedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout and a body idle timeout."""

    # Defaults (seconds): headers are a few hundred bytes, so 10 s is generous on any link; a
    # body chunk 30 s after the last is slower than any client we serve.
    header_timeout = Settings.header_timeout
    body_timeout = Settings.body_timeout
    _timer: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._expired, what, seconds)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self, what: str, seconds: float) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            body = json.dumps({"detail": f"request {what} not received within {seconds:g} s"}).encode()
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                                 b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_timeout, "headers")

    def on_headers_complete(self) -> None:
        self._arm(self.body_timeout, "body")  # disarmed at once if the request has no body
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._arm(self.body_timeout, "body")
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()


def timed_protocol(settings: Settings) -> type[TimedHttpProtocol]:
    """The protocol class with the settings' timeouts (uvicorn makes one instance per connection)."""
    return type("TimedHttpProtocol", (TimedHttpProtocol,),
                {"header_timeout": settings.header_timeout, "body_timeout": settings.body_timeout})


def connection_options(settings: Settings) -> dict[str, object]:
    """The `uvicorn.Config` keyword arguments that bound how long a connection may be held."""
    return {"http": timed_protocol(settings), "timeout_keep_alive": settings.keep_alive_timeout}
