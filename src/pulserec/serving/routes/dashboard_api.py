"""The dashboard's data beyond the live overview: history, user and item lists, one item's
activity, the effective configuration, and what the signed-in key may do.

History and lists come from the stored log (store/history.py), so they survive restarts and
cover every day the log holds; the overview's live figures cover the last minutes only."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from pulserec.serving.auth import key_role, presented_key
from pulserec.serving.config_view import effective_config
from pulserec.serving.routes.deps import ItemId, engine_of
from pulserec.store.history import ITEM_SORTS, USER_SORTS

router = APIRouter(prefix="/dashboard/api", tags=["dashboard"])
#: The longest history one request may ask for: 90 days of hours is 2,160 points.
MAX_DAYS = 90


class HistoryParams(BaseModel):
    """A time range ending at `until` (default: the newest event, since imported logs can be old)."""

    days: float = Field(7, gt=0, le=MAX_DAYS, description=f"Length of the range in days (up to {MAX_DAYS}).")
    until: float | None = Field(None, ge=0, le=1e11, description="End of the range (epoch seconds); default: the newest event.")
    bucket: Literal["hour", "day"] = Field("hour", description="One point per hour or per day.")


class PageParams(BaseModel):
    page: int = Field(1, ge=1, le=1_000_000, description="Page number, from 1.")
    per_page: int = Field(25, ge=1, le=200, description="Rows per page (1-200).")
    order: Literal["asc", "desc"] = Field("desc", description="Sort direction.")


class UserPage(PageParams):
    sort: Literal[tuple(USER_SORTS)] = Field("events", description="Column to sort by.")  # type: ignore[valid-type]


class ItemPage(PageParams):
    sort: Literal[tuple(ITEM_SORTS)] = Field("events", description="Column to sort by.")  # type: ignore[valid-type]


@router.get("/history", summary="Events by type, active users, new items, CTR and conversion per strategy, per hour or day")
def history(request: Request, params: Annotated[HistoryParams, Query()]) -> dict[str, Any]:
    store_history = engine_of(request).history
    until = params.until if params.until is not None else (store_history.newest_ts() or time.time()) + 1
    return store_history.activity(until - params.days * 86_400, until, params.bucket)


@router.get("/users", summary="One page of users who sent events, sortable")
def users(request: Request, params: Annotated[UserPage, Query()]) -> dict[str, Any]:
    offset = (params.page - 1) * params.per_page
    engine = engine_of(request)
    page = engine.history.users(params.sort, params.order == "desc", offset, params.per_page)
    # With pseudonymize_users the log holds pseudonyms: shown as they are, with no link to a profile
    # (the profile route takes the raw id and would hash the pseudonym again).
    return {**page, "pseudonymous": engine.settings.pseudonymize_users}


@router.get("/items", summary="One page of items (catalogued or seen in events), sortable")
def items(request: Request, params: Annotated[ItemPage, Query()]) -> dict[str, Any]:
    offset = (params.page - 1) * params.per_page
    return engine_of(request).history.items(params.sort, params.order == "desc", offset, params.per_page)


@router.get("/items/{item_id}/activity", summary="One item's events over time and its latest interactors",
            responses={404: {"description": "no such item, and no event names it"}})
def item_activity(item_id: ItemId, request: Request,
                  bucket: Annotated[Literal["hour", "day"], Query(description="One point per hour or per day.")] = "day",
                  recent: Annotated[int, Query(ge=1, le=100, description="How many latest interactions.")] = 20) -> dict[str, Any]:
    engine = engine_of(request)
    found = engine.history.item_activity(item_id, bucket, recent)
    if not found["series"] and engine.item(item_id) is None:
        raise HTTPException(404, f"no item {item_id!r}")
    return found


@router.get("/config", summary="The effective configuration, secrets redacted (admin)")
def config(request: Request) -> dict[str, Any]:
    return {"settings": effective_config(engine_of(request).settings)}


@router.get("/session", summary="What the presented key may do: admin, read or none (public)")
def session(request: Request) -> dict[str, Any]:
    settings = engine_of(request).settings
    return {"role": key_role(settings, presented_key(request)), "keys_required": bool(settings.api_keys)}
