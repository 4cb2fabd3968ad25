"""Issue 13.17: a connection cannot be held by sending a request slowly.

On main a client that sent half its headers kept the connection (and was served after 65 s);
now headers must arrive within `header_timeout` of the request's first byte, body chunks at
most `body_timeout` apart, and idle keep-alive connections close after `keep_alive_timeout`.
Real sockets against a real uvicorn on 127.0.0.1; every wait is bounded."""

from __future__ import annotations

import json
import socket
import time

import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.serving.server import BackgroundServer

LIMIT = 0.5  # seconds, for every timeout under test
EVENT = json.dumps({"user_id": "u", "item_id": "i", "type": "view"}).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module: each test opens its own connection, and the timeouts are per
    connection (what a test sends never holds another's)."""
    engine = Engine(Settings.load(tmp_path_factory.mktemp("timeouts"), header_timeout=LIMIT, body_timeout=LIMIT,
                                  keep_alive_timeout=LIMIT))
    with BackgroundServer(engine) as srv:
        yield srv
    engine.close()


def read_until_closed(sock: socket.socket, bound: float = 5.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started, data = time.monotonic(), b""
    sock.settimeout(bound)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data, time.monotonic() - started
        data += chunk


def connect(server) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=5)


def test_half_sent_headers_get_a_408_and_the_connection_closes(server):
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # no blank line: the headers never end
        reply, waited = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:80]
    assert b'"request headers not received within 0.5 s"' in reply
    assert LIMIT * 0.8 < waited < LIMIT + 3


def test_a_stalled_body_gets_a_408(server):
    with connect(server) as sock:
        sock.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(EVENT), EVENT[:10]))
        reply, waited = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 408") and b"request body not received" in reply, reply[:120]
    assert waited < LIMIT + 3


def test_a_slow_but_steady_body_is_served(server):
    """The body timeout is idle time between chunks, not a deadline for the whole body."""
    with connect(server) as sock:
        sock.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(EVENT))
        pieces = [EVENT[k:k + 10] for k in range(0, len(EVENT), 10)]
        for piece in pieces:  # ~0.2 s apart: longer than LIMIT in all, never LIMIT between two
            sock.sendall(piece)
            time.sleep(0.2)
        assert 0.2 * len(pieces) > LIMIT
        reply, _ = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:120]


def test_idle_keep_alive_connections_are_closed(server):
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        reply, waited = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 200")
    assert LIMIT * 0.8 < waited < LIMIT + 3  # answered at once, then closed once idle


def test_timeouts_must_be_positive(tmp_path):
    for name in ("header_timeout", "body_timeout", "keep_alive_timeout"):
        with pytest.raises(ValueError, match=name):
            Settings.load(tmp_path, **{name: 0})
