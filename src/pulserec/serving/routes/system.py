"""GET /health, GET /health/ready, GET /stats, GET /models (trainings and rebuilds are jobs: routes/jobs.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from pulserec import __version__
from pulserec.models.registry import TRAINABLE
from pulserec.serving.auth import require_read, require_write
from pulserec.runtime.insights import default_choice, model_list
from pulserec.serving.routes.deps import engine_of

router = APIRouter(tags=["system"])


# `async`: liveness answers without touching the engine (no lock, no I/O), so even a busy
# thread pool cannot delay it; the other routes call the engine and are plain `def`.
@router.get("/health", summary="Liveness")
async def health() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get("/health/ready", summary="Readiness: 200 when every dependency can serve, else 503 'degraded'",
            responses={503: {"description": "degraded: `checks` names what cannot serve and why"}})
def ready(request: Request) -> JSONResponse:
    """For load balancers: `degraded` (503) while the shared state is unreachable or being rebuilt
    from the log. `GET /health` stays the liveness check (200 while the process runs)."""
    answer = engine_of(request).health.readiness()
    return JSONResponse(answer, status_code=200 if answer["status"] == "ok" else 503)


@router.get("/stats", summary="Counts of events, items, users and online state size (admin)",
            dependencies=[Depends(require_write)])
def stats(request: Request) -> dict[str, Any]:
    return engine_of(request).stats()


@router.get("/models", summary="Strategies that can serve (?strategy=), with versions, training time and data watermark",
            dependencies=[Depends(require_read)])
def models(request: Request) -> dict[str, Any]:
    engine = engine_of(request)
    return {"default": "default", "default_choice": default_choice(engine), "models": model_list(engine),
            "trainable": sorted(TRAINABLE)}
