"""Catalogue: PUT /items/{id}, POST /items (batch), GET /items/{id}, GET /items/{id}/similar."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import Field

from pulserec.engine import Engine
from pulserec.ingest.schemas import Body, Id, ItemIn
from pulserec.recommend.service import Recommended
from pulserec.records import ItemRecord
from pulserec.serving.errors import beyond_schema
from pulserec.serving.routes.deps import RANKING_RULES, ItemId, RankingParams, engine_of, on_engine

router = APIRouter(tags=["items"])


class ItemWithId(ItemIn):
    item_id: Id


class ItemBatch(Body):
    items: list[ItemWithId] = Field(max_length=10_000)


def to_record(item_id: str, item: ItemIn) -> ItemRecord:
    return ItemRecord(
        item_id=item_id,
        title=item.title,
        description=item.description,
        category=item.category,
        tags=tuple(dict.fromkeys(item.tags)),
        price=item.price,
        active=item.active,
        created_ts=item.created_at,  # type: ignore[arg-type]
        attrs=dict(item.attrs or {}),
    )


@router.put("/items/{item_id}", summary="Create or replace a catalogue item")
def put_item(item_id: ItemId, item: ItemIn, request: Request) -> dict[str, Any]:
    engine = engine_of(request)
    existed = engine.item(item_id) is not None
    engine.put_items([to_record(item_id, item)])
    return {"item_id": item_id, "created": not existed}


@router.post("/items", summary="Create or replace many catalogue items")
def post_items(batch: ItemBatch, request: Request) -> dict[str, Any]:
    engine_of(request).put_items([to_record(i.item_id, i) for i in batch.items])
    return {"upserted": len(batch.items)}


@router.get("/items/{item_id}", summary="One item's metadata and popularity")
def get_item(item_id: ItemId, request: Request) -> dict[str, Any]:
    item = engine_of(request).item(item_id)
    if item is None:
        raise HTTPException(404, f"unknown item {item_id!r}")
    return item


@router.get("/items/{item_id}/similar", summary="Items similar to this one, with reasons",
            openapi_extra=beyond_schema(*RANKING_RULES))
async def similar_items(item_id: ItemId, request: Request, params: Annotated[RankingParams, Query()]) -> dict[str, Any]:
    # `async`: the hot path's engine call runs on the loop when it can (deps.on_engine says why).
    def similar(engine: Engine) -> list[Recommended] | None:
        return engine.similar(item_id, params.n, params.rules(engine.controls, exclude_seen=False), params.strategy)

    try:
        items = await on_engine(request, similar)
    except KeyError as exc:
        raise HTTPException(422, str(exc.args[0])) from None
    if items is None:
        raise HTTPException(404, f"unknown item {item_id!r}")
    return {"item_id": item_id, "items": [r.to_dict() for r in items]}
