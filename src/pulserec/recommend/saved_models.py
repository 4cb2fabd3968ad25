"""Models saved under `<data_dir>/models/`: served at start, and picked up while serving.

Any process may write a model there: `POST /models/{name}/train` in one of several workers,
the background retrain, or `pulserec train --engine spark` on another machine writing to a
shared data dir. Files are written to a temporary name and renamed, so a reader never sees half
a model. Each serving process polls the folder (:class:`ModelWatcher`) and installs a model whose
file appeared or changed since it was installed; a removed file leaves the last version served."""

from __future__ import annotations

import ast
import logging
import os
import pickle
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pulserec.models.base import TrainedIds
from pulserec.recommend.background import PeriodicTask

log = logging.getLogger(__name__)

#: Serves a loaded model with its metadata (`Engine.install_model`: under the engine's lock).
Install = Callable[[Any, dict[str, Any]], object]


def models_dir(data_dir: Path) -> Path:
    return data_dir / "models"


def file_stamp(path: Path) -> str:
    """Changes whenever the file is replaced or rewritten: inode, size and modification time."""
    stat = os.stat(path)
    return f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"


def file_meta(path: Path) -> dict[str, Any]:
    """What a serving process records of the file a model it serves was loaded from (or saved to)."""
    return {"loaded_from": str(path), "file_stamp": file_stamp(path)}


def saved_meta(path: Path) -> dict[str, Any]:
    """A saved model's metadata: its `.meta` file, if any, and :func:`file_meta`."""
    meta = file_meta(path)
    meta_file = path.with_suffix(".meta")
    if meta_file.is_file():
        try:
            meta.update(ast.literal_eval(meta_file.read_text()))
        except (ValueError, SyntaxError):
            pass
    return meta


def install_file(path: Path, install: Install) -> str | None:
    """Load one saved model and `install` it; returns a log line, or None if the file is unusable."""
    try:
        meta = saved_meta(path)
        with open(path, "rb") as fh:
            model = pickle.load(fh)
    except Exception as exc:  # noqa: BLE001 - a corrupt or vanished file must not stop serving
        log.warning("cannot load model %s: %s", path, exc)
        return None
    if not isinstance(model, TrainedIds):
        log.warning("%s is not a trained pulserec model; skipped", path)
        return None
    install(model, meta)
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
    for path in sorted(folder.glob("*.pkl")):
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


class ModelWatcher(PeriodicTask):
    """Calls `install_saved(failed)` (`Engine.install_saved`: :func:`install_changed` over the
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
