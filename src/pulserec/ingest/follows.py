"""Bulk import of social ties (issue 14.4) from CSV/Parquet: columns `follower`, `followee` and an
optional `weight` (tie strength, default 1). Rows are checked like POST /follows' edges (ids as
the API takes them, no self-ties, 0 < weight <= MAX_WEIGHT); bad rows are reported and skipped,
or abort the import with `on_error="fail"` before anything is stored."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from pulserec.engine import Engine
from pulserec.ingest.importer import ImportAborted, ImportReport, _texts, read_table
from pulserec.store.social import MAX_WEIGHT, SELF_FOLLOW

_BAD_ID = r"[\x00-\x1f\x7f]"


def check_edges(frame: pd.DataFrame, max_id: int, first_row: int = 0) -> tuple[pd.DataFrame, list[dict]]:
    """(valid edges as follower, followee, weight; errors with row, field, message)."""
    missing = [c for c in ("follower", "followee") if c not in frame]
    if missing:
        raise ValueError(f"the file needs the columns follower and followee (missing: {', '.join(missing)})")
    out = pd.DataFrame({"follower": _texts(frame["follower"]), "followee": _texts(frame["followee"])})
    raw = frame["weight"] if "weight" in frame else pd.Series([None] * len(frame), index=frame.index, dtype=object)
    weight = pd.to_numeric(raw, errors="coerce")
    out["weight"] = weight.where(raw.notna(), 1.0)
    checks = []
    for name in ("follower", "followee"):
        text = out[name].astype("string")
        bad = (text.isna() | (text.str.len() > max_id) | text.str.contains(_BAD_ID, regex=True)).fillna(True)
        checks.append((bad.to_numpy(dtype=bool), name, f"must be 1-{max_id} printable characters"))
    checks.append(((out["follower"] == out["followee"]).to_numpy(dtype=bool), "followee", SELF_FOLLOW))
    w = out["weight"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        checks.append((~((w > 0) & (w <= MAX_WEIGHT)), "weight", f"must be a number above 0 and at most {MAX_WEIGHT:g}"))
    bad = np.zeros(len(out), dtype=bool)
    errors = []
    for mask, field, message in checks:
        bad |= mask
        errors += [{"row": first_row + int(r) + 1, "field": field, "message": message} for r in np.flatnonzero(mask)[:20]]
    return out[~bad], sorted(errors, key=lambda e: e["row"])


def import_follows(engine: Engine, path: str | Path, on_error: str = "skip") -> ImportReport:
    """Load a file of ties into the engine's social graph (see the module docstring)."""
    started, report, first = time.perf_counter(), ImportReport(), 0
    for chunk in read_table(path):
        valid, errors = check_edges(chunk, engine.settings.max_id_len, first)
        if errors and on_error == "fail":
            raise ImportAborted(f"{len(errors)} invalid rows from row {errors[0]['row']}: {errors[0]['message']}")
        report.rows += len(chunk)
        report.rejected += len(chunk) - len(valid)
        report.errors += errors[: max(0, 50 - len(report.errors))]
        created = engine.follow_many(valid.itertuples(index=False, name=None))
        report.accepted += created
        report.duplicates += len(valid) - created
        first += len(chunk)
    report.seconds = time.perf_counter() - started
    return report
