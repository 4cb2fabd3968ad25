"""Pseudonymous user and session ids: a keyed hash (HMAC-SHA256) replaces the raw id before storage.

The key must not sit beside the data: whoever can read the data dir could otherwise hash a
dictionary of likely ids (e-mail addresses, customer numbers) and reverse every pseudonym.
It comes from, in this order:

1. the environment variable `PULSEREC_PSEUDONYM_KEY` (at least 32 characters), or
2. the file named by the setting `pseudonym_key_file` (env `PULSEREC_PSEUDONYM_KEY_FILE`),
   which must lie outside the data dir; it is created (32 random bytes, mode 0600) if missing.

A key file inside the data dir is refused. A `<data_dir>/pseudonym.key` left by an older
version is still read (so existing pseudonyms keep working) with a warning to move it.
Without any key, pseudonymisation refuses to start rather than invent one next to the data."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from pulserec.config import Settings

log = logging.getLogger(__name__)

KEY_ENV = "PULSEREC_PSEUDONYM_KEY"
#: Where versions before the key had to live elsewhere kept it (read only, with a warning).
LEGACY_KEY_FILE = "pseudonym.key"
#: Shortest key accepted: 16 bytes (128 bits) from a file, 32 characters of text from the env.
MIN_KEY_BYTES = 16
MIN_ENV_KEY_CHARS = 32
#: Domain separation: a session id and a user id that are equal strings get different pseudonyms.
_SESSION_DOMAIN = b"session\x00"


class PseudonymKeyError(ValueError):
    """The pseudonym key is missing, too short or stored where it would defeat its purpose."""


class Pseudonymizer:
    """Maps raw user and session ids to stable pseudonyms with one secret key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise PseudonymKeyError(f"pseudonym key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    @classmethod
    def from_settings(cls, settings: Settings) -> Pseudonymizer:
        """The key from `PULSEREC_PSEUDONYM_KEY`, else `settings.pseudonym_key_file` (see the module)."""
        text = os.environ.get(KEY_ENV, "")
        if text:
            if len(text) < MIN_ENV_KEY_CHARS:
                raise PseudonymKeyError(f"{KEY_ENV} must be at least {MIN_ENV_KEY_CHARS} characters")
            return cls(text.encode())
        data_dir = settings.data_dir.resolve()
        if settings.pseudonym_key_file:
            path = Path(settings.pseudonym_key_file).expanduser().resolve()
            if path.is_relative_to(data_dir):
                raise PseudonymKeyError(
                    f"pseudonym_key_file {path} is inside the data dir {data_dir}: anyone who can read the data "
                    "could reverse the pseudonyms. Keep the key elsewhere (or in the env var "
                    f"{KEY_ENV}).")
            return cls(_read_or_create(path))
        legacy = data_dir / LEGACY_KEY_FILE
        if legacy.is_file():
            log.warning("pseudonym key read from %s, inside the data dir: anyone who can read the data can reverse "
                        "the pseudonyms. Move it out and set pseudonym_key_file (or %s).", legacy, KEY_ENV)
            return cls(legacy.read_bytes())
        raise PseudonymKeyError(
            f"pseudonymize_users needs a key kept outside the data dir: set the env var {KEY_ENV} "
            "(32+ characters) or the setting pseudonym_key_file (env PULSEREC_PSEUDONYM_KEY_FILE), a path "
            "outside the data dir; that file is created if missing.")

    def __call__(self, user_id: str) -> str:
        return "p_" + hmac.new(self._key, user_id.encode(), hashlib.sha256).hexdigest()[:32]

    def session(self, session_id: str) -> str:
        """A session id's pseudonym (its own domain, so never equal to a user's)."""
        return "ps_" + hmac.new(self._key, _SESSION_DOMAIN + session_id.encode(), hashlib.sha256).hexdigest()[:32]


def _read_or_create(path: Path) -> bytes:
    """The key in `path`; a new random one (mode 0600) if there is none. The new key is written to
    a temporary file and linked into place, so a concurrent reader never sees a half-written key
    and a key that exists is never replaced."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
            os.link(tmp, path)
        except FileExistsError:  # another process created it first: use theirs
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_bytes()
