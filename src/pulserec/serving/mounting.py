"""How routers are mounted: each twice, as is (the default app) and under `/apps/{app}`."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from types import ModuleType

from fastapi import Depends, FastAPI, Request

from pulserec.serving.auth import require_access
from pulserec.serving.errors import ERROR_RESPONSES
from pulserec.runtime.apps import NAME_PATTERN
from pulserec.serving.routes.deps import APP_PREFIX, app_scope, single_valued_query


async def route_checks(request: Request) -> None:
    """The router dependency of every mounted route: the access check, then one value per query
    parameter (a 401/403 before a 422, as ever). One dependency, not two: FastAPI spends tens of us
    solving each dependency of every request, more than either check (docs/benchmarks.md, issue 11)."""
    await require_access(request)
    await single_valued_query(request)


def mount_routers(app: FastAPI, modules: Sequence[ModuleType]) -> None:
    """Each module's `router` as is (the default app: no lookup on the hot path) and under
    `/apps/{app}` (the app's engine leased by `app_scope` before the access check reads its
    keys). A router added here is an app route at once; tests/serving/test_apps.py walks them all."""
    for module in modules:
        app.include_router(module.router, dependencies=[Depends(route_checks)], responses=ERROR_RESPONSES)
    for module in modules:  # documented by copying the plain operations (document_apps): FastAPI would build each twice
        app.include_router(module.router, prefix=APP_PREFIX, responses=ERROR_RESPONSES, include_in_schema=False,
                           dependencies=[Depends(app_scope), Depends(route_checks)])


#: The `app` path parameter of every operation under `/apps/{app}`.
APP_PARAMETER = {"name": "app", "in": "path", "required": True,
                 "description": "The app (tenant): `default` is the unprefixed API; see GET /apps.",
                 "schema": {"type": "string", "pattern": NAME_PATTERN, "minLength": 1, "maxLength": 63, "title": "App"},
                 "example": "shop"}


def document_apps(app: FastAPI) -> None:
    """Every documented operation again under `/apps/{app}`, with the `app` parameter. Install it
    last: it copies the operations as the other hooks (examples, security, rules) left them."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            paths = schema.get("paths", {})
            for path, operations in list(paths.items()):
                if path.startswith("/apps"):
                    continue
                copied = {}
                for method, operation in operations.items():
                    twin = copy.deepcopy(operation)
                    twin["parameters"] = [APP_PARAMETER, *twin.get("parameters", [])]
                    if "operationId" in twin:
                        twin["operationId"] += "_app"
                    twin["tags"] = ["apps"]  # one group in /docs: the same operations as above, per app
                    copied[method] = twin
                paths[APP_PREFIX + path] = copied
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
