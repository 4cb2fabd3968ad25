"""GET /search: catalogue items matching a shopper's query, ranked for the person asking (issue 14.3).

(The operators' search of users and items by id, for the dashboard, is GET /dashboard/api/search.)"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import AfterValidator, Field

from pulserec.ingest.schemas import MAX_ID
from pulserec.serving.examples import json_example
from pulserec.recommend.filters import Filters
from pulserec.serving.routes.deps import ID_PATTERN, FilterParams, engine_of
from pulserec.validation import N_CAP, within_id_limit

router = APIRouter(tags=["recommendations"])

OptionalId = Annotated[str | None, Field(None, min_length=1, max_length=MAX_ID, pattern=ID_PATTERN), AfterValidator(
    lambda v: within_id_limit(v) if v is not None else v)]

EXAMPLE = {
    "query": "running shoe", "user_id": "u42", "session_id": None,
    "items": [{"item_id": "sku-7", "score": 1.62, "reason": 'matches "running shoe", picked for you', "source": "search",
               "title": "Running shoe #7", "category": "shoes"}],
}


class SearchParams(FilterParams):
    q: str = Field(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$",
                   description="The shopper's query (BM25 over item title, description, tags and category).",
                   examples=["running shoe"])
    user_id: OptionalId = Field(None, description="Rank for this user (their taste lifts the items they would like).")
    session_id: OptionalId = Field(None, description="Rank for this anonymous session (when no user_id).")
    n: int = Field(10, ge=1, le=N_CAP, description="How many results (1 to the setting max_n).")


@router.get("/search", summary="Items matching a query, ranked by match x the asker's personal score",
            responses=json_example(EXAMPLE))
def search_items(request: Request, params: Annotated[SearchParams, Query()]) -> dict[str, Any]:
    if params.user_id is not None and params.session_id is not None:
        raise HTTPException(422, "give a user_id or a session_id, not both")
    engine = engine_of(request)
    filters = Filters(exclude_seen=False, expressions=params.expressions(engine.controls))
    found = engine.search_items(params.q, params.n, user_id=params.user_id, session_id=params.session_id, filters=filters)
    return {"query": params.q, "user_id": params.user_id, "session_id": params.session_id,
            "items": [r.to_dict() for r in found]}
