"""Connecting to Redis (with one clear error when it is unreachable) and naming keys.

Every key of one engine's state lives under `<namespace>:`; the Lua scripts receive that
prefix and build the same names, so the layout below is the single description of it.
Scripts touch keys they compute themselves, so this layout targets a standalone Redis (or a
replicated primary), not Redis Cluster.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


class StateBackendError(RuntimeError):
    """The Redis state cannot be used (unreachable, or holding someone else's state)."""


class StateConflictError(StateBackendError):
    """A change kept conflicting with concurrent writers."""


#: Give up on one change after this many optimistic-concurrency conflicts in a row.
MAX_ATTEMPTS = 50


class StateUnavailable(StateBackendError):
    """The Redis state cannot answer right now (unreachable, stalled, or lost and being rebuilt
    from the log); the request may be retried. Stored events are applied once it is back."""

    def __init__(self, reason: str, retry_after_s: int = 2) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


#: Errors of a Redis call that mean "not now" rather than "wrong": the server is down, stalled
#: past the timeout, restarting (LOADING) or read-only during a failover.
TRANSIENT = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, redis.ReadOnlyError)


def connect(url: str, purpose: str = "state", timeout_s: float = 2.0) -> redis.Redis:
    """A client for `url`, checked with PING so a missing server fails now, in one line.

    Every command times out after `timeout_s` (a SIGSTOPped Redis must not hang a request), and
    is retried once at once on a broken connection (the first command after a Redis restart
    finds its pooled connection dead). All our scripts are safe to repeat: COMMIT answers 'dup'."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=min(5.0, timeout_s * 2), socket_timeout=timeout_s,
                                      health_check_interval=30, retry=Retry(NoBackoff(), 1))
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise StateBackendError(f"cannot use Redis {purpose} at {url}: {exc}") from exc
    return client


class Keys:
    """Key names under one namespace. hist/seen/cooc/vec keys are per owner, item or vector."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.prefix = f"{namespace}:"
        p = self.prefix
        self.meta = p + "meta"  # hash: store_id, state_id, fingerprint, ready, applied, synced_seq, last_seq, now, landmark, cooc_entries, profiles
        self.epoch = p + "epoch"  # int bumped by reset(): processes drop their id caches when it changes
        self.owners = p + "owners"  # hash owner key -> index
        self.owners_ids = p + "owners:ids"  # list index -> owner key
        self.items = p + "items"  # hash item id -> index
        self.items_ids = p + "items:ids"  # list index -> item id
        self.records = p + "items:rec"  # hash index -> item record JSON (without created_ts)
        self.created = p + "items:created"  # hash index -> creation time (exact float text)
        self.catalog_log = p + "catalog:log"  # list of item indices, one per catalogue change
        self.versions = p + "ver"  # hash owner index -> write version (optimistic concurrency)
        self.applied = p + "applied"  # set of applied (or tombstoned) event ids
        self.forgotten = p + "forgotten"  # set of digests of deleted users' event ids (kept by reset)
        self.row_gen = p + "cooc:gen"  # hash item -> compactions so far (guards concurrent compaction)
        self.row_clean = p + "cooc:clen"  # hash item -> leading bytes of the row that are compacted
        self.init_lock = p + "init-lock"  # held by the one process loading an empty namespace
        self.sync_lock = p + "sync-lock"  # held by the one process applying unapplied stored events
        self.pattern = p + "*"  # every key of this namespace

    def history(self, owner: int) -> str:
        return f"{self.prefix}hist:{owner}"

    def seen(self, owner: int) -> str:
        return f"{self.prefix}seen:{owner}"

    def profile(self, owner: int) -> str:
        return f"{self.prefix}prof:{owner}"  # hash of profile fields (see profiles.py)

    def searches(self, owner: int) -> str:
        return f"{self.prefix}psearch:{owner}"  # list: the owner's last searches

    def row(self, item: int) -> str:
        return f"{self.prefix}cooc:{item}"

    def vector(self, name: str) -> str:
        return f"{self.prefix}vec:{name}"


#: Dense per-item float64 vectors, stored as binary strings under vec:<name> (users: distinct
#: owners per item; seen_at: the item's last event time).
VECTORS = ("total", "events", "trending", "degree", "users", "seen_at")
