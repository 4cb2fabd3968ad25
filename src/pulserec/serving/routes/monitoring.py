"""GET /metrics (Prometheus text format) and GET /dashboard/api/search (the operators' search of
users and items by id or title; the shoppers' item search is GET /search, routes/search.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import AfterValidator

from pulserec.ingest.schemas import MAX_ID
from pulserec.serving.examples import json_example
from pulserec.serving.metrics import ServingMetrics
from pulserec.serving.routes.deps import engine_of, extras_of
from pulserec.validation import within_id_limit

router = APIRouter(tags=["operations"])

METRICS_EXAMPLE = """# HELP pulserec_events_ingested_total Events accepted and applied to the online state, by type.
# TYPE pulserec_events_ingested_total counter
pulserec_events_ingested_total{type="view"} 1042.0
"""

SEARCH_EXAMPLE = {
    "query": "sho",
    "users": [{"user_id": "shopper-7", "event_count": 31}],
    "items": [{"item_id": "shoe-1", "title": "Trail shoe", "category": "shoes"}],
}


def metrics_of(request: Request) -> ServingMetrics:
    """The metrics of the request's app (each open app has its own, runtime/apps.py)."""
    extras = extras_of(request)
    return extras.metrics if extras is not None else request.app.state.metrics


@router.get("/metrics", summary="Prometheus metrics: traffic, latency, ingestion, lag, state and model sizes, errors",
            response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {"example": METRICS_EXAMPLE}}}})
def metrics(request: Request) -> Response:
    return Response(metrics_of(request).render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/dashboard/api/search", summary="Operators: find users and items by id or title (prefix matches first)",
            responses=json_example(SEARCH_EXAMPLE))
def find(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=MAX_ID, pattern=r"^[^\x00-\x1f\x7f]+$",
                            description="Text to find in user ids, item ids and item titles (case-insensitive).",
                            examples=["shoe"]), AfterValidator(within_id_limit)],
    limit: Annotated[int, Query(ge=1, le=50, description="At most this many users and this many items (1-50).")] = 10,
    kind: Annotated[Literal["all", "users", "items"], Query(description="What to search.")] = "all",
) -> dict:
    found = engine_of(request).search(q.strip() or q, limit, users=kind in ("all", "users"), items=kind in ("all", "items"))
    return found.to_dict()
