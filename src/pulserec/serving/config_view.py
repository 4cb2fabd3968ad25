"""The effective configuration as the dashboard shows it: every setting, secrets redacted.

A setting is secret when `repr=False` hides it from `Settings.__repr__` (the API keys) or its name
says so (key, secret, password, token); a URL keeps its host but not its password. Secrets show
how many values are set, never the values themselves."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pulserec.config import Settings

_SECRET_NAME = re.compile(r"(^|_)(keys?|secret|password|token)($|_)")
#: Settings that name a key's *location*, not the key: shown as they are.
NOT_SECRET = frozenset({"pseudonym_key_file"})
REDACTED = "<redacted>"


def is_secret(name: str, shown_in_repr: bool) -> bool:
    return name not in NOT_SECRET and (not shown_in_repr or bool(_SECRET_NAME.search(name)))


def redact_url(url: str) -> str:
    """`redis://user:pw@host:6379/0` -> `redis://user:<redacted>@host:6379/0`."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.hostname or ""
    netloc = f"{user}{REDACTED}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def shown(value: Any) -> Any:
    """A JSON-able form of one non-secret value."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    if isinstance(value, tuple):
        return [shown(v) for v in value]
    if isinstance(value, dict):
        return {k: shown(v) for k, v in value.items()}
    return value


def effective_config(settings: Settings) -> list[dict[str, Any]]:
    """Every setting: name, value (redacted if secret), whether it differs from the default."""
    default = Settings()
    rows = []
    for spec in fields(Settings):
        value = getattr(settings, spec.name)
        secret = is_secret(spec.name, spec.repr)
        if secret:
            count = len(value) if isinstance(value, (tuple, list)) else int(bool(value))
            out: Any = f"{REDACTED} ({count} set)" if count else "(none)"
        else:
            out = shown(value)
        rows.append({"name": spec.name, "value": out, "secret": secret,
                     "default": getattr(default, spec.name) == value})
    return rows
