"""Pushed invalidation: a process learns that its namespace changed without asking Redis.

A read used to cost one READ script call even when nothing had changed since the process last
read the same owner (~0.2 ms of Redis and ~0.3 ms of the client's CPU, and on a loaded box two
context switches that cost more). Redis 6+ client-side caching in broadcast mode tells us
instead: one connection per process turns `CLIENT TRACKING ... BCAST` on for `WATCHED` key
prefixes, redirected to itself and subscribed to `__redis__:invalidate`, and Redis pushes a
message whenever a key under one of them is written, by any client, script or not. The
prefixes are few keys that every change of what a read returns writes in the same atomic
script (`scripts.py`): `meta` (events applied, clock, vector version, entry count), `ver`
(every change to an owner's history, seen items or profile bumps the owner's version), the
catalogue and id keys, `cooc:gen` (row compactions) and `epoch` (resets). Tracking whole
namespaces instead would push every row and history key an updater writes (~5k keys a batch).

`generation()` drains what arrived (a poll, no round trip) and counts it: a view read at one
generation is still exact while the generation has not moved (`read_cache.ReadCache.snapshot_at`).
Redis writes the pushes of one event-loop turn before the replies of that turn (tracking's
broadcast runs first in `beforeSleep`), so a read that starts after a write was acknowledged
(by this process or another) finds the push already in its socket.

Correctness first when the channel is in doubt: `generation()` answers None (read as before,
one READ per request) while the connection is down, until a heartbeat PING has been answered
within `TRUSTED_S` (a half-open connection cannot hide changes for longer), and after any
error; it reconnects at most once per `RETRY_S`, and a new connection starts a new generation
(pushes may have been missed meanwhile), and so does a forked child, which leaves its parent's
connection alone and opens its own. A server without CLIENT TRACKING (Redis < 6, or the
command renamed) turns pushes off for the process."""

from __future__ import annotations

import logging
import os
import select
import threading
import time

import redis
from redis._parsers import _RESP2Parser
from redis.connection import Connection, parse_url
from redis.maint_notifications import MaintNotificationsConfig

log = logging.getLogger(__name__)

#: Key prefixes (after the namespace's) whose writes invalidate every view (see above).
WATCHED = ("meta", "ver", "epoch", "items", "catalog:", "owners", "cooc:gen")
#: A PING is sent when the last answer is older than this.
HEARTBEAT_S = 0.5
#: Views are trusted only while the last PING answer is at most this old.
TRUSTED_S = 2.0
#: Reconnect attempts at most this often.
RETRY_S = 1.0
CHANNEL = "__redis__:invalidate"


class PushChannel:
    """One connection that receives the namespace's invalidation pushes (see the module doc)."""

    def __init__(self, url: str, prefix: str, timeout_s: float) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._pid = os.getpid()
        self._poll = select.poll()
        self._generation = 0
        self._answered = -float("inf")  # when the last PING answer (or the subscription) arrived
        self._ping_sent: float | None = None
        self._retry_at = 0.0
        self.disabled = False  # the server cannot track keys
        self.pushes = 0  # invalidations received (for tests and stats)

    def generation(self) -> int | None:
        """The current generation, or None when a view read earlier cannot be trusted now."""
        with self._lock:
            now = time.monotonic()
            if self._pid != os.getpid():  # a forked child: the socket is the parent's, and so are its pushes
                self._conn, self._pid, self._retry_at = None, os.getpid(), 0.0
                self._generation += 1
            if self._conn is None and not self._connect(now):
                return None
            try:
                self._drain(now)
                self._heartbeat(now)
            except (redis.RedisError, OSError) as exc:
                log.warning("Redis invalidation channel lost (%s); reading every request until it is back", exc)
                self._drop(now)
                return None
            return self._generation if now - self._answered <= TRUSTED_S else None

    def close(self) -> None:
        with self._lock:
            self._drop(time.monotonic())

    def _connect(self, now: float) -> bool:
        if self.disabled or now < self._retry_at:
            return False
        self._retry_at = now + RETRY_S
        kwargs = parse_url(self.url)
        conn = kwargs.pop("connection_class", Connection)(
            **kwargs, protocol=2, parser_class=_RESP2Parser, socket_timeout=self.timeout_s,
            socket_connect_timeout=self.timeout_s, maint_notifications_config=MaintNotificationsConfig(enabled=False))
        try:
            conn.connect()
            conn.send_command("CLIENT", "ID")
            client_id = conn.read_response()
            prefixes = [part for watched in WATCHED for part in ("PREFIX", self.prefix + watched)]
            conn.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", *prefixes)
            conn.read_response()
            conn.send_command("SUBSCRIBE", CHANNEL)
            conn.read_response()
        except redis.ResponseError as exc:  # no CLIENT TRACKING here: read every request, for good
            log.warning("Redis at %s cannot push invalidations (%s); every read asks it", self.url, exc)
            self.disabled = True
            conn.disconnect()
            return False
        except (redis.RedisError, OSError):
            conn.disconnect()
            return False
        self._conn = conn
        self._poll = select.poll()
        self._poll.register(conn._sock, select.POLLIN)  # type: ignore[attr-defined]
        self._generation += 1  # whatever was pushed while disconnected is unknown
        self._answered, self._ping_sent = now, None
        return True

    def _drain(self, now: float) -> None:
        conn = self._conn
        assert conn is not None
        if not self._poll.poll(0):
            return
        while conn.can_read(timeout=0):
            message = conn.read_response()
            if isinstance(message, list) and message and message[0] == b"pong":
                self._answered, self._ping_sent = self._ping_sent or now, None  # alive when it was sent
            else:  # an invalidation (keys, or None for a flush), or anything unexpected
                self._generation += 1
                self.pushes += 1

    def _heartbeat(self, now: float) -> None:
        conn = self._conn
        assert conn is not None
        if self._ping_sent is not None:
            if now - self._ping_sent > self.timeout_s:
                raise redis.TimeoutError(f"no answer to a PING in {self.timeout_s}s")
        elif now - self._answered > HEARTBEAT_S:
            conn.send_command("PING")
            self._ping_sent = now

    def _drop(self, now: float) -> None:
        if self._conn is not None:
            self._conn.disconnect()
        self._conn = None
        self._generation += 1
        self._retry_at = now + RETRY_S
