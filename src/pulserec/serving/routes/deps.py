"""Shared request plumbing: the engine (of the request's app), id path parameters, filters from
the query string."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

from fastapi import HTTPException, Path, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from pulserec.engine import Engine
from pulserec.runtime.apps import NAME_PATTERN, AppError, Apps, OpenApp
from pulserec.experiments.service import UNKNOWN_EXPERIMENT
from pulserec.ingest.schemas import Id
from pulserec.recommend.controls import Controls
from pulserec.recommend.expression import INVALID as INVALID_EXPRESSION, MAX_LENGTH
from pulserec.recommend.service import Filters
from pulserec.validation import N_CAP, InvalidInput

T = TypeVar("T")
#: A hot-path request polls a lock held by another thread each millisecond (the loop's timer
#: resolution) for up to ~20 ms, a lock hold longer than any request's (a snapshot's fork, an
#: import chunk's apply are longer), then waits in a thread.
LOCK_POLL_S = 0.001
LOCK_POLLS = 20

#: Names of filters and promotions: what fits in a URL path segment and a query string unescaped.
FILTER_NAME = r"^[\w.-]+$"
EXAMPLE_FILTER = 'category in ("shoes", "bags") and price < 100 and not seen'
#: The filters' cross-field rule (documented as beyond the schema: serving/errors.py).
PRICE_RANGE = "min_price must not exceed max_price"
#: A named filter must exist; an inline expression must parse and type-check (docs/filters.md):
#: rules of the state and of a grammar, which the document lists beyond the schema.
UNKNOWN_FILTER = "unknown filter"
BAD_EXPRESSION = INVALID_EXPRESSION
RANKING_RULES = (PRICE_RANGE, UNKNOWN_FILTER, BAD_EXPRESSION)

#: Id path parameters: the one id type (ingest/schemas.py:Id), with an example each.
UserId = Annotated[Id, Path(examples=["u42"])]
ItemId = Annotated[Id, Path(examples=["sku-123"])]
SessionId = Annotated[Id, Path(examples=["s-9f2c"])]


#: Every router is mounted twice: as is (the `default` app) and under this prefix (serving/app.py).
APP_PREFIX = "/apps/{app}"
#: Scope key of the :class:`OpenApp` a request under `/apps/{app}` is leased (see :func:`app_scope`).
APP_KEY = "pulserec.app"

AppName = Annotated[str, Path(min_length=1, max_length=63, pattern=NAME_PATTERN, examples=["shop"],
                              description="The app (tenant): `default` is the unprefixed API.")]


def engine_of(request: Request) -> Engine:
    """The engine of the request's app: THE way a route reaches an engine (unprefixed routes: the
    default app, without any lookup; under `/apps/{app}`: the one :func:`app_scope` leased)."""
    opened: OpenApp | None = request.scope.get(APP_KEY)
    return opened.engine if opened is not None else request.app.state.engine


async def on_engine(request: Request, call: Callable[[Engine], T], writes: bool = False) -> T:
    """`call(engine)` for an `async` route of the hot path: on the event loop when the engine
    allows it (`Engine.runs_here`: no I/O that can stall), else in the thread pool like a
    plain-`def` route. Inline saves the thread hop, which cost more CPU per request than the
    request's own work under concurrent load (docs/benchmarks.md, issue 11).

    While another thread holds the engine's lock (a background task, a plain-`def` route) the
    request waits without blocking the loop, polling each `LOCK_POLL_S`, and after
    `LOCK_POLLS` polls waits in a thread instead. Handing busy calls straight to threads fed
    itself: a thread holding the lock waits for the GIL the loop holds, so the next calls found
    the lock busy too, and the server stayed in the slow regime (load.py: 223 instead of 330 req/s)."""
    engine = engine_of(request)
    if engine.runs_here(writes):
        for _ in range(LOCK_POLLS):
            with engine.turn_now() as now:
                if now:
                    return call(engine)
            await asyncio.sleep(LOCK_POLL_S)
    return await run_in_threadpool(call, engine)


def extras_of(request: Request) -> Any:
    """What the server attached to the request's app (its metrics); None for the default app."""
    opened: OpenApp | None = request.scope.get(APP_KEY)
    return opened.extras if opened is not None else None


async def app_scope(request: Request, app: AppName) -> AsyncIterator[None]:
    """Router dependency of the `/apps/{app}` mount: lease the app's engine for this request
    (opened on first use; 404 for an app never created, 503 when too many are busy).

    `async`: leasing an open app (every request after its first) is a dict lookup under a lock
    held for dict operations only, done on the loop; as a plain `def` it was a hop to the thread
    pool on every app request, the hop that cost the hot routes ~2 ms of CPU each under load
    (docs/benchmarks.md, issue 11). Opening an app reads its log, and closing one whose settings
    changed waits for its engine: those two run in the thread pool."""
    apps: Apps = request.app.state.apps
    try:
        opened = apps.acquire_open(app)
        if opened is None:
            opened = await run_in_threadpool(apps.acquire, app)
    except AppError as exc:
        raise HTTPException(exc.status, exc.message) from None
    request.scope[APP_KEY] = opened
    try:
        yield
    finally:
        if apps.let_go(opened):
            await run_in_threadpool(apps.close_released, opened)


