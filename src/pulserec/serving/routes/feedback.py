"""Online feedback: POST /impressions, A/B experiments and CTR/conversion by strategy."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import ConfigDict, Field, field_validator

from pulserec.engine import Engine
from pulserec.experiments.assignment import UNIQUE_VARIANTS, ExperimentConfig
from pulserec.experiments.service import Served
from pulserec.ingest.schemas import IN_THE_FUTURE, Body, EpochSeconds, Id, epoch_seconds
from pulserec.serving.errors import ErrorBody, beyond_schema
from pulserec.serving.routes.deps import engine_of

router = APIRouter(tags=["feedback"])
ExperimentName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[\w.-]+$", examples=["homepage-2026-11"])]


class ImpressionIn(Body):
    """What was actually shown. `recommendation_id` comes from a recommendation response; the rest
    defaults to what that response contained. Events that carry the same `recommendation_id`
    count as clicks (any engagement) and conversions (purchases)."""

    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"examples": [{"recommendation_id": "9c1f...", "items": ["sku-1", "sku-7"]}]})
    recommendation_id: Id
    user_id: Id | None = None
    session_id: Id | None = None
    items: list[Id] | None = Field(None, min_length=1, max_length=500)
    strategy: str | None = Field(None, min_length=1, max_length=64)
    timestamp: EpochSeconds | None = None

    _timestamp = field_validator("timestamp")(classmethod(lambda cls, v: epoch_seconds(v)))


#: An impression without strategy and items must name a recommendation this server made.
UNKNOWN_RECOMMENDATION = "unknown recommendation_id"


@router.post("/impressions", summary="Record that a recommendation list was shown",
             openapi_extra=beyond_schema(UNKNOWN_RECOMMENDATION, IN_THE_FUTURE))
def post_impression(impression: ImpressionIn, request: Request) -> dict[str, Any]:
    recorded = record_impression(engine_of(request), impression)
    return {"recommendation_id": impression.recommendation_id, "recorded": recorded}


def record_impression(engine: Engine, impression: ImpressionIn, where: str = "recommendation_id") -> bool:
    """Store `impression`, its gaps filled from the recommendation it names (also for the SDK's
    batches, where `where` names the impression in an error)."""
    served = engine.experiments.served(impression.recommendation_id)
    if served is None and (impression.strategy is None or impression.items is None):
        raise HTTPException(422, f"{where}: {UNKNOWN_RECOMMENDATION}: give strategy and items explicitly")
    ts = impression.timestamp if impression.timestamp is not None else time.time()
    user = engine.user_key(impression.user_id) if impression.user_id else (served.user_id if served else None)
    return engine.feedback.add_impression(
        impression.recommendation_id,
        user,
        engine.session_key(impression.session_id) if impression.session_id else (served.session_id if served else None),
        impression.strategy or served.strategy,  # type: ignore[union-attr]
        served.experiment if served else None,
        served.variant if served else None,
        list(impression.items or served.items),  # type: ignore[union-attr]
        ts,
        _slots_shown(served, impression.items),
    )


def _slots_shown(served: Served | None, items: list[str] | None) -> list[tuple[str, str, str]]:
    """The promoted (or explored) slots of what was shown: all of the served ones, or those of
    the items the impression names."""
    if served is None:
        return []
    shown = set(items) if items is not None else None
    return [slot for slot in served.slots if shown is None or slot[0] in shown]


@router.get("/feedback", summary="Online CTR and conversion rate by strategy")
def feedback(request: Request) -> dict[str, Any]:
    feedback = engine_of(request).feedback
    promotions = [{"name": name, **counts} for name, counts in feedback.slot_outcomes("promotion").items()]
    exploration = [{"strategy": name, **counts} for name, counts in feedback.slot_outcomes("exploration").items()]
    return {"strategies": feedback.outcomes("strategy"), "promotions": promotions, "exploration": exploration}


@router.get("/experiments", summary="All experiments")
def list_experiments(request: Request) -> dict[str, Any]:
    experiments = engine_of(request).experiments
    return {"experiments": [{"name": n, **experiments.get(n).model_dump()} for n in experiments.names()]}  # type: ignore[union-attr]


@router.put("/experiments/{name}", summary="Create or change an A/B experiment",
            responses={409: {"model": ErrorBody, "description": "Another experiment is already the default one"}},
            openapi_extra=beyond_schema(UNIQUE_VARIANTS))
def put_experiment(name: ExperimentName, config: ExperimentConfig, request: Request) -> dict[str, Any]:
    engine = engine_of(request)
    served = engine.served_models()
    unknown = [v.strategy for v in config.variants if v.strategy not in served]
    if unknown:
        raise HTTPException(422, f"unknown strategies {', '.join(unknown)}; available: {', '.join(sorted(served))}")
    try:
        engine.experiments.put(name, config)
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"experiment": name, **config.model_dump()}


@router.get("/experiments/{name}", summary="CTR, conversion, sample sizes and z-tests per variant")
def get_experiment(name: ExperimentName, request: Request) -> dict[str, Any]:
    try:
        return engine_of(request).experiments.report(name)
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0])) from None


@router.delete("/experiments/{name}", summary="Delete an experiment (its impressions stay)")
def delete_experiment(name: ExperimentName, request: Request) -> dict[str, Any]:
    if not engine_of(request).experiments.delete(name):
        raise HTTPException(404, f"unknown experiment {name!r}")
    return {"experiment": name, "deleted": True}
