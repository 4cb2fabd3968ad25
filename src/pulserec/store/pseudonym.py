"""Pseudonymous user ids: a keyed hash (HMAC-SHA256) replaces the raw id before storage."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path


class Pseudonymizer:
    """Maps a raw user id to a stable pseudonym. The key lives in `<data_dir>/pseudonym.key` (0600)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("pseudonym key must be at least 16 bytes")
        self._key = key

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> Pseudonymizer:
        path = data_dir / "pseudonym.key"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
        return cls(path.read_bytes())

    def __call__(self, user_id: str) -> str:
        return "p_" + hmac.new(self._key, user_id.encode(), hashlib.sha256).hexdigest()[:32]
