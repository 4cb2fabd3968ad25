"""Apps (tenants): PUT/GET/DELETE /apps/{app}, GET /apps. Each app's API is the whole API under
`/apps/{app}/...` (serving/app.py mounts every router there too); see runtime/apps.py.

Managing apps is the server's business: these routes need an api key of the default app (the
server's keys), while an app's own data needs that app's keys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from pulserec.config import Settings
from pulserec.runtime.apps import APP_SETTINGS, DEFAULT_APP, KEYS_REQUIRED, SETTING_REFUSED, AppError, Apps
from pulserec.serving.auth import require_write
from pulserec.serving.errors import beyond_schema
from pulserec.serving.examples import json_example
from pulserec.serving.routes.deps import AppName
from pulserec.validation import Body

router = APIRouter(tags=["apps"], dependencies=[Depends(require_write)])

APP_EXAMPLE = {"app": "shop", "open": True, "created_at": 1764590000.0, "settings": {"trending_halflife": 86400.0},
               "keys": {"api_keys": 1, "read_keys": 0}, "prefix": "/apps/shop"}


#: JSON Schema of a setting by the type of its default (runtime/apps.py:_checked_settings' rule).
_JSON_TYPES = {bool: {"type": "boolean"}, int: {"type": "integer"}, float: {"type": "number"}, str: {"type": "string"},
               tuple: {"type": "array", "items": {"type": "string"}}, dict: {"type": "object"}}


def _settings_schema() -> dict[str, Any]:
    """The per-app settings, each with its type: names and types are in the document (the
    server's own settings and the keys are not among them); value ranges are the engine's checks."""
    defaults = Settings()
    return {"properties": {name: _JSON_TYPES[type(getattr(defaults, name))] for name in sorted(APP_SETTINGS)},
            "additionalProperties": False}


class AppIn(Body):
    """An app's settings (those that differ from the server's) and its own keys."""

    settings: dict[str, Any] = Field(default_factory=dict, max_length=64, examples=[{"trending_halflife": 86400.0}],
                                     json_schema_extra=_settings_schema(),
                                     description="Engine settings for this app (not the server's: limits, timeouts, "
                                                 "state and stream URLs); see GET /dashboard/api/config for names.")
    api_keys: list[str] = Field(default_factory=list, max_length=16, description="The app's keys that may read, "
                                "write and administer it (required when the server has keys; never inherited).")
    read_keys: list[str] = Field(default_factory=list, max_length=16, description="The app's read-only keys.")


def apps_of(request: Request) -> Apps:
    return request.app.state.apps


def _answer(call: Any) -> Any:
    try:
        return call()
    except AppError as exc:
        raise HTTPException(exc.status, exc.message) from None


@router.get("/apps", summary="The apps this server serves (`default` is the unprefixed API)",
            responses=json_example({"apps": [{"app": "default", "open": True, "prefix": ""}, {"app": "shop", "open": False,
                                              "prefix": "/apps/shop"}], "max_open_apps": 16}))
def list_apps(request: Request) -> dict[str, Any]:
    apps = apps_of(request)
    open_now = {"default", *apps.open_names()}
    return {"apps": [{"app": name, "open": name in open_now, "prefix": "" if name == "default" else f"/apps/{name}"}
                     for name in apps.names()], "max_open_apps": apps.max_open}


#: The default app is the server's data dir, configured as the server is: not created by PUT.
NewAppName = Annotated[AppName, Path(json_schema_extra={"not": {"const": DEFAULT_APP}})]


@router.put("/apps/{app}", summary="Create an app, or replace its settings and keys",
            responses={**json_example(APP_EXAMPLE, 201), **json_example(APP_EXAMPLE, 200)},
            openapi_extra=beyond_schema(KEYS_REQUIRED, SETTING_REFUSED))
def put_app(request: Request, app: NewAppName, body: AppIn) -> JSONResponse:
    """201 when created, 200 when updated: an open app reopens with the new settings once idle."""
    apps = apps_of(request)
    created = _answer(lambda: apps.put(app, body.settings, body.api_keys, body.read_keys))
    return JSONResponse(_answer(lambda: apps.describe(app)), status_code=201 if created else 200)


@router.get("/apps/{app}", summary="An app: whether it is open, its settings and how many keys it has",
            responses=json_example(APP_EXAMPLE))
def get_app(request: Request, app: AppName) -> dict[str, Any]:
    return _answer(lambda: apps_of(request).describe(app))


@router.delete("/apps/{app}", summary="Delete an app and all its data (events, models, snapshots)",
               responses=json_example({"deleted": "shop"}))
def delete_app(request: Request, app: AppName) -> dict[str, Any]:
    _answer(lambda: apps_of(request).delete(app))
    return {"deleted": app}
