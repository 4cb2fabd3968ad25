"""Saving and loading trained models in a format that cannot execute code.

A saved model is one zip file (stored, not compressed) with two entries:

- ``meta.json``: format name and version, the model's registry name, the constructor
  parameters it was trained with, a description of every state field, free ``info`` (training
  time, data watermark, ...) and the sha256 of the payload;
- ``payload.npz``: the arrays, read with ``allow_pickle=False`` (numbers, booleans and packed
  UTF-8 strings only; torch weights are stored as their ``state_dict`` arrays).

Loading never unpickles: the class comes from :mod:`pulserec.models.registry` by name (never
from the file), the constructor gets the JSON parameters, and only the fields the class
declares are set. A foreign format, another version or a payload whose checksum does not match
is refused with :class:`ModelFileError`. The checksum detects corruption (a torn copy, a flipped
byte), not forgery: whoever may write the folder may write a valid model, but not code.

Models declare the ability by implementing :class:`Saveable` (usually through
:class:`SavedState`): ``saved_params()``, ``saved_values()`` and ``from_saved(params, values)``."""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from pulserec.ids import IdIndex
from pulserec.models.base import write_atomically

FORMAT = "pulserec-model"
VERSION = 1
SUFFIX = ".model"
META_ENTRY, PAYLOAD_ENTRY = "meta.json", "payload.npz"
#: meta.json larger than this is refused before parsing (parameters and field lists are small).
MAX_META_BYTES = 16 << 20


class ModelFileError(ValueError):
    """A saved model that is refused: not our format, another version, or a corrupt payload."""


@runtime_checkable
class Saveable(Protocol):
    """A model that can be written by :func:`save_model` and read by :func:`load_model`."""

    name: ClassVar[str]

    def saved_params(self) -> dict[str, Any]:
        """JSON-able constructor arguments: what the model was (and will be re-)trained with."""
        ...

    def saved_values(self) -> dict[str, Any]:
        """The fitted state: arrays, sparse matrices, id indices, nested models, JSON values."""
        ...

    @classmethod
    def from_saved(cls, params: dict[str, Any], values: dict[str, Any]) -> Saveable: ...


@runtime_checkable
class Loadable(Protocol):
    """A class that rebuilds a model from a file (the half of :class:`Saveable` a class has;
    methods only, so `issubclass` can check it)."""

    @classmethod
    def from_saved(cls, params: dict[str, Any], values: dict[str, Any]) -> Saveable: ...


