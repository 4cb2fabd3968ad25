"""Apps (tenants): several independent catalogues in one server process.

The data dir itself is the `default` app; every other app lives under `<data_dir>/apps/<name>/`
with its own SQLite log, online state (snapshots), models, settings and keys, described by
`<data_dir>/apps/<name>/app.json` (plain JSON: settings that differ from the server's, and the
app's API keys; mode 0600). An app is opened on first use and at most `max_open_apps` are open
at once: opening another closes the least recently used one that no request holds (its
snapshot is written, so reopening it replays nothing). `pulserec import/train/evaluate --app`
work on the same directory with :func:`app_settings`.

Isolation: an app's engine is built from its own directory only, and a request reaches one
engine (the one its `/apps/{app}` prefix names, :meth:`Apps.acquire`), so no route can read
another app's data; keys are per app and never inherited, so the server's (default app's)
keys do not open another app."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

from pulserec.config import Settings
from pulserec.engine import Engine

log = logging.getLogger(__name__)

DEFAULT_APP = "default"
#: App names: they are directory names and URL segments, so lower-case letters, digits, `-` and
#: `_`, starting with a letter or digit, at most 63 characters.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_NAME = re.compile(NAME_PATTERN)
APPS_DIR = "apps"
APP_FILE = "app.json"

#: Settings of the server process, not of an app: HTTP limits and timeouts, where the shared
#: state and stream live, the process layout. An app inherits them and may not set them.
SERVER_SETTINGS = frozenset({
    "data_dir", "max_body_bytes", "max_id_len", "max_batch", "header_timeout", "body_timeout", "keep_alive_timeout",
    "cors_origins", "public_metrics", "follow_log", "state_url", "state_namespace", "stream_url", "stream_shards",
    "state_timeout_s", "state_sync_interval_s", "stream_grace_s", "accept_data_loss", "sqlite_synchronous",
    "min_free_bytes", "pseudonym_key_file", "max_open_apps", "torch_threads", "max_jobs",
    "sdk_rate", "sdk_burst",  # one rate limiter per server process (serving/rate_limit.py), keyed by publishable key
})
KEY_SETTINGS = ("api_keys", "read_keys")
#: What `PUT /apps/{app}` may set in `settings` (everything else that tunes an engine).
APP_SETTINGS = frozenset(f.name for f in fields(Settings)) - SERVER_SETTINGS - set(KEY_SETTINGS)


#: Rules of PUT /apps/{app} that its schema cannot state (they depend on the server's settings, or
#: are the engine's own checks of a setting's value, code rather than a range in the document).
KEYS_REQUIRED = "this server requires API keys"
SETTING_REFUSED = "a setting's value is refused"


class AppError(Exception):
    """A request about an app that cannot be served; `status` is the HTTP answer."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidApp(AppError):
    status = 422


class UnknownApp(AppError):
    status = 404


class AppInUse(AppError):
    status = 409


class TooManyApps(AppError):
    status = 503


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidApp(f"app names are 1-63 lower-case letters, digits, '-' or '_' (starting with a letter or digit), "
                         f"got {name!r}")
    return name


def app_dir(server: Settings, name: str) -> Path:
    return server.data_dir / APPS_DIR / check_name(name)


def read_app_file(path: Path) -> dict[str, Any]:
    """The app's description (`settings`, `api_keys`, `read_keys`, `created_at`); JSON, never code."""
    try:
        described = json.loads((path / APP_FILE).read_text())
    except FileNotFoundError:
        raise UnknownApp(f"no app {path.name!r} (create it with PUT /apps/{path.name})") from None
    except (OSError, ValueError) as exc:
        raise InvalidApp(f"{path / APP_FILE} cannot be read: {exc}") from exc
    if not isinstance(described, dict) or not isinstance(described.get("settings", {}), dict):
        raise InvalidApp(f"{path / APP_FILE} is not an app description")
    return described


def _checked_settings(given: Mapping[str, Any]) -> dict[str, Any]:
    """Settings an app may set, with the type of their default (a JSON list for a tuple)."""
    defaults = Settings()
    out: dict[str, Any] = {}
    for name, value in given.items():
        if name in SERVER_SETTINGS or name in KEY_SETTINGS:
            where = "`api_keys`/`read_keys` of the body" if name in KEY_SETTINGS else "the server's settings"
            raise InvalidApp(f"settings.{name} is not a per-app setting (it is set in {where})")
        if name not in APP_SETTINGS:
            raise InvalidApp(f"settings.{name} is not a setting")
        default = getattr(defaults, name)
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InvalidApp(f"settings.{name} must be a list of strings")
            value = tuple(value)
        elif isinstance(default, bool) != isinstance(value, bool) or not isinstance(value, type(default) if not isinstance(
                default, float) else (int, float)):
            raise InvalidApp(f"settings.{name} must be of type {type(default).__name__}")
        out[name] = value
    return out


