"""Background jobs over HTTP: start a training or a rebuild (202 with the job), poll it, list them.

A second job for a target that is running gets 409 and the running job; past `max_jobs` running
at once, 429 with the jobs in the way (see recommend/jobs.py for why both are refused, not queued)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse

from pulserec.models.registry import TRAINABLE
from pulserec.recommend.jobs import Busy, Job, JobRefused
from pulserec.serving.auth import require_read, require_write
from pulserec.serving.routes.deps import app_path, engine_of

router = APIRouter(tags=["jobs"])
ModelName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[\w.-]+$", examples=["als"])]
JobId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$", examples=["3f9c2a7d1b0e4c55"])]
#: Seconds a client refused for the global limit is told to wait before trying again.
RETRY_AFTER_S = 10

REFUSED = {409: {"description": "a job for this target is running (it is in `running`)"},
           429: {"description": "max_jobs jobs are running (they are in `running`)"}}


def _started(request: Request, start: Callable[[], Job], **fields: Any) -> JSONResponse:
    try:
        job = start()
    except JobRefused as refused:
        status, headers = (409, {}) if isinstance(refused, Busy) else (429, {"Retry-After": str(RETRY_AFTER_S)})
        body = {"detail": str(refused), "running": [job.as_dict() for job in refused.running]}
        return JSONResponse(body, status_code=status, headers=headers)
    body = {**fields, "job_id": job.id, "job": job.as_dict()}
    return JSONResponse(body, status_code=202, headers={"Location": app_path(request, f"/jobs/{job.id}")})


@router.post("/models/{name}/train", status_code=202, dependencies=[Depends(require_write)],
             summary="Retrain a batch model in the background (a job to poll); it swaps in when done",
             responses={404: {"description": "unknown model"}, **REFUSED})
def train_model(name: ModelName, request: Request) -> JSONResponse:
    if name not in TRAINABLE:
        raise HTTPException(404, f"unknown model {name!r}; trainable: {', '.join(sorted(TRAINABLE))}")
    return _started(request, lambda: engine_of(request).training.start(name), model=name, status="training")


@router.post("/admin/rebuild", status_code=202, dependencies=[Depends(require_write)], responses=REFUSED,
             summary="Rebuild the online state from the log in the background (a job to poll)")
def rebuild(request: Request) -> JSONResponse:
    return _started(request, engine_of(request).rebuilds.start, status="rebuilding")


@router.get("/jobs", summary="Running jobs (oldest first), then finished ones (newest first)",
            dependencies=[Depends(require_read)])
def jobs(request: Request) -> dict[str, Any]:
    registry = engine_of(request).jobs
    return {"max_jobs": registry.max_jobs, "jobs": [job.as_dict() for job in registry.jobs()]}


@router.get("/jobs/{job_id}", summary="One job: state, progress, duration, result or error",
            responses={404: {"description": "no such job"}}, dependencies=[Depends(require_read)])
def job(job_id: JobId, request: Request) -> dict[str, Any]:
    found = engine_of(request).jobs.get(job_id)
    if found is None:
        raise HTTPException(404, f"no job {job_id!r} (finished jobs are kept for the newest 200)")
    return found.as_dict()
