"""The apps registry (runtime/apps.py) with real engines: opened once, closed only when idle."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.runtime.apps import Apps, TooManyApps, UnknownApp


@pytest.fixture
def default(tmp_path):
    engine = Engine(Settings.load(tmp_path / "data", model_watch_interval=0.0, max_open_apps=1))
    yield engine
    engine.close()


def test_concurrent_requests_open_an_app_once_and_new_settings_wait_for_idle(default):
    opened: list[Engine] = []

    def open_engine(settings: Settings) -> Engine:
        opened.append(Engine(settings))
        return opened[-1]

    apps = Apps(default, open_engine=open_engine)
    assert apps.put("x", {}, [], []) is True
    with ThreadPoolExecutor(8) as pool:
        leases = list(pool.map(lambda _: apps.acquire("x"), range(8)))
    assert len(opened) == 1 and all(lease is leases[0] for lease in leases) and leases[0].leases == 8
    assert apps.put("x", {"max_n": 5}, [], []) is False  # busy: it serves on with the old settings
    assert opened[0].settings.max_n == 500 and not opened[0]._closed
    for lease in leases:
        apps.release(lease)
    assert opened[0]._closed and apps.open_names() == []  # the last release closed it
    reopened = apps.acquire("x")
    assert reopened.engine.settings.max_n == 5 and len(opened) == 2
    apps.release(reopened)
    apps.close()
    assert opened[1]._closed


def test_the_bound_closes_idle_apps_and_refuses_when_all_are_busy(default):
    apps = Apps(default)
    for name in ("x", "y"):
        apps.put(name, {}, [], [])
    x = apps.acquire("x")
    with pytest.raises(TooManyApps, match="max_open_apps = 1"):
        apps.acquire("y")
    apps.release(x)
    y = apps.acquire("y")  # x was idle: closed to make room
    assert x.engine._closed and apps.open_names() == ["y"]
    apps.release(y)
    with pytest.raises(UnknownApp):
        apps.acquire("never-made")
    assert apps.acquire("default").engine is default  # never counted, never closed
    apps.close()
    assert not default._closed
