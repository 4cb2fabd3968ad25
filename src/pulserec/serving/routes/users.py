"""Users: PUT /users/{id}, GET /users/{id}/profile, DELETE /users/{id} (forget everything)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from pulserec.ingest.schemas import UserIn
from pulserec.serving.routes.deps import UserId, engine_of, on_engine

router = APIRouter(tags=["users"])


@router.put("/users/{user_id}", summary="Create or update a user's attributes")
def put_user(user_id: UserId, user: UserIn, request: Request) -> dict[str, Any]:
    engine_of(request).put_user(user_id, dict(user.attrs), user.created_at)  # type: ignore[arg-type]
    return {"user_id": user_id}


@router.get("/users/{user_id}/profile", summary="Interests, activity, habits, session and segments")
async def get_profile(user_id: UserId, request: Request) -> dict[str, Any]:
    # `async`: the hot path's engine call runs on the loop when it can (deps.on_engine says why).
    profile = await on_engine(request, lambda engine: engine.profile(user_id))
    if profile is None:
        raise HTTPException(404, f"unknown user {user_id!r}")
    return profile


@router.delete("/users/{user_id}", summary="Delete a user and everything derived from them")
def delete_user(user_id: UserId, request: Request) -> dict[str, Any]:
    removed = engine_of(request).delete_user(user_id)
    return {"user_id": user_id, "deleted_events": removed}
