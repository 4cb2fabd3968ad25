"""Social ties (issue 14.4): PUT/DELETE /users/{id}/follows/{other_id}, GET /users/{id}/follows
and /followers, POST /follows (bulk import). Ties feed the `social` strategy and the default
blend; DELETE /users/{id} removes a user's ties both ways. Reads are personal data (who follows
whom), writes need a write key (serving/auth.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from pulserec.ingest.schemas import Id
from pulserec.serving.errors import beyond_schema
from pulserec.serving.examples import json_example
from pulserec.serving.routes.deps import UserId, engine_of
from pulserec.store.social import MAX_TIES, MAX_WEIGHT, SELF_FOLLOW
from pulserec.validation import Body, InvalidInput

router = APIRouter(tags=["social"])
#: Edges one bulk import may carry (one transaction).
MAX_EDGES = 100_000

Weight = Annotated[float, Field(gt=0, le=MAX_WEIGHT, description=f"Tie strength (0 < w <= {MAX_WEIGHT:g}; default 1).")]


class FollowIn(Body):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{"weight": 2.0}]})
    weight: Weight = 1.0


class EdgeIn(Body):
    model_config = ConfigDict(extra="forbid", strict=True)
    follower: Id
    followee: Id
    weight: Weight = 1.0


class EdgesIn(Body):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"edges": [{"follower": "u42", "followee": "u7"}, {"follower": "u42", "followee": "u9", "weight": 3}]}]})
    edges: list[EdgeIn] = Field(min_length=1, max_length=MAX_EDGES)


class TiePage(BaseModel):
    limit: int = Field(100, ge=1, le=MAX_TIES, description=f"At most this many (1-{MAX_TIES}).")
    offset: int = Field(0, ge=0, le=10_000_000, description="Skip this many (strongest, then newest first).")


TIES_EXAMPLE = {"user_id": "u42", "follows": [{"user_id": "u7", "weight": 1.0, "since": 1732521600.0}]}


@router.put("/users/{user_id}/follows/{other_id}", summary="Follow a user (or change the tie's strength)",
            openapi_extra=beyond_schema(SELF_FOLLOW),
            responses=json_example({"user_id": "u42", "follows": "u7", "weight": 1.0, "created": True}))
def follow(user_id: UserId, other_id: UserId, request: Request, body: FollowIn | None = None) -> dict[str, Any]:
    weight = body.weight if body is not None else 1.0
    created = engine_of(request).follow(user_id, other_id, weight)
    return {"user_id": user_id, "follows": other_id, "weight": weight, "created": created}


@router.delete("/users/{user_id}/follows/{other_id}", summary="Stop following a user",
               responses=json_example({"user_id": "u42", "follows": "u7", "removed": True}))
def unfollow(user_id: UserId, other_id: UserId, request: Request) -> dict[str, Any]:
    return {"user_id": user_id, "follows": other_id, "removed": engine_of(request).unfollow(user_id, other_id)}


@router.get("/users/{user_id}/follows", summary="Whom this user follows", responses=json_example(TIES_EXAMPLE))
def follows(user_id: UserId, request: Request, page: Annotated[TiePage, Query()]) -> dict[str, Any]:
    return {"user_id": user_id, "follows": engine_of(request).ties(user_id, "follows", page.limit, page.offset)}


@router.get("/users/{user_id}/followers", summary="Who follows this user",
            responses=json_example({"user_id": "u7", "followers": TIES_EXAMPLE["follows"]}))
def followers(user_id: UserId, request: Request, page: Annotated[TiePage, Query()]) -> dict[str, Any]:
    return {"user_id": user_id, "followers": engine_of(request).ties(user_id, "followers", page.limit, page.offset)}


@router.post("/follows", summary="Import follow edges in bulk (one transaction; existing ties re-weighted)",
             openapi_extra=beyond_schema(SELF_FOLLOW),
             responses=json_example({"edges": 2, "created": 2}))
def import_follows(body: EdgesIn, request: Request) -> dict[str, Any]:
    for i, edge in enumerate(body.edges):
        if edge.follower == edge.followee:
            raise InvalidInput(f"edges[{i}].followee", SELF_FOLLOW)
    created = engine_of(request).follow_many((e.follower, e.followee, e.weight) for e in body.edges)
    return {"edges": len(body.edges), "created": created}