def app_settings(server: Settings, name: str, described: Mapping[str, Any] | None = None) -> Settings:
    """The settings of app `name`: the server's, with the app's own data dir, keys and Redis
    namespace, and its `settings` from app.json on top. A stream is the server's alone: an app's
    events are applied in its own process (`pulserec updater` serves the default app)."""
    if name == DEFAULT_APP:
        return server
    path = app_dir(server, name)
    described = read_app_file(path) if described is None else described
    changes = _checked_settings(described.get("settings", {}))
    keys = {k: tuple(described.get(k) or ()) for k in KEY_SETTINGS}
    settings = replace(server, data_dir=path, state_namespace=f"{server.state_namespace}.app.{name}", stream_url="",
                       **keys, **changes)
    try:
        settings.validate()
    except ValueError as exc:
        raise InvalidApp(f"{SETTING_REFUSED}: {exc}") from exc
    return settings


class Closeable(Protocol):
    def close(self) -> None: ...


@dataclass(eq=False)
class OpenApp:
    """An app being served: its engine and what the server attached to it (metrics, tasks)."""

    name: str
    engine: Engine
    extras: Any = None
    leases: int = 0
    stale: bool = False  # its settings changed: closed when the last request lets go, reopened with them
    opened_at: float = field(default_factory=time.time)

    def close(self) -> None:
        if self.extras is not None:
            self.extras.close()
        self.engine.close()


