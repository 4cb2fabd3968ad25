"""GET /health, GET /stats, GET /models."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from pulserec import __version__
from pulserec.serving.insights import model_list
from pulserec.serving.routes.deps import engine_of

router = APIRouter(tags=["system"])


@router.get("/health", summary="Liveness")
async def health() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get("/stats", summary="Counts of events, items, users and online state size")
async def stats(request: Request) -> dict[str, Any]:
    return engine_of(request).stats()


@router.get("/models", summary="Strategies that can serve (?strategy=)")
async def models(request: Request) -> dict[str, Any]:
    return {"default": "default", "models": model_list(engine_of(request))}
