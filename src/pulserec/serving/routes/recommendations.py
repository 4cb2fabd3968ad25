"""GET /users/{id}/recommendations and GET /sessions/{id}/recommendations."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from pulserec.serving.metrics import note_answer
from pulserec.serving.routes.deps import Count, SessionId, UserId, context_params, engine_of, filters
from pulserec.serving.service import Answer, Filters

router = APIRouter(tags=["recommendations"])
Strategy = Annotated[str | None, Query(max_length=64, description="Model to use (see GET /models); default: blend.")]


def _response(subject: dict[str, str], answer: Answer) -> dict[str, Any]:
    return {
        **subject,
        "recommendation_id": uuid.uuid4().hex,
        "strategy": answer.strategy,
        "cold_start": answer.cold_start,
        "history_size": answer.history_size,
        "generated_at": time.time(),
        "items": [r.to_dict() for r in answer.items],
    }


@router.get("/users/{user_id}/recommendations", summary="What this user should see now")
async def user_recommendations(
    user_id: UserId,
    request: Request,
    n: Count = 10,
    strategy: Strategy = None,
    rules: Filters = Depends(filters),
    context: dict[str, str] = Depends(context_params),
) -> dict[str, Any]:
    try:
        answer = engine_of(request).recommend(user_id, n, rules, strategy, context)
    except KeyError as exc:
        raise HTTPException(422, str(exc.args[0])) from None
    note_answer(request, answer)
    return _response({"user_id": user_id}, answer)


@router.get("/sessions/{session_id}/recommendations", summary="Recommendations for an anonymous session")
async def session_recommendations(
    session_id: SessionId,
    request: Request,
    n: Count = 10,
    strategy: Strategy = None,
    rules: Filters = Depends(filters),
    context: dict[str, str] = Depends(context_params),
) -> dict[str, Any]:
    try:
        answer = engine_of(request).recommend_session(session_id, n, rules, strategy, context)
    except KeyError as exc:
        raise HTTPException(422, str(exc.args[0])) from None
    note_answer(request, answer)
    return _response({"session_id": session_id}, answer)
