"""GET /users/{id}/recommendations and GET /sessions/{id}/recommendations.

The routes are `async` and run the engine call through `deps.on_engine`: on the event loop when
the engine can take it at once, in the thread pool otherwise (the hot path's thread hop cost more
CPU than the recommendation itself under concurrent load)."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from pulserec.serving.metrics import note_answer
from pulserec.serving.errors import beyond_schema
from pulserec.engine import Engine
from pulserec.serving.routes.deps import RANKING_RULES, UNKNOWN_EXPERIMENT, RecommendationParams, SessionId, UserId, on_engine
from pulserec.experiments.service import Served

router = APIRouter(tags=["recommendations"])
RULES = beyond_schema(*RANKING_RULES, UNKNOWN_EXPERIMENT)


def _serve(request: Request, engine: Engine, user_id: str | None, session_id: str | None,
           params: RecommendationParams) -> dict[str, Any]:
    n, strategy, experiment, rules, context = params.n, params.strategy, params.experiment, params.rules(engine.controls), params.context()
    try:
        assignment = engine.experiments.resolve(user_id or f"session:{session_id}", experiment, strategy)
        chosen = assignment.strategy if assignment else strategy
        if user_id is not None:
            answer = engine.recommend(user_id, n, rules, chosen, context)
        else:
            answer = engine.recommend_session(session_id or "", n, rules, chosen, context)
    except KeyError as exc:
        raise HTTPException(422, str(exc.args[0])) from None
    note_answer(request, answer)
    rec_id = uuid.uuid4().hex
    engine.experiments.remember(rec_id, Served(
        user_id=engine.user_key(user_id) if user_id else None, session_id=engine.session_key(session_id) if session_id else None,
        strategy=answer.strategy,
        experiment=assignment.experiment if assignment else None, variant=assignment.variant if assignment else None,
        items=tuple(r.item_id for r in answer.items),
        slots=tuple((r.item_id, "promotion", r.promotion) for r in answer.items if r.promotion)
        + tuple((r.item_id, "exploration", answer.strategy) for r in answer.items if r.explored)))
    subject = {"user_id": user_id} if user_id is not None else {"session_id": session_id}
    return {
        **subject,
        "recommendation_id": rec_id,
        "strategy": answer.strategy,
        "experiment": assignment.experiment if assignment else None,
        "variant": assignment.variant if assignment else None,
        "cold_start": answer.cold_start,
        "history_size": answer.history_size,
        "generated_at": time.time(),
        "items": [r.to_dict() for r in answer.items],
    }


@router.get("/users/{user_id}/recommendations", summary="What this user should see now", openapi_extra=RULES)
async def user_recommendations(
    user_id: UserId, request: Request, params: Annotated[RecommendationParams, Query()]
) -> dict[str, Any]:
    return await on_engine(request, lambda engine: _serve(request, engine, user_id, None, params))


@router.get("/sessions/{session_id}/recommendations", summary="Recommendations for an anonymous session",
            openapi_extra=RULES)
async def session_recommendations(
    session_id: SessionId, request: Request, params: Annotated[RecommendationParams, Query()]
) -> dict[str, Any]:
    return await on_engine(request, lambda engine: _serve(request, engine, None, session_id, params))
