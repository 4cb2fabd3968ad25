"""Merchandising controls: named filters (PUT/GET/DELETE /filters/{name})."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import ConfigDict, Field

from pulserec.ingest.schemas import Body
from pulserec.recommend.expression import MAX_LENGTH
from pulserec.serving.examples import json_example
from pulserec.serving.routes.deps import EXAMPLE_FILTER, FILTER_NAME, engine_of

router = APIRouter(tags=["controls"])
ControlName = Annotated[str, Path(min_length=1, max_length=64, pattern=FILTER_NAME, examples=["cheap-shoes"])]
_FILTER = {"name": "cheap-shoes", "expression": EXAMPLE_FILTER, "updated_at": 1732521600.0}


class FilterIn(Body):
    """A filter expression (docs/filters.md), checked when stored: a 422 names the position."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{"expression": EXAMPLE_FILTER}]})
    expression: str = Field(min_length=1, max_length=MAX_LENGTH)


@router.put("/filters/{name}", summary="Create or replace a named filter (use it with ?filter=NAME)",
            responses=json_example({**_FILTER, "created": True}))
def put_filter(name: ControlName, body: FilterIn, request: Request) -> dict[str, Any]:
    return engine_of(request).controls.put_filter(name, body.expression)


@router.get("/filters", summary="All named filters", responses=json_example({"filters": [_FILTER]}))
def list_filters(request: Request) -> dict[str, Any]:
    return {"filters": engine_of(request).controls.filters()}


@router.get("/filters/{name}", summary="One named filter", responses=json_example(_FILTER))
def get_filter(name: ControlName, request: Request) -> dict[str, Any]:
    found = engine_of(request).controls.filter(name)
    if found is None:
        raise HTTPException(404, f"unknown filter {name!r}")
    return found


@router.delete("/filters/{name}", summary="Delete a named filter",
               responses=json_example({"name": "cheap-shoes", "deleted": True}))
def delete_filter(name: ControlName, request: Request) -> dict[str, Any]:
    if not engine_of(request).controls.delete_filter(name):
        raise HTTPException(404, f"unknown filter {name!r}")
    return {"name": name, "deleted": True}