class SavedState:
    """Default :class:`Saveable` behaviour: parameters are the ``__init__`` arguments kept as
    attributes of the same name; the state is the attributes listed in ``saved_fields``."""

    saved_fields: ClassVar[tuple[str, ...]] = ()
    #: State fields added after files were first saved: written always, set when a file has them.
    optional_fields: ClassVar[tuple[str, ...]] = ()

    def saved_params(self) -> dict[str, Any]:
        names = [p.name for p in inspect.signature(type(self).__init__).parameters.values()
                 if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return {name: getattr(self, name) for name in names}

    def saved_values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (*self.saved_fields, *self.optional_fields)}

    @classmethod
    def from_saved(cls, params: dict[str, Any], values: dict[str, Any]) -> Any:
        model = cls(**params)
        for name in cls.saved_fields:
            if name not in values:
                raise ModelFileError(f"{cls.__name__} state lacks field {name!r}")
            setattr(model, name, values[name])
        for name in cls.optional_fields:
            if name in values:
                setattr(model, name, values[name])
        model.after_load()
        return model

    def after_load(self) -> None:
        """Rebuild what was derived from the saved fields (caches, weightings)."""

    def save(self, path: str | Path, info: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """:func:`save_model` of this model; returns the metadata written."""
        return save_model(self, path, info)

    @classmethod
    def load(cls, path: str | Path) -> Any:
        """:func:`load_model` of a file that must hold this class's model."""
        model, _ = load_model(path, expected=cls.name)  # type: ignore[attr-defined]
        if not isinstance(model, cls):
            raise ModelFileError(f"{path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model


# -- encoding values into arrays + a JSON description ------------------------------------------
def pack_strings(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of all strings back to back, and their end offsets (compact, no pickle)."""
    encoded = [v.encode("utf-8", "surrogatepass") for v in values]
    ends = np.cumsum([len(e) for e in encoded], dtype=np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), ends


def unpack_strings(data: np.ndarray, ends: np.ndarray) -> list[str]:
    raw = data.tobytes()
    starts = np.r_[0, ends[:-1]] if len(ends) else ends
    return [raw[s:e].decode("utf-8", "surrogatepass") for s, e in zip(starts.tolist(), ends.tolist())]


def encode(value: Any, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Describe `value` in JSON, putting its arrays into `arrays` under names starting with `key`."""
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError(f"{key}: object arrays cannot be saved")
        arrays[key] = value
        return {"kind": "array"}
    if sp.issparse(value):
        value = sp.csr_matrix(value)
        arrays.update({f"{key}.data": value.data, f"{key}.indices": value.indices, f"{key}.indptr": value.indptr})
        return {"kind": "csr", "shape": list(value.shape)}
    if isinstance(value, IdIndex):
        arrays[f"{key}.bytes"], arrays[f"{key}.ends"] = pack_strings(value.ids)
        return {"kind": "ids"}
    if isinstance(value, Saveable):
        return {"kind": "model", "model": value.name, "params": value.saved_params(),
                "fields": {k: encode(v, f"{key}.{k}", arrays) for k, v in value.saved_values().items()}}
    if isinstance(value, (list, tuple)) and any(_needs_arrays(v) for v in value):
        return {"kind": "list", "items": [encode(v, f"{key}.{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, Mapping) and any(_needs_arrays(v) for v in value.values()):
        return {"kind": "dict", "items": {str(k): encode(v, f"{key}.{k}", arrays) for k, v in value.items()}}
    json.dumps(value)  # raises TypeError for anything that is not plain JSON
    return {"kind": "json", "value": value}


def _needs_arrays(value: Any) -> bool:
    """Whether `value` holds anything that plain JSON cannot (then containers are described item by item)."""
    if isinstance(value, (np.ndarray, IdIndex, Saveable)) or sp.issparse(value):
        return True
    if isinstance(value, Mapping):
        return any(_needs_arrays(v) for v in value.values())
    return isinstance(value, (list, tuple)) and any(_needs_arrays(v) for v in value)


def decode(description: Mapping[str, Any], key: str, arrays: Mapping[str, np.ndarray]) -> Any:
    try:
        kind = description["kind"]
        if kind == "array":
            return arrays[key]
        if kind == "csr":
            parts = (arrays[f"{key}.data"], arrays[f"{key}.indices"], arrays[f"{key}.indptr"])
            return sp.csr_matrix(parts, shape=tuple(description["shape"]))
        if kind == "ids":
            return IdIndex(unpack_strings(arrays[f"{key}.bytes"], arrays[f"{key}.ends"]))
        if kind == "model":
            values = {k: decode(d, f"{key}.{k}", arrays) for k, d in description["fields"].items()}
            return saveable_class(description["model"]).from_saved(dict(description["params"]), values)
        if kind == "list":
            return [decode(d, f"{key}.{i}", arrays) for i, d in enumerate(description["items"])]
        if kind == "dict":
            return {k: decode(d, f"{key}.{k}", arrays) for k, d in description["items"].items()}
        if kind == "json":
            return description["value"]
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"field {key!r}: {type(exc).__name__}: {exc}") from None
    raise ModelFileError(f"field {key!r} has unknown kind {kind!r}")


def saveable_class(name: str) -> type:
    """The class saved under `name`, from the registry (never from the file)."""
    from pulserec.models.registry import saved_class  # noqa: PLC0415 - the registry names modules that import this one

    try:
        cls = saved_class(name)
    except KeyError as exc:
        raise ModelFileError(str(exc.args[0])) from None
    if not issubclass(cls, Loadable):
        raise ModelFileError(f"model {name!r} cannot be loaded from a file")
    return cls


# -- the file ------------------------------------------------------------------------------------
def save_model(model: Any, path: str | Path, info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write `model` to `path` atomically; returns the metadata written (``info`` included)."""
    if not isinstance(model, Saveable):
        raise TypeError(f"{type(model).__name__} cannot be saved (it does not implement Saveable)")
    arrays: dict[str, np.ndarray] = {}
    description = encode(model, "model", arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    meta = {"format": FORMAT, "version": VERSION, "model": model.name, "params": description["params"],
            "fields": description["fields"], "info": dict(info or {}),
            "payload_sha256": hashlib.sha256(payload).hexdigest()}
    text = json.dumps(meta, allow_nan=True, sort_keys=True).encode()

    def write(fh: Any) -> None:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(META_ENTRY, text)
            archive.writestr(PAYLOAD_ENTRY, payload)

    write_atomically(path, write)
    return meta


def _entry(archive: zipfile.ZipFile, name: str, limit: int | None = None) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ModelFileError(f"no {name} inside") from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise ModelFileError(f"{name} is compressed; pulserec writes stored entries only")
    if limit is not None and info.file_size > limit:
        raise ModelFileError(f"{name} is {info.file_size} bytes, more than {limit}")
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, EOFError) as exc:  # the zip's CRC-32 caught a damaged entry
        raise ModelFileError(f"{name}: checksum mismatch ({exc})") from None


def _open(path: str | Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ModelFileError("not a pulserec model file (not a zip archive)") from None


def _checked_meta(archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        meta = json.loads(_entry(archive, META_ENTRY, MAX_META_BYTES))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{META_ENTRY} is not JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"not a {FORMAT} file")
    if meta.get("version") != VERSION:
        raise ModelFileError(f"format version {meta.get('version')!r} is not the supported {VERSION}")
    return meta


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a saved model (format and version checked, payload not read)."""
    with _open(path) as archive:
        return _checked_meta(archive)


def load_model(path: str | Path, expected: str | None = None) -> tuple[Any, dict[str, Any]]:
    """(model, metadata) of a saved model; :class:`ModelFileError` if it is refused."""
    with _open(path) as archive:
        meta = _checked_meta(archive)
        payload = _entry(archive, PAYLOAD_ENTRY)
    if hashlib.sha256(payload).hexdigest() != meta.get("payload_sha256"):
        raise ModelFileError("payload checksum mismatch (corrupt or altered file)")
    if expected is not None and meta.get("model") != expected:
        raise ModelFileError(f"holds a {meta.get('model')!r} model, not {expected!r}")
    with _open(io.BytesIO(payload)) as inner:
        if any(info.compress_type != zipfile.ZIP_STORED for info in inner.infolist()):
            raise ModelFileError("payload entries are compressed; pulserec writes stored entries only")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except ValueError as exc:  # allow_pickle=False refusing an object array lands here
        raise ModelFileError(f"payload refused: {exc}") from None
    description = {"kind": "model", "model": meta.get("model"), "params": meta.get("params") or {},
                   "fields": meta.get("fields") or {}}
    try:
        model = decode(description, "model", arrays)
    except TypeError as exc:  # wrong constructor parameters
        raise ModelFileError(f"cannot rebuild the model: {exc}") from None
    return model, meta
