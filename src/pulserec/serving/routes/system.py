"""GET /health, GET /stats, GET /models, and the admin actions that retrain or rebuild."""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse

from pulserec import __version__
from pulserec.models.registry import MODELS
from pulserec.serving.auth import require_read, require_write
from pulserec.serving.insights import model_list
from pulserec.serving.routes.deps import engine_of

router = APIRouter(tags=["system"])
ModelName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[\w.-]+$", examples=["als"])]


@router.get("/health", summary="Liveness")
async def health() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get("/health/ready", summary="Readiness: 200 when every dependency can serve, else 503 'degraded'",
            responses={503: {"description": "degraded: `checks` names what cannot serve and why"}})
def ready(request: Request) -> JSONResponse:
    """For load balancers: `degraded` (503) while the shared state is unreachable or being rebuilt
    from the log. `GET /health` stays the liveness check (200 while the process runs)."""
    answer = engine_of(request).readiness()
    return JSONResponse(answer, status_code=200 if answer["status"] == "ok" else 503)


@router.get("/stats", summary="Counts of events, items, users and online state size (admin)",
            dependencies=[Depends(require_write)])
async def stats(request: Request) -> dict[str, Any]:
    return engine_of(request).stats()


@router.get("/models", summary="Strategies that can serve (?strategy=), with versions, training time and data watermark",
            dependencies=[Depends(require_read)])
async def models(request: Request) -> dict[str, Any]:
    return {"default": "default", "models": model_list(engine_of(request)), "trainable": sorted(MODELS)}


def _in_background(target: Any, *args: Any) -> None:
    threading.Thread(target=target, args=args, name="pulserec-admin", daemon=True).start()


@router.post("/models/{name}/train", status_code=202, summary="Retrain a batch model in the background; it swaps in when done",
             responses={404: {"description": "unknown model"}}, dependencies=[Depends(require_write)])
async def train_model(name: ModelName, request: Request) -> dict[str, Any]:
    if name not in MODELS:
        raise HTTPException(404, f"unknown model {name!r}; trainable: {', '.join(sorted(MODELS))}")
    engine = engine_of(request)
    _in_background(engine.train, [name])
    return {"model": name, "status": "training"}


@router.post("/admin/rebuild", status_code=202, summary="Rebuild the online state from the log in the background",
             dependencies=[Depends(require_write)])
async def rebuild(request: Request) -> dict[str, Any]:
    _in_background(engine_of(request).rebuild_state)
    return {"status": "rebuilding"}
