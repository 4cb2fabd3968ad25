"""A real redis-server for the tests: started once per session on a free 127.0.0.1 port,
without persistence, in a temporary directory; tests are skipped if redis-server is missing.
`own_redis_server` is one of a module's own, for tests that read the whole server (SCAN every
key): on the session's server they would read every earlier test's namespace too."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator

import pytest

from local_redis import LocalRedis

_namespaces = itertools.count()


class RedisServer:
    """The session's server; each test takes its own namespace (keys never collide)."""

    def __init__(self, local: LocalRedis) -> None:
        self.local = local
        self.url = local.url

    def namespace(self) -> str:
        return f"test{next(_namespaces)}"


def _started(tmp_path_factory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with LocalRedis(tmp_path_factory.mktemp("redis")) as local:
        yield RedisServer(local)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    yield from _started(tmp_path_factory)


@pytest.fixture(scope="module")
def own_redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    """A redis-server for this module alone (started in ~50 ms): whole-server reads see only
    what this module's tests wrote."""
    yield from _started(tmp_path_factory)