class Apps:
    """The apps one server serves. `open_engine(settings)` builds an app's engine (the default
    engine's class: a replica under `--workers`); `attach(name, engine)` what the server runs
    beside it (closed with it)."""

    def __init__(self, default: Engine, open_engine: Callable[[Settings], Engine] | None = None,
                 attach: Callable[[str, Engine], Closeable] | None = None) -> None:
        self.server = default.settings
        self.default = OpenApp(DEFAULT_APP, default)
        self.open_engine = open_engine or type(default)
        self.attach = attach
        self.max_open = self.server.max_open_apps
        self._open: OrderedDict[str, OpenApp] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()  # the table; held for dict operations only
        #: Opening, closing and deleting apps, one at a time: an app is never opened twice, nor
        #: reopened before its previous engine closed. Requests to open apps do not wait for it.
        self._changing = threading.Lock()

    # -- which apps exist ------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.server.data_dir / APPS_DIR

    def names(self) -> list[str]:
        found = sorted(p.name for p in self.root.iterdir() if _NAME.match(p.name) and (p / APP_FILE).is_file()) \
            if self.root.is_dir() else []
        return [DEFAULT_APP, *(n for n in found if n != DEFAULT_APP)]

    def describe(self, name: str) -> dict[str, Any]:
        """What `GET /apps/{app}` shows: never the keys, only how many there are."""
        check_name(name)
        with self._lock:
            opened = self.default if name == DEFAULT_APP else self._open.get(name)
        if name == DEFAULT_APP:
            settings: dict[str, Any] = {}
            keys = {k: len(getattr(self.server, k)) for k in KEY_SETTINGS}
            created = None
        else:
            described = read_app_file(app_dir(self.server, name))
            settings, created = described.get("settings", {}), described.get("created_at")
            keys = {k: len(described.get(k) or ()) for k in KEY_SETTINGS}
        return {"app": name, "open": opened is not None, "created_at": created, "settings": settings,
                "keys": keys, "prefix": "" if name == DEFAULT_APP else f"/apps/{name}"}

    def put(self, name: str, settings: Mapping[str, Any], api_keys: list[str], read_keys: list[str]) -> bool:
        """Create app `name` or replace its settings and keys; returns whether it was created.
        The app's engine (if open) is closed and reopened with them at its next request."""
        if check_name(name) == DEFAULT_APP:
            raise InvalidApp("the default app is the server's own data dir: its settings are the server's")
        if self.server.api_keys and not api_keys:
            raise InvalidApp(f"{KEYS_REQUIRED}: give the app its own api_keys (they are not inherited)")
        path = app_dir(self.server, name)
        described = {"settings": dict(settings), "api_keys": list(api_keys), "read_keys": list(read_keys)}
        app_settings(self.server, name, described)  # refuses what would not open, before anything is written
        with self._changing:
            created = not (path / APP_FILE).is_file()
            previous = {} if created else read_app_file(path)
            described["created_at"] = previous.get("created_at", time.time())
            path.mkdir(parents=True, exist_ok=True)
            _write_private(path / APP_FILE, json.dumps(described, indent=2, sort_keys=True))
            with self._lock:
                opened = self._open.get(name)
                idle = opened is not None and opened.leases == 0
                if opened is not None:
                    opened.stale = True  # busy: closed by the last request's release
                if idle:
                    del self._open[name]
            if idle:
                opened.close()  # type: ignore[union-attr]
        return created

    def delete(self, name: str) -> None:
        """Close app `name` and remove its directory (every event, model and snapshot of it)."""
        if check_name(name) == DEFAULT_APP:
            raise InvalidApp("the default app cannot be deleted (it is the server's data dir)")
        path = app_dir(self.server, name)
        with self._changing:
            read_app_file(path)  # UnknownApp when there is none
            with self._lock:
                opened = self._open.get(name)
                if opened is not None and opened.leases:
                    raise AppInUse(f"app {name!r} is serving {opened.leases} request(s); retry when they finished")
                self._open.pop(name, None)
            if opened is not None:
                opened.close()
            shutil.rmtree(path)

    # -- serving ---------------------------------------------------------------------------------
    def acquire_open(self, name: str) -> OpenApp | None:
        """App `name` for one request if it is open (None: it must be opened, by :meth:`acquire`).
        Never waits beyond the table's lock, held for dict operations only: an event loop may
        call it (raises :class:`InvalidApp` for a bad name)."""
        if name == DEFAULT_APP:
            return self.default
        check_name(name)
        with self._lock:
            return self._taken(name)

    def acquire(self, name: str) -> OpenApp:
        """App `name` for one request, opened if it is not (raises :class:`AppError`); it is not
        closed before the request gives it back with :meth:`release`."""
        opened = self.acquire_open(name)
        if opened is not None:
            return opened
        with self._changing:
            with self._lock:
                opened = self._taken(name)  # opened by another request meanwhile
                if opened is not None:
                    return opened
                evicted = self._make_room(name)
            if evicted is not None:
                log.info("closing app %r to open %r (max_open_apps = %d)", evicted.name, name, self.max_open)
                evicted.close()
            opened = self._open_app(name)
            with self._lock:
                opened.leases = 1
                self._open[name] = opened
            return opened

    def _taken(self, name: str) -> OpenApp | None:
        """Under the table lock: the open app with one more lease, or None."""
        opened = self._open.get(name)  # a stale one serves on until it is idle: never two engines on one dir
        if opened is None:
            return None
        opened.leases += 1
        self._open.move_to_end(name)
        return opened

    def _make_room(self, name: str) -> OpenApp | None:
        """Under both locks: the least recently used idle app, taken out of the table to close."""
        if len(self._open) < self.max_open:
            return None
        for candidate in self._open.values():
            if candidate.leases == 0:
                return self._open.pop(candidate.name)
        raise TooManyApps(f"{len(self._open)} apps are open and all serve requests (max_open_apps = {self.max_open}); "
                          f"app {name!r} cannot be opened now, retry shortly")

    def _open_app(self, name: str) -> OpenApp:
        settings = app_settings(self.server, name)  # UnknownApp when it was never created
        engine = self.open_engine(settings)
        try:
            extras = self.attach(name, engine) if self.attach is not None else None
        except Exception:
            engine.close()
            raise
        log.info("opened app %r (%s)", name, settings.data_dir)
        return OpenApp(name, engine, extras)

    def release(self, opened: OpenApp) -> None:
        if self.let_go(opened):
            self.close_released(opened)

    def let_go(self, opened: OpenApp) -> bool:
        """A request's lease given back; True when the app must now be closed (its settings
        changed and this was its last request: call :meth:`close_released`, which blocks)."""
        if opened is self.default:
            return False
        with self._lock:
            opened.leases -= 1
            closing = opened.stale and opened.leases == 0
            if closing and self._open.get(opened.name) is opened:
                self._open.pop(opened.name)
        return closing

    def close_released(self, opened: OpenApp) -> None:
        with self._changing:  # before anyone reopens it
            opened.close()

    def open_names(self) -> list[str]:
        with self._lock:
            return list(self._open)

    def close(self) -> None:
        """Close every open app but the default (its owner closes it)."""
        with self._changing, self._lock:
            opened, self._open = list(self._open.values()), OrderedDict()
        for app in opened:
            try:
                app.close()
            except Exception:  # noqa: BLE001 - close the others; their logs have everything
                log.exception("could not close app %r", app.name)


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (it holds API keys), through a temporary file."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
