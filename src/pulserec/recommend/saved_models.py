"""Models saved under `<data_dir>/models/`: served at start, and picked up while serving.

Any process may write a model there: `POST /models/{name}/train` in one of several workers,
the background retrain, or `pulserec train --engine spark` on another machine writing to a
shared data dir. Files are written to a temporary name and renamed, so a reader never sees half
a model. Each serving process polls the folder (:class:`ModelWatcher`) and installs a model whose
file appeared or changed since it was installed; a removed file leaves the last version served."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pulserec.models.persist import SUFFIX, ModelFileError, load_model, read_meta
from pulserec.recommend.background import PeriodicTask

log = logging.getLogger(__name__)

#: Serves a loaded model with its metadata (`Training.install_loaded` of the engine: under the engine's lock).
#: Returns a falsy value when it cannot serve it (a ranker whose sources are not served).
Install = Callable[[Any, dict[str, Any]], object]

#: Files of the pickle format pulserec wrote before: never opened, a warning says why.
LEGACY_SUFFIX = ".pkl"

#: Saved under this name, the ranker reads other models as its sources: installed after them.
RANKER = "ranker"


def models_dir(data_dir: Path) -> Path:
    return data_dir / "models"


def model_path(data_dir: Path, name: str) -> Path:
    """Where the model `name` is saved (and found by every serving process)."""
    return models_dir(data_dir) / f"{name}{SUFFIX}"


def file_stamp(path: Path) -> str:
    """Changes whenever the file is replaced or rewritten: inode, size and modification time."""
    stat = os.stat(path)
    return f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"


def file_meta(path: Path) -> dict[str, Any]:
    """What a serving process records of the file a model it serves was loaded from (or saved to)."""
    return {"loaded_from": str(path), "file_stamp": file_stamp(path)}


def served_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What `GET /models` shows of a saved model: its training info (watermark, time, the
    parameters it was trained with) and the file's format version and checksum."""
    info = meta.get("info", {})
    return {**info, "params": info.get("params", meta.get("params", {})),
            "format_version": meta.get("version"), "payload_sha256": meta.get("payload_sha256")}


def saved_params(data_dir: Path, name: str) -> dict[str, Any] | None:
    """The parameters the saved model `name` was trained with, or None without a usable file."""
    try:
        meta = read_meta(model_path(data_dir, name))
    except (OSError, ModelFileError):
        return None
    params = meta.get("info", {}).get("params", meta.get("params"))
    return dict(params) if isinstance(params, dict) else None


def install_file(path: Path, install: Install) -> str | None:
    """Load one saved model and `install` it; returns a log line, or None if the file is refused."""
    try:
        stamp = file_meta(path)
        model, meta = load_model(path)
    except Exception as exc:  # noqa: BLE001 - a corrupt, foreign or vanished file must not stop serving
        log.warning("model file %s refused: %s", path, exc)
        return None
    try:
        served = install(model, {**served_meta(meta), **stamp})
    except (TypeError, ValueError) as exc:  # a model that cannot be served on its own
        log.warning("model file %s refused: %s", path, exc)
        return None
    if not served:
        log.warning("model file %s refused: the models it is built on are not served", path)
        return None
    return f"{model.name}: loaded from {path}"


def installed_stamps(metas: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """File -> stamp of every served model (given by their metadata) loaded from (or saved to) a file."""
    return {meta["loaded_from"]: meta.get("file_stamp", "") for meta in metas if "loaded_from" in meta}


def install_changed(folder: Path, served: Mapping[str, str], install: Install,
                    failed: dict[str, str] | None = None) -> list[str]:
    """Install every model saved in `folder` whose file is new or changed since it was installed
    (`served`: file -> stamp, :func:`installed_stamps`).

    `failed` (file -> stamp) remembers unusable files, so each version of one is tried once."""
    if not folder.is_dir():
        return []
    lines = []
    warn_legacy(folder, failed)
    for path in sorted(folder.glob(f"*{SUFFIX}"), key=lambda p: (p.stem == RANKER, p.name)):
        try:
            stamp = file_stamp(path)
        except FileNotFoundError:  # replaced or removed between the listing and now
            continue
        if stamp in (served.get(str(path)), (failed or {}).get(str(path))):
            continue
        line = install_file(path, install)
        if line:
            lines.append(line)
        elif failed is not None:
            failed[str(path)] = stamp
    return lines


def warn_legacy(folder: Path, seen: dict[str, str] | None) -> None:
    """One warning per pickled model file (the old format): it is never loaded, since unpickling
    a file from a shared folder would run whatever code it holds."""
    for path in folder.glob(f"*{LEGACY_SUFFIX}"):
        if seen is not None and str(path) in seen:
            continue
        log.warning("model file %s ignored: pickled models are not loaded (retrain it to save it as %s)", path, SUFFIX)
        if seen is not None:
            seen[str(path)] = "legacy"


class ModelWatcher(PeriodicTask):
    """Calls `install_saved(failed)` (`Training.install_saved` of the engine: :func:`install_changed` over the
    engine's models folder) every `interval` seconds."""

    thread_name = "pulserec-model-watch"

    def __init__(self, install_saved: Callable[[dict[str, str]], list[str]], interval: float) -> None:
        super().__init__(interval)
        self.install_saved = install_saved
        self.installs = 0
        self.failed: dict[str, str] = {}

    def tick(self) -> None:
        for line in self.install_saved(self.failed):
            self.installs += 1
            log.info("model watch: %s", line)
