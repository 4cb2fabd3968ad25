"""Shared request plumbing: the engine, id path parameters, filters from the query string."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Path, Query, Request

from pulserec.engine import Engine
from pulserec.ingest.schemas import MAX_ID
from pulserec.serving.service import Filters

ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"

UserId = Annotated[str, Path(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN, examples=["u42"])]
ItemId = Annotated[str, Path(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN, examples=["sku-123"])]
SessionId = Annotated[str, Path(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN, examples=["s-9f2c"])]
Count = Annotated[int, Query(ge=1, le=500, description="How many results (1-500).")]


# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread
# pool, a hand-off that costs more than the work they do.


def engine_of(request: Request) -> Engine:
    return request.app.state.engine


async def filters(
    category: Annotated[str | None, Query(max_length=128, description="Only items of this category.")] = None,
    exclude_seen: Annotated[bool, Query(description="Leave out items the user already interacted with.")] = True,
    exclude: Annotated[str | None, Query(max_length=8192, description="Comma-separated item ids to leave out.")] = None,
    min_price: Annotated[float | None, Query(ge=0, le=1e9)] = None,
    max_price: Annotated[float | None, Query(ge=0, le=1e9)] = None,
) -> Filters:
    if min_price is not None and max_price is not None and min_price > max_price:
        raise HTTPException(422, "min_price must not exceed max_price")
    excluded = frozenset(x.strip() for x in exclude.split(",") if x.strip()) if exclude else frozenset()
    return Filters(category=category, exclude_seen=exclude_seen, exclude=excluded, min_price=min_price, max_price=max_price)


async def context_params(
    device: Annotated[str | None, Query(max_length=64, description="Request context: device.")] = None,
    location: Annotated[str | None, Query(max_length=128, description="Request context: location.")] = None,
) -> dict[str, str]:
    return {k: v for k, v in (("device", device), ("location", location)) if v}
