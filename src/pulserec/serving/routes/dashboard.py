"""The operator dashboard: HTML pages (one static single-page app) and its JSON overview."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from pulserec.serving.examples import json_example
from pulserec.runtime.overview import overview as build_overview
from pulserec.serving.routes.deps import ItemId, UserId, engine_of
from pulserec.serving.routes.monitoring import metrics_of

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PAGE = STATIC_DIR / "dashboard" / "index.html"

router = APIRouter(tags=["dashboard"])

OVERVIEW_EXAMPLE = {
    "generated_at": 1732521600.0,
    "totals": {"events_applied": 20000, "events_stored": 20000, "items": 400, "users": 333, "cooccurrence_nnz": 51234,
               "event_time": 1732521599.0, "uptime_s": 3600.0},
    "events_per_second": {"window_s": 60, "types": ["view"], "series": [{"t": 1732521599, "total": 12, "by_type": {"view": 12}}],
                          "average": 12.0, "average_by_type": {"view": 12.0}},
    "latency_ms": {"count": 120, "overall": {"p50": 1.2, "p90": 2.5, "p99": 6.0, "count": 120},
                   "by_strategy": {"default": {"p50": 1.2, "p90": 2.5, "p99": 6.0, "count": 120}}},
    "engagement": {"available": True, "note": None, "rows": [
        {"strategy": "default", "variant": "A", "impressions": 1000, "clicks": 52, "conversions": 7, "ctr": 0.052,
         "conversion_rate": 0.007}]},
    "trending": [{"item_id": "sku-7", "title": "Trail running shoe", "category": "shoes", "score": 42.1, "events": 412}],
    "coverage": {"answers": 120, "distinct_items": 87, "catalogue_items": 400, "share": 0.2175},
    "models": [{"name": "default", "kind": "Blend", "age_s": None}],
    "evaluation": {"report_url": "/reports/report.html", "metrics": {"als": {"ndcg@10": 0.21}}},
}


def _page() -> FileResponse:
    return FileResponse(PAGE, media_type="text/html", headers={"Cache-Control": "no-cache"})


# The page routes are `async`: they only build a FileResponse, which sends the file without
# blocking the event loop. The JSON overview calls the engine (its lock), so it is a plain `def`
# and FastAPI runs it in its thread pool.
@router.get("/dashboard", include_in_schema=False)
async def dashboard() -> FileResponse:
    return _page()


#: Pages of the single-page app besides the overview and the user and item pages.
Page = Literal["history", "users", "items", "tasks", "controls", "config"]


@router.get("/dashboard/{page}", include_in_schema=False)
async def dashboard_page(page: Page) -> FileResponse:
    return _page()


@router.get("/dashboard/users/{user_id}", include_in_schema=False)
async def dashboard_user(user_id: UserId) -> FileResponse:
    return _page()


@router.get("/dashboard/items/{item_id}", include_in_schema=False)
async def dashboard_item(item_id: ItemId) -> FileResponse:
    return _page()


@router.get("/dashboard/api/overview", summary="Everything the dashboard's overview page shows, in one document",
            responses=json_example(OVERVIEW_EXAMPLE))
def overview(
    request: Request,
    window: Annotated[int, Query(ge=10, le=290, description="Seconds of events/s history (10-290).")] = 60,
    top: Annotated[int, Query(ge=1, le=50, description="How many trending items (1-50).")] = 10,
) -> dict:
    engine, metrics = engine_of(request), metrics_of(request)
    return build_overview(engine, metrics.rates, metrics.answers, engine.feedback, window, top)
