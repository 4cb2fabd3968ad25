"""GET /health, GET /stats, GET /models."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from pulserec import __version__
from pulserec.serving.auth import require_read, require_write
from pulserec.serving.routes.deps import engine_of

router = APIRouter(tags=["system"])


@router.get("/health", summary="Liveness")
async def health() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get("/stats", summary="Counts of events, items, users and online state size (admin)",
            dependencies=[Depends(require_write)])
async def stats(request: Request) -> dict[str, Any]:
    return engine_of(request).stats()


@router.get("/models", summary="Strategies that can serve (?strategy=)", dependencies=[Depends(require_read)])
async def models(request: Request) -> dict[str, Any]:
    service = engine_of(request).service
    return {
        "default": "default",
        "models": [
            {"name": name, "kind": type(model).__name__, **getattr(model, "meta", {})}
            for name, model in sorted(service.strategies.items())
        ],
    }
