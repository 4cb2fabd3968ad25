"""One snapshot file: the state's arrays in an `.npz` (read with `allow_pickle=False`), with a
JSON header holding a magic string, the format version, a checksum of every array and the log
watermark. Written to a temporary file, fsynced, renamed over, and the directory fsynced, so a
crash leaves the previous file or the new one, never half of one."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = "pulserec-online-state"
#: Bumped whenever the arrays' layout changes; a file of another version is never loaded.
FORMAT = 5  # 2: items.listed (the catalogue policy); 3: profiles as the ProfileTable's columns; 4: cooc.last_seen;
#           5: the profiles' search marks
_HEADER = "__header__"


class SnapshotError(ValueError):
    """A snapshot that must not be loaded (unreadable, corrupt, foreign or mismatching)."""


def checksum(arrays: dict[str, np.ndarray]) -> str:
    """BLAKE2b over every array's name, dtype, shape and bytes, in name order."""
    digest = hashlib.blake2b(digest_size=20)
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(memoryview(array).cast("B") if array.size else b"")
    return digest.hexdigest()


def write(path: Path, arrays: dict[str, np.ndarray], header: dict[str, Any]) -> int:
    """Write atomically; returns the file's size in bytes."""
    header = {**header, "magic": MAGIC, "format": FORMAT, "checksum": checksum(arrays)}
    blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{_HEADER: blob}, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path.stat().st_size


def read_header(path: Path) -> dict[str, Any]:
    """The header alone (cheap: one small member of the archive)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(archive[_HEADER].tobytes())
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise SnapshotError(f"unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict) or header.get("magic") != MAGIC:
        raise SnapshotError("not a pulserec state snapshot")
    if header.get("format") != FORMAT:
        raise SnapshotError(f"format version {header.get('format')!r}, this pulserec reads {FORMAT}")
    return header


def read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(header, arrays), verified against the header's checksum."""
    header = read_header(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files if name != _HEADER}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise SnapshotError(f"unreadable ({type(exc).__name__}: {exc})") from None
    if checksum(arrays) != header["checksum"]:
        raise SnapshotError("checksum mismatch (the file was changed or damaged)")
    return header, arrays
