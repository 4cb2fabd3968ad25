"""Shared fixtures: real SQLite files in tmp dirs, a real uvicorn server on 127.0.0.1, real
redis-server and Kafka (Tansu) brokers on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.ingest.movielens import ENV_VAR, movielens_path
from pulserec.ingest.synthetic import as_events, generate
from pulserec.serving.server import BackgroundServer

#: Session fixtures: `redis_server` (a real redis-server), `kafka_broker` (a real Kafka broker);
#: `no_skips`: under CI=true a skipped test (a missing real component) fails the run.
pytest_plugins = ("redis_fixture", "kafka_fixture", "no_skips", "pytester")


def _backend_overrides(request) -> dict[str, str]:
    if request.param == "memory":
        return {}
    server = request.getfixturevalue("redis_server")
    return {"state_url": server.url, "state_namespace": server.namespace()}


@pytest.fixture(params=["memory", "redis"])
def backend(request) -> dict[str, str]:
    """Settings overrides selecting the state backend, for tests that run on both (they override
    `settings` with `Settings.load(..., **backend)`)."""
    return _backend_overrides(request)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load(tmp_path / "data")


@pytest.fixture
def engine(settings: Settings):
    engine = Engine(settings)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def refusing_engine(tmp_path_factory):
    """One engine per module for tests whose requests store nothing (refused: a 4xx; or reads of
    a document such as /openapi.json), instead of one per case: an engine, its app and the app's first request (FastAPI builds
    every route's models then: ~0.2 s CPU an app) once per module. Such a test still asserts
    that nothing was stored, so a case that stored something fails, and so does every later
    case of the module. A test that writes (or must see an empty store it made) takes `engine`."""
    engine = Engine(Settings.load(tmp_path_factory.mktemp("refusing") / "data"))
    yield engine
    engine.close()


@pytest.fixture(scope="module", params=["memory", "redis"])
def refusing_server(request, tmp_path_factory):
    """(server, engine): a real uvicorn server per module and state backend, for tests whose every
    request is refused (as `refusing_engine`; here over HTTP on both backends)."""
    yield from _serving(Settings.load(tmp_path_factory.mktemp("refusing") / "data", **_backend_overrides(request)))


@pytest.fixture(scope="module")
def read_server(request, tmp_path_factory):
    """(server, engine): one real uvicorn server per module, on the module's `SERVER_SETTINGS`
    (a dict of Settings overrides, if it has one), for its tests that only read or are refused
    (404s, 401/403s, 422s): one engine, app and server start for all of them, not one each."""
    overrides = getattr(request.module, "SERVER_SETTINGS", {})
    yield from _serving(Settings.load(tmp_path_factory.mktemp("read") / "data", **overrides))


def _serving(settings: Settings):
    engine = Engine(settings)
    try:
        with BackgroundServer(engine) as srv:
            yield srv, engine
    finally:
        engine.close()


@pytest.fixture(scope="module")
def refusing_api(refusing_engine):
    """An in-process client (no lifespan, server errors as 500s) on `refusing_engine`."""
    from fastapi.testclient import TestClient

    from pulserec.serving.app import create_app

    return TestClient(create_app(refusing_engine), raise_server_exceptions=False)


@pytest.fixture(scope="session")
def shop():
    """A small synthetic shop (deterministic)."""
    return generate(n_users=60, n_items=120, n_events=3000, seed=3)


@pytest.fixture
def server(engine: Engine):
    with BackgroundServer(engine) as srv:
        yield srv


@pytest.fixture
def client(server):
    from pulserec.client import Client

    with Client(server.url) as c:
        yield c


@pytest.fixture(scope="session")
def movielens() -> Path:
    try:
        return movielens_path(os.environ.get(ENV_VAR))
    except FileNotFoundError:
        pytest.skip("MovieLens ml-latest-small not available")


@pytest.fixture
def fill(shop):
    """fill(engine, upto=None): load the shop's catalogue and (the first `upto`) events into an engine."""

    def load(engine: Engine, upto: int | None = None) -> None:
        engine.put_items(list(shop.items))
        engine.ingest(as_events(shop.events if upto is None else shop.events.iloc[:upto]))

    return load
