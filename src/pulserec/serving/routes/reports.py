"""GET /reports/{path}: the evaluation report directory (`<data_dir>/reports`), read-only.

Only regular files inside that directory are served: the resolved path (symlinks followed)
must stay under the resolved directory, so `..`, absolute paths and escaping links get a 404."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from pulserec.runtime.insights import REPORT_PAGES, reports_dir
from pulserec.serving.routes.deps import engine_of

router = APIRouter(tags=["operations"])

ReportPath = Annotated[str, PathParam(max_length=512, pattern=r"^[^\x00-\x1f\x7f\\]*$", description="File inside the report.",
                                      examples=["report.html"])]


def safe_file(root: Path, relative: str) -> Path | None:
    """`root/relative` if it is a regular file inside `root` (after resolving links), else None."""
    base = root.resolve()
    try:
        target = (base / relative.lstrip("/")).resolve()
    except (OSError, RuntimeError):  # unreadable, or a symlink loop
        return None
    if not target.is_relative_to(base):
        return None
    if target.is_dir():
        target = next((target / p for p in REPORT_PAGES if (target / p).is_file()), target)
    return target if target.is_file() else None


@router.get("/reports/{path:path}", summary="Files of the last evaluation report (read-only)",
            response_class=FileResponse, responses={200: {"content": {"text/html": {"example": "<!doctype html>..."}}},
                                                    404: {"description": "No such report file."}})
def report_file(path: ReportPath, request: Request) -> FileResponse:
    target = safe_file(reports_dir(engine_of(request)), path)
    if target is None:
        raise HTTPException(404, "no such report file")
    return FileResponse(target, headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})
