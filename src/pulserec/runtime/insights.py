"""Read-only views over the engine shared by /models, /metrics and the dashboard."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from pulserec.engine import Engine
from pulserec.models.base import Described, FeatureImportances, meta_of
from pulserec.recommend.aligned import AlignedModel
from pulserec.recommend.service import trending_list

log = logging.getLogger(__name__)

#: Where `pulserec evaluate --report DIR` output is looked for, relative to the data directory.
REPORTS_DIR = "reports"
#: Entry pages of a report directory, in order of preference.
REPORT_PAGES = ("index.html", "report.html")
#: Optional machine-readable summary of the last evaluation: {"models": {name: {metric: value}}}.
EVALUATION_SUMMARY = "metrics.json"


def model_list(engine: Engine) -> list[dict[str, Any]]:
    """Every serving strategy: name, kind and the model's own metadata (trained_on, trained_at, ...)."""
    strategies = sorted(engine.served_models().items())
    out = []
    for name, model in strategies:
        inner = model.model if isinstance(model, AlignedModel) else model  # batch models are served aligned
        entry: dict[str, Any] = {"name": name, "kind": type(inner).__name__, "online": not isinstance(model, Described),
                                 **meta_of(model)}
        if isinstance(inner, FeatureImportances) and inner.feature_importance:
            entry["feature_importance"] = inner.feature_importance
        out.append(entry)
    return out


def default_choice(engine: Engine) -> dict[str, Any]:
    """What serves as the default: the built-in blend, or the blend an `auto` training chose on
    validation (its weights, validation scores and date)."""
    choice = engine.default_choice()
    if choice is None:
        return {"chosen": False, "blend": "item_knn + trending (built-in, until `auto` is trained: at start once the "
                                          "log holds auto_train_min_events events, or by `pulserec train`; GET /jobs)"}
    return {"chosen": True, **choice}


def model_age_s(meta: dict[str, Any], now: float | None = None) -> float | None:
    """Seconds since the model was trained, when its metadata says (`trained_at`, epoch seconds)."""
    trained_at = meta.get("trained_at")
    if not isinstance(trained_at, (int, float)):
        return None
    return max(0.0, (time.time() if now is None else now) - float(trained_at))


def trending_items(engine: Engine, n: int = 10) -> list[dict[str, Any]]:
    """The top-n items by decayed trending score, with titles and all-time event counts."""
    return engine.read(lambda state: trending_list(state, n, engine.clock()))


def reports_dir(engine: Engine) -> Path:
    return engine.settings.data_dir / REPORTS_DIR


def evaluation(engine: Engine) -> dict[str, Any]:
    """Link to the last evaluation report (if one was written) and its summary metrics (if any)."""
    root = reports_dir(engine)
    page = next((name for name in REPORT_PAGES if (root / name).is_file()), None)
    summary_path = root / EVALUATION_SUMMARY
    metrics: dict[str, Any] | None = None
    if summary_path.is_file():
        try:
            loaded = json.loads(summary_path.read_text())
            metrics = loaded.get("models") if isinstance(loaded, dict) else None
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s: %s", summary_path, exc)
    return {
        "report_url": f"/{REPORTS_DIR}/{page}" if page else None,
        "metrics": metrics if isinstance(metrics, dict) else None,
    }
