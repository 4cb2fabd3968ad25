"""Merchandising controls: named filters (PUT/GET/DELETE /filters/{name}) and promotions
(PUT/GET/DELETE /promotions/{name}, with the impressions, clicks and CTR of their slots).

Both kinds have the same four routes, made by `_routes` (annotations are evaluated here, not
postponed, so that FastAPI sees each kind's body model in the closures)."""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import ConfigDict, Field, model_validator

from pulserec.ingest.schemas import Body
from pulserec.recommend.expression import MAX_LENGTH
from pulserec.serving.errors import beyond_schema
from pulserec.serving.examples import json_example
from pulserec.serving.routes.deps import BAD_EXPRESSION, EXAMPLE_FILTER, FILTER_NAME, engine_of

router = APIRouter(tags=["controls"])
LATEST = 4_102_444_800.0  # 2100-01-01
ControlName = Annotated[str, Path(min_length=1, max_length=64, pattern=FILTER_NAME, examples=["summer-sale"])]


class FilterIn(Body):
    """A filter expression (docs/filters.md), checked when stored: a 422 names the position."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{"expression": EXAMPLE_FILTER}]})
    expression: str = Field(min_length=1, max_length=MAX_LENGTH)


ONE_EFFECT = "give exactly one of share and boost"
#: Compares two fields, which JSON Schema cannot: listed beyond the schema of PUT /promotions/{name}.
ENDS_AFTER_STARTS = "ends must be after starts"
#: ONE_EFFECT as JSON Schema: one of the two is a number, the other absent or null.
_ONE_EFFECT_SCHEMA = [{"required": [given], "properties": {given: {"type": "number"}, other: {"type": "null"}}}
                      for given, other in (("share", "boost"), ("boost", "share"))]


class PromotionIn(Body):
    """Items selected by `filter` take `share` of each slate (placed by the personal score among
    them), or have their score multiplied by `boost`; between `starts` and `ends` (Unix
    seconds, either optional)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"filter": 'tags contains "summer" and price < 100', "share": 0.2, "starts": 1732521600, "ends": 1733126400},
        {"filter": 'attrs.brand == "acme"', "boost": 1.5}], "anyOf": _ONE_EFFECT_SCHEMA})
    filter: str = Field(min_length=1, max_length=MAX_LENGTH)
    share: float | None = Field(None, gt=0, le=1, description="Share of each slate (0-1].")
    boost: float | None = Field(None, gt=0, le=1000, description="Score multiplier of the selected items.")
    # Campaigns are planned ahead: any time up to 2100 (unlike event timestamps, bounded to now + 1 day).
    starts: float | None = Field(None, gt=0, le=LATEST, description="Unix seconds; default: already started.")
    ends: float | None = Field(None, gt=0, le=LATEST, description="Unix seconds; default: never ends.")

    @model_validator(mode="after")
    def _one_effect(self) -> "PromotionIn":
        if (self.share is None) == (self.boost is None):
            raise ValueError(ONE_EFFECT)
        if self.starts is not None and self.ends is not None and self.ends <= self.starts:
            raise ValueError(ENDS_AFTER_STARTS)
        return self


_FILTER = {"name": "cheap-shoes", "expression": EXAMPLE_FILTER, "updated_at": 1732521600.0}
_PROMOTION = {"name": "summer-sale", "filter": 'tags contains "summer" and price < 100', "share": 0.2, "boost": None,
              "starts": 1732521600.0, "ends": 1733126400.0, "updated_at": 1732521600.0, "running": True,
              "impressions": 5200, "clicks": 310, "ctr": 0.0596}


def _with_outcomes(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """A promotion with whether it runs now and the impressions, clicks and CTR of its slots."""
    engine = engine_of(request)
    counts = engine.feedback.slot_outcomes("promotion").get(body["name"], {"impressions": 0, "clicks": 0, "ctr": 0.0})
    running = any(p.name == body["name"] for p in engine.controls.running_promotions())
    return {**body, "running": running, **counts}


def _routes(kind: str, path: str, plural: str, model: type[Body], example: dict[str, Any], rules: tuple[str, ...],
            shape=lambda r, b: b) -> None:
    """PUT/GET/DELETE {path}/{name} and GET {path} for one kind of control; `rules`: those of
    its body beyond the schema."""

    @router.put(f"{path}/{{name}}", summary=f"Create or replace a {kind}", responses=json_example({**example, "created": True}),
                name=f"put_{kind}", openapi_extra=beyond_schema(*rules))
    def put(name: ControlName, body: model, request: Request) -> dict[str, Any]:  # type: ignore[valid-type]
        return engine_of(request).controls.put(kind, name, body.model_dump())  # type: ignore[attr-defined]

    @router.get(path, summary=f"All {plural}", responses=json_example({plural: [example]}), name=f"list_{plural}")
    def list_all(request: Request) -> dict[str, Any]:
        return {plural: [shape(request, b) for b in engine_of(request).controls.all(kind)]}

    @router.get(f"{path}/{{name}}", summary=f"One {kind}", responses=json_example(example), name=f"get_{kind}")
    def get(name: ControlName, request: Request) -> dict[str, Any]:
        found = engine_of(request).controls.get(kind, name)
        if found is None:
            raise HTTPException(404, f"unknown {kind} {name!r}")
        return shape(request, found)

    @router.delete(f"{path}/{{name}}", summary=f"Delete a {kind}", responses=json_example({"name": example["name"], "deleted": True}),
                   name=f"delete_{kind}")
    def delete(name: ControlName, request: Request) -> dict[str, Any]:
        if not engine_of(request).controls.delete(kind, name):
            raise HTTPException(404, f"unknown {kind} {name!r}")
        return {"name": name, "deleted": True}


_routes("filter", "/filters", "filters", FilterIn, _FILTER, (BAD_EXPRESSION,))
_routes("promotion", "/promotions", "promotions", PromotionIn, _PROMOTION, (BAD_EXPRESSION, ENDS_AFTER_STARTS), shape=_with_outcomes)