def app_path(request: Request, path: str) -> str:
    """`path` (absolute, as the default app has it) as this request's app serves it."""
    opened: OpenApp | None = request.scope.get(APP_KEY)
    return path if opened is None or opened.name == "default" else f"/apps/{opened.name}{path}"


#: Why a repeated query parameter is refused (every parameter of the document is one value).
REPEATED = "given {n} times; a query parameter takes one value"


async def single_valued_query(request: Request) -> None:
    """Router dependency of every route: a query parameter given twice is a 422 naming it.
    FastAPI would keep the last of `?device=a&device=b` for a scalar, so a client's mistake (or a
    proxy appending a parameter) went unnoticed; no parameter of this API is a list
    (tests/reliability/test_bad_input.py checks the document). `async`: nothing blocks, and a
    plain `def` would cost every request a thread-pool hop. Counting keys is O(1) when none repeats."""
    params = request.query_params
    if len(params) != len(params.multi_items()):  # distinct keys vs (key, value) pairs
        name = next(key for key in params if len(params.getlist(key)) > 1)
        raise InvalidInput(name, REPEATED.format(n=len(params.getlist(name))))


# Query strings are parsed as one pydantic model per route (`Annotated[Model, Query()]`): FastAPI
# validates it in one call, where separate parameters and dependencies cost ~4% of a request.


class FilterParams(BaseModel):
    """A named filter and an inline filter expression: part of every query string that ranks items."""

    filter: str | None = Field(None, min_length=1, max_length=64, pattern=FILTER_NAME, examples=["cheap-shoes"],
                               description="A named filter (PUT /filters/{name}) every item must pass.")
    filter_expression: str | None = Field(None, min_length=1, max_length=MAX_LENGTH, examples=[EXAMPLE_FILTER],
                                          description="An inline filter expression every item must pass "
                                                      "(with `filter`, both must hold); see docs/filters.md.")

    def expressions(self, controls: Controls | None) -> tuple[tuple[str, str], ...]:
        """(field, text) of the filters asked for; a 422 naming `filter` for an unknown name."""
        out: list[tuple[str, str]] = []
        if self.filter is not None:
            text = controls.filter_text(self.filter) if controls is not None else None
            if text is None:
                raise InvalidInput("filter", f"{UNKNOWN_FILTER} {self.filter!r} (see GET /filters)")
            out.append(("filter", text))
        if self.filter_expression is not None:
            out.append(("filter_expression", self.filter_expression))
        return tuple(out)


class RankingParams(FilterParams):
    """How many, which model and which business rules: the query string of every route that ranks items."""

    n: int = Field(10, ge=1, le=N_CAP, description="How many results (1 to the setting max_n, default 500).")
    strategy: str | None = Field(None, max_length=64, description="Model to use (see GET /models); default: blend.")
    category: str | None = Field(None, max_length=128, description="Only items of this category.")
    exclude_seen: bool = Field(True, description="Leave out items the user already interacted with.")
    exclude: str | None = Field(None, max_length=8192, description="Comma-separated item ids to leave out.")
    min_price: float | None = Field(None, ge=0, le=1e9, description="Only items at this price or above.")
    max_price: float | None = Field(None, ge=0, le=1e9, description="Only items at this price or below.")
    max_per_category: int | None = Field(None, ge=1, le=N_CAP, examples=[2], description="At most this many items of one category.")
    diversity: float = Field(0.0, ge=0.0, le=1.0, examples=[0.25], description="0: by score; towards 1: MMR re-ranking keeps similar "
                                                             "items apart (trades relevance for variety).")

    promotions: bool = Field(True, examples=[False], description="false: no promotions in this slate (PUT /promotions/{name}).")
    exploration: float | None = Field(None, ge=0.0, le=1.0, examples=[0.1], description="Share of the slate for items with little "
                                      "exposure (Thompson sampling); default: the setting exploration_defaults.")

    def rules(self, controls: Controls | None = None, **overrides: object) -> Filters:
        """The business rules of this query string; `controls`: the app's named filters and
        promotions (the running ones apply unless `promotions=false`)."""
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise HTTPException(422, PRICE_RANGE)
        excluded = frozenset(x.strip() for x in self.exclude.split(",") if x.strip()) if self.exclude else frozenset()
        fields = {"category": self.category, "exclude_seen": self.exclude_seen, "exclude": excluded,
                  "min_price": self.min_price, "max_price": self.max_price, "expressions": self.expressions(controls),
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
