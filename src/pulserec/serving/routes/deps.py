"""Shared request plumbing: the engine, id path parameters, filters from the query string."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Path, Request
from pydantic import AfterValidator, BaseModel, Field

from pulserec.engine import Engine
from pulserec.ingest.schemas import MAX_ID
from pulserec.recommend.controls import Controls
from pulserec.recommend.expression import MAX_LENGTH
from pulserec.recommend.service import Filters
from pulserec.validation import N_CAP, InvalidInput, within_id_limit

ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
#: Names of filters and promotions: what fits in a URL path segment and a query string unescaped.
FILTER_NAME = r"^[\w.-]+$"
EXAMPLE_FILTER = 'category in ("shoes", "bags") and price < 100 and not seen'

UserId = Annotated[str, Path(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN, examples=["u42"]), AfterValidator(within_id_limit)]
ItemId = Annotated[str, Path(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN, examples=["sku-123"]),
                   AfterValidator(within_id_limit)]
SessionId = Annotated[str, Path(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN, examples=["s-9f2c"]),
                      AfterValidator(within_id_limit)]


def engine_of(request: Request) -> Engine:
    return request.app.state.engine




# Query strings are parsed as one pydantic model per route (`Annotated[Model, Query()]`): FastAPI
# validates it in one call, where separate parameters and dependencies cost ~4% of a request.


class RankingParams(BaseModel):
    """How many, which model and which business rules: the query string of every route that ranks items."""

    n: int = Field(10, ge=1, le=N_CAP, description="How many results (1 to the setting max_n, default 500).")
    strategy: str | None = Field(None, max_length=64, description="Model to use (see GET /models); default: blend.")
    category: str | None = Field(None, max_length=128, description="Only items of this category.")
    exclude_seen: bool = Field(True, description="Leave out items the user already interacted with.")
    exclude: str | None = Field(None, max_length=8192, description="Comma-separated item ids to leave out.")
    min_price: float | None = Field(None, ge=0, le=1e9, description="Only items at this price or above.")
    max_price: float | None = Field(None, ge=0, le=1e9, description="Only items at this price or below.")
    filter: str | None = Field(None, min_length=1, max_length=64, pattern=FILTER_NAME,
                               description="A named filter (PUT /filters/{name}) every item must pass.")
    filter_expression: str | None = Field(None, min_length=1, max_length=MAX_LENGTH, examples=[EXAMPLE_FILTER],
                                          description="An inline filter expression every item must pass "
                                                      "(with `filter`, both must hold); see docs/filters.md.")

    max_per_category: int | None = Field(None, ge=1, le=N_CAP, description="At most this many items of one category.")
    diversity: float = Field(0.0, ge=0.0, le=1.0, description="0: by score; towards 1: MMR re-ranking keeps similar "
                                                             "items apart (trades relevance for variety).")

    promotions: bool = Field(True, description="false: no promotions in this slate (PUT /promotions/{name}).")
    exploration: float | None = Field(None, ge=0.0, le=1.0, description="Share of the slate for items with little "
                                      "exposure (Thompson sampling); default: the setting exploration_defaults.")

    def rules(self, controls: Controls | None = None, **overrides: object) -> Filters:
        """The business rules of this query string; `controls`: the app's named filters and
        promotions (the running ones apply unless `promotions=false`)."""
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise HTTPException(422, "min_price must not exceed max_price")
        excluded = frozenset(x.strip() for x in self.exclude.split(",") if x.strip()) if self.exclude else frozenset()
        expressions: list[tuple[str, str]] = []
        if self.filter is not None:
            text = controls.filter_text(self.filter) if controls is not None else None
            if text is None:
                raise InvalidInput("filter", f"unknown filter {self.filter!r} (see GET /filters)")
            expressions.append(("filter", text))
        if self.filter_expression is not None:
            expressions.append(("filter_expression", self.filter_expression))
        fields = {"category": self.category, "exclude_seen": self.exclude_seen, "exclude": excluded,
                  "min_price": self.min_price, "max_price": self.max_price, "expressions": tuple(expressions),
                  "max_per_category": self.max_per_category, "diversity": self.diversity,
                  "promotions": controls.running_promotions() if controls is not None and self.promotions else (),
                  "exploration": self.exploration}
        return Filters(**{**fields, **overrides})  # type: ignore[arg-type]


class RecommendationParams(RankingParams):
    """A recommendation request's query string: filters, A/B experiment and request context."""

    experiment: str | None = Field(None, max_length=64, description="A/B experiment to assign this request to.")
    device: str | None = Field(None, max_length=64, description="Request context: device.")
    location: str | None = Field(None, max_length=128, description="Request context: location.")

    def context(self) -> dict[str, str]:
        return {k: v for k, v in (("device", self.device), ("location", self.location)) if v}
