"""One snapshot file: the state's arrays in an `.npz` (read with `allow_pickle=False`), with a
JSON header holding a magic string, the format version, a checksum of every array and the log
watermark. Arrays are streamed into the archive chunk by chunk (a background snapshot reads a
changing state's arrays only as it writes them, see `pulserec/frozen.py`). Written to a
temporary file, fsynced, renamed over, and the directory fsynced, so a crash leaves the
previous file or the new one, never half of one."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

MAGIC = "pulserec-online-state"
#: Bumped whenever the arrays' layout changes; a file of another version is never loaded.
FORMAT = 6  # 2: items.listed (the catalogue policy); 3: profiles as the ProfileTable's columns; 4: cooc.last_seen;
#           5: the profiles' search marks; 6: the structures' levels as they are (history segments, co-occurrence
#           base + later entries, profile tables' main/delta/pending), a checksum of per-array digests (streamed)
_HEADER = "__header__"
#: Bytes handed to the archive per write: slices of the array's memory (no copy); hashing, the
#: zip CRC and the file write all release the GIL on pieces this size, so writers run meanwhile.
PIECE = 1 << 20


class SnapshotError(ValueError):
    """A snapshot that must not be loaded (unreadable, corrupt, foreign or mismatching)."""


class Member(NamedTuple):
    """One array of a snapshot: its name, dtype and shape, and its bytes as C-order chunks."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    chunks: Iterable[np.ndarray]


def whole(name: str, array: np.ndarray) -> Member:
    array = np.ascontiguousarray(array)
    return Member(name, array.dtype, array.shape, (array,))


def _digest(name: str, dtype: np.dtype, shape: tuple[int, ...]) -> Any:
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{name}|{np.dtype(dtype).str}|{tuple(shape)}|".encode())
    return digest


def _combined(digests: dict[str, str]) -> str:
    """One checksum from every array's digest, in name order."""
    return hashlib.blake2b("\n".join(f"{n}:{digests[n]}" for n in sorted(digests)).encode(), digest_size=20).hexdigest()


def checksum(arrays: dict[str, np.ndarray]) -> str:
    """BLAKE2b of each array's name, dtype, shape and bytes, combined in name order."""
    digests = {}
    for name, array in arrays.items():
        digest = _digest(name, array.dtype, array.shape)
        array = np.ascontiguousarray(array)
        digest.update(memoryview(array).cast("B") if array.size else b"")
        digests[name] = digest.hexdigest()
    return _combined(digests)


def write(path: Path, arrays: dict[str, np.ndarray], header: dict[str, Any]) -> int:
    """Write atomically; returns the file's size in bytes."""
    return write_members(path, [whole(name, array) for name, array in arrays.items()], header)


def write_members(path: Path, members: Iterable[Member], header: dict[str, Any], durable: bool = True) -> int:
    """Write the members (produced as they are written: a background snapshot reads each
    array's chunks only now) atomically, the header with their checksum last; returns the
    file's size in bytes.

    `durable=False` skips the two fsyncs (the file is in the page cache when this returns and
    on the disk when the kernel writes it back): a crash before that leaves a torn or empty
    file, which `read` refuses (checksum) like any other, so the start falls back to an older
    snapshot or a full replay of the log. For a snapshot nothing depends on having on the disk
    now: `pulserec import`'s, whose fsync of ~80 MB (1M shop) waited 0.8-2.6 s on this box's
    disk at the end of the command while the log itself is made durable by SQLite."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                digests = {member.name: _write_member(archive, member) for member in members}
                blob = np.frombuffer(json.dumps({**header, "magic": MAGIC, "format": FORMAT,
                                                 "checksum": _combined(digests)}).encode(), dtype=np.uint8)
                _write_member(archive, whole(_HEADER, blob))
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if not durable:
        return path.stat().st_size
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path.stat().st_size


def _write_member(archive: zipfile.ZipFile, member: Member) -> str:
    """One `.npy` member, streamed; returns its digest."""
    digest = _digest(member.name, member.dtype, member.shape)
    expected = int(np.prod(member.shape, dtype=np.int64)) * np.dtype(member.dtype).itemsize
    written = 0
    with archive.open(f"{member.name}.npy", "w", force_zip64=True) as out:
        np.lib.format.write_array_header_2_0(out, {"descr": np.lib.format.dtype_to_descr(np.dtype(member.dtype)),
                                                    "fortran_order": False, "shape": tuple(member.shape)})
        for chunk in member.chunks:
            if chunk.dtype != member.dtype or not chunk.flags.c_contiguous:
                raise ValueError(f"snapshot array {member.name}: a chunk of another dtype or layout")
            raw = memoryview(chunk).cast("B") if chunk.size else memoryview(b"")
            for start in range(0, len(raw), PIECE):
                piece = raw[start : start + PIECE]
                digest.update(piece)
                out.write(piece)
            written += len(raw)
    if written != expected:
        raise ValueError(f"snapshot array {member.name}: {written} bytes written, its shape holds {expected}")
    return digest.hexdigest()


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
