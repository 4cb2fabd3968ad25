"""GET /search: catalogue items matching a shopper's query, ranked for the person asking (issue 14.3).

(The operators' search of users and items by id, for the dashboard, is GET /dashboard/api/search.)"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import Field

from pulserec.ingest.schemas import Id
from pulserec.serving.examples import json_example
from pulserec.recommend.filters import Filters
from pulserec.serving.errors import beyond_schema
from pulserec.serving.routes.deps import BAD_EXPRESSION, UNKNOWN_FILTER, FilterParams, engine_of
from pulserec.validation import N_CAP

router = APIRouter(tags=["recommendations"])
#: The asker is a user or a session (a query string cannot state "not both" in JSON Schema).
ONE_ASKER = "give a user_id or a session_id, not both"


EXAMPLE = {
    "query": "running shoe", "user_id": "u42", "session_id": None,
    "items": [{"item_id": "sku-7", "score": 1.62, "reason": 'matches "running shoe", picked for you', "source": "search",
               "title": "Running shoe #7", "category": "shoes"}],
}


class SearchParams(FilterParams):
    q: str = Field(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$",
                   description="The shopper's query (BM25 over item title, description, tags and category).",
                   examples=["running shoe"])
    user_id: Id | None = Field(None, description="Rank for this user (their taste lifts the items they would like).")
    session_id: Id | None = Field(None, description="Rank for this anonymous session (when no user_id).")
    n: int = Field(10, ge=1, le=N_CAP, description="How many results (1 to the setting max_n).")


@router.get("/search", summary="Items matching a query, ranked by match x the asker's personal score",
            responses=json_example(EXAMPLE), openapi_extra=beyond_schema(ONE_ASKER, UNKNOWN_FILTER, BAD_EXPRESSION))
def search_items(request: Request, params: Annotated[SearchParams, Query()]) -> dict[str, Any]:
    if params.user_id is not None and params.session_id is not None:
        raise HTTPException(422, ONE_ASKER)
    engine = engine_of(request)
    filters = Filters(exclude_seen=False, expressions=params.expressions(engine.controls))
    found = engine.search_items(params.q, params.n, user_id=params.user_id, session_id=params.session_id, filters=filters)
    return {"query": params.q, "user_id": params.user_id, "session_id": params.session_id,
            "items": [r.to_dict() for r in found]}
