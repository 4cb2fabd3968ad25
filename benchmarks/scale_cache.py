"""What `scale.py` keeps between runs: each size's imported data dir and the figures of every
phase it ran, so that the 10M row can be measured in several turns of the benchmark lock.

A 10M-event import into SQLite + the state takes minutes on the 2-core box, and a start by
full replay as long again; together with the rest of the row they do not fit one polite turn
of `flock /tmp/bench.lock`. So the work directory keeps, per size, the data dir the import
phase wrote (`data-<label>/`) and `<label>.json`: one entry per phase with its figures, when
it ran, the load average before and after, and the commit. A later run reuses the import when
the code that decides what it writes is unchanged (`import_fingerprint`), and runs only the
phases asked for; the report merges every phase's latest figures and names when each ran."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: The sources whose code decides what `import` writes into a data dir (the log, the snapshot)
#: and what a start reads back: a change to any of them invalidates a kept import.
IMPORT_SOURCES = ("src/pulserec/store", "src/pulserec/ingest", "src/pulserec/online", "src/pulserec/profiles",
                  "src/pulserec/engine/bulk.py", "src/pulserec/engine/checkpoints.py", "src/pulserec/config.py",
                  "src/pulserec/events.py", "src/pulserec/event_weights.py", "src/pulserec/ids.py")


def import_fingerprint(root: Path = ROOT) -> str:
    """sha256 over the path and bytes of every Python file of IMPORT_SOURCES (16 hex digits)."""
    digest = hashlib.sha256()
    for source in IMPORT_SOURCES:
        path = root / source
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def commit(root: Path = ROOT) -> str:
    """The checkout's commit (short), with '+dirty' when it has uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True).stdout.strip()
    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    return sha + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


class Kept:
    """One size's kept results (`<work>/<label>.json`) and imported data dir (`<work>/data-<label>`)."""

    def __init__(self, work: Path, label: str) -> None:
        self.work, self.label = work, label
        self.path = work / f"{label}.json"
        self.data = work / f"data-{label}"
        self.phases: dict[str, dict[str, Any]] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def import_usable(self, fingerprint: str) -> bool:
        """Whether the kept import was made by code that writes what this checkout writes."""
        done = self.phases.get("import")
        return bool(done) and done.get("fingerprint") == fingerprint and self.data.is_dir()

    def fresh_data(self) -> Path:
        """An empty data dir for a new import; the old one and every figure measured on it go
        (the shop's generate figures stay: the shop is the same)."""
        shutil.rmtree(self.data, ignore_errors=True)
        self.phases = {name: p for name, p in self.phases.items() if name == "generate"}
        self._save()
        return self.data

    def record(self, phase: str, figures: dict[str, Any], load_before: float, **extra: Any) -> None:
        """Keep `phase`'s figures with when it ran, the load around it and the commit."""
        self.phases[phase] = {**figures, "at": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "load": [round(load_before, 1), round(os.getloadavg()[0], 1)], "commit": commit(), **extra}
        self._save()

    def _save(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.phases, indent=1))
        tmp.replace(self.path)  # a run killed midway leaves the previous figures, not half a file
