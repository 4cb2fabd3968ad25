"""The dashboard's overview document (GET /dashboard/api/overview): one JSON for the whole page."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol, TypedDict

from pulserec.engine import Engine
from pulserec.runtime.insights import default_choice, evaluation, model_age_s, model_list, trending_items
from pulserec.runtime.live import EventRate, RecentAnswers


class EngagementRow(TypedDict):
    """Outcome counts of shown recommendations for one strategy and A/B variant."""

    strategy: str
    variant: str | None
    impressions: int
    clicks: int
    conversions: int


class EngagementSource(Protocol):
    """Whatever records impressions (`POST /impressions`): the engine's `feedback` store."""

    def engagement_rows(self) -> Sequence[EngagementRow]: ...


NO_ENGAGEMENT = "no data yet: impressions are not recorded (POST /impressions)"


def engagement(source: EngagementSource | None) -> dict[str, Any]:
    """CTR and conversion rate per strategy and variant, or an explanation of why there are none."""
    rows = list(source.engagement_rows()) if source is not None else []
    if not rows:
        return {"available": False, "note": NO_ENGAGEMENT if source is None else "no impressions yet", "rows": []}
    out = []
    for row in rows:
        shown = row["impressions"]
        out.append({**row, "ctr": _rate(row["clicks"], shown), "conversion_rate": _rate(row["conversions"], shown)})
    return {"available": True, "note": None, "rows": out}


def overview(engine: Engine, rates: EventRate, answers: RecentAnswers, source: EngagementSource | None = None,
             window: int = 60, top: int = 10) -> dict[str, Any]:
    """The whole page: totals, events/s over the last `window` seconds (`rates`), latencies and
    coverage of recent answers (`answers`), engagement, trending, models and evaluations."""
    stats = engine.stats()
    series = rates.series(window)
    types = sorted({t for point in series for t in point["by_type"]})
    seconds = max(len(series), 1)
    models = model_list(engine)
    return {
        "generated_at": time.time(),
        "totals": {k: stats[k] for k in ("events_applied", "events_stored", "items", "users", "cooccurrence_nnz",
                                          "event_time", "uptime_s")},
        "events_per_second": {
            "window_s": len(series),
            "types": types,
            "series": series,
            "average": round(sum(p["total"] for p in series) / seconds, 3),
            "average_by_type": {t: round(sum(p["by_type"].get(t, 0) for p in series) / seconds, 3) for t in types},
        },
        "latency_ms": answers.latency_ms(),
        "engagement": engagement(source),
        "trending": trending_items(engine, top),
        "coverage": answers.coverage(stats["items"]),
        "models": [{**m, "age_s": model_age_s(m)} for m in models],
        "default_choice": default_choice(engine),
        "evaluation": evaluation(engine),
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
