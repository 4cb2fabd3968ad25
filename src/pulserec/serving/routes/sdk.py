"""The browser SDK: GET /sdk/pulserec.js (the script) and POST /sdk/events (its batched beacons).

Its source is clients/js/pulserec.js, packaged as serving/static/sdk/pulserec.js (a link to it).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import ConfigDict, Field, TypeAdapter, field_validator

from pulserec.engine import Engine
from pulserec.ingest.schemas import IN_THE_FUTURE, EventIn, Id
from pulserec.serving.errors import ErrorBody, beyond_schema, parse_json, validation_response
from pulserec.serving.examples import json_example
from pulserec.serving.routes.dashboard import STATIC_DIR
from pulserec.serving.routes.deps import engine_of
from pulserec.serving.routes.feedback import UNKNOWN_RECOMMENDATION, ImpressionIn, record_impression
from pulserec.validation import Body, InvalidInput

SCRIPT = STATIC_DIR / "sdk" / "pulserec.js"
#: What a page may report: browsing, searching and the shop's own calls to `pulserec.track`.
SDK_EVENT_TYPES = ("view", "click", "search", "add_to_cart", "purchase", "like", "share")
#: A beacon carries at most 64 KiB; the SDK sends at most 50 events and 20 impressions at a time.
MAX_EVENTS = 200
MAX_IMPRESSIONS = 50
#: How long a browser or CDN may use the script unchecked (s), then revalidates it by its ETag.
SCRIPT_MAX_AGE_S = 300

router = APIRouter(tags=["sdk"], responses={429: {"model": ErrorBody, "description": "Rate limit of a publishable key "
                                                                                      "and client address exceeded; see Retry-After"}})

BROWSER_EXAMPLE = {"event_id": "s-9f2c.3", "session_id": "s-9f2c", "item_id": "sku-7", "type": "view",
                   "recommendation_id": "5f0c9a3e4b8d4e2fa1c0d9e8b7a6f5e4", "context": {"device": "desktop"}}


class BrowserEvent(EventIn):
    """An event from the SDK, as POST /events takes one but: of the SDK's types; with the
    page's own `event_id` (a batch sent again after a lost beacon is stored once) and
    `session_id`; stamped by the server's clock (no `timestamp`: a visitor's clock is anyone's)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [BROWSER_EXAMPLE]})
    event_id: Id = Field(description="Made by the page; a second copy of an event is dropped.")
    session_id: Id = Field(description="The SDK's anonymous session id.")

    @field_validator("type")
    @classmethod
    def _sdk_type(cls, value: str) -> str:
        if value not in SDK_EVENT_TYPES:
            raise ValueError(f"must be one of {', '.join(SDK_EVENT_TYPES)} (others: POST /events with a secret key)")
        return value

    @field_validator("timestamp")
    @classmethod
    def _no_client_clock(cls, value: object) -> None:
        if value is not None:
            raise ValueError("not accepted from browsers: the server stamps their events")


class Identify(Body):
    """`pulserec.identify(user_id)`: the session's events become the user's (the login merge)."""

    user_id: Id
    session_id: Id


class BrowserBatch(Body):
    """What one beacon of the SDK carries; `identify` is applied before the events."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"events": [BROWSER_EXAMPLE], "impressions": [{"recommendation_id": "5f0c9a3e4b8d4e2fa1c0d9e8b7a6f5e4",
                                                       "session_id": "s-9f2c", "items": ["sku-7", "sku-9"]}]}]})
    events: list[BrowserEvent] = Field(default_factory=list, max_length=MAX_EVENTS)
    impressions: list[ImpressionIn] = Field(default_factory=list, max_length=MAX_IMPRESSIONS)
    identify: Identify | None = None


_BATCH = TypeAdapter(BrowserBatch)
_BODY = {"requestBody": {"required": True, "content": {
    "text/plain": {"schema": {"$ref": "#/components/schemas/BrowserBatch"}},
    "application/json": {"schema": {"$ref": "#/components/schemas/BrowserBatch"},
                         "example": BrowserBatch.model_config["json_schema_extra"]["examples"][0]}}}}  # type: ignore[index]
SDK_EVENTS_EXAMPLE = {"accepted": 1, "duplicates": 0, "impressions": 1, "identified": False}


@router.post("/sdk/events", openapi_extra={**_BODY, **beyond_schema(UNKNOWN_RECOMMENDATION, IN_THE_FUTURE)},
             responses=json_example(SDK_EVENTS_EXAMPLE),
             summary="The browser SDK's batch of events and impressions (publishable key in ?key=)",
             description="`identify` is applied first, then the events are stored, then the impressions. "
                         "Every part is optional: an empty batch (`{}`) is a no-op answered with zeros.")
async def post_browser_events(request: Request) -> dict[str, Any]:
    # `async` to read the raw body whatever its content type (a beacon sends text/plain, which
    # needs no CORS preflight); the blocking writes run in the thread pool.
    engine = engine_of(request)
    # An empty batch (`{}`: every part has its default) is valid and does nothing: a beacon's
    # answer is read by no page, and the schema allows it, so refusing it would only be noise.
    batch = _BATCH.validate_python(parse_json(await request.body()))  # ValidationError: a 422 naming the field
    if batch.identify is not None:
        await run_in_threadpool(engine.log_in, batch.identify.user_id, batch.identify.session_id)
    now = time.time()
    try:
        result = await run_in_threadpool(engine.ingest, [e.to_event(now) for e in batch.events]) if batch.events else None
    except InvalidInput as exc:  # a rule of the settings (an event type not configured, a value range)
        return validation_response([{"field": f"events[{exc.index}].{exc.field}", "message": exc.message}])  # type: ignore[return-value]
    recorded = await run_in_threadpool(_record_impressions, engine, batch.impressions)
    return {"accepted": result.accepted if result else 0, "duplicates": result.duplicates if result else 0,
            "impressions": recorded, "identified": batch.identify is not None}


def _record_impressions(engine: Engine, impressions: list[ImpressionIn]) -> int:
    return sum(record_impression(engine, shown, f"impressions[{k}]") for k, shown in enumerate(impressions))


def _script() -> tuple[bytes, str]:
    body = SCRIPT.read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


#: Read once per process: the script changes with a release, not while serving.
_SCRIPT_BODY, _SCRIPT_ETAG = _script()
SCRIPT_HEADERS = {"Cache-Control": f"public, max-age={SCRIPT_MAX_AGE_S}", "ETag": _SCRIPT_ETAG,
                  "X-Content-Type-Options": "nosniff", "Cross-Origin-Resource-Policy": "cross-origin"}
JS = "text/javascript; charset=utf-8"


@router.get("/sdk/pulserec.js", response_class=Response, summary="The browser SDK (one script tag, no build step)",
            responses={200: {"content": {JS: {"example": "/* pulserec.js: behaviour capture and recommendation widgets */"}}},
                       304: {"description": "Not modified (If-None-Match matched the ETag)"}})
async def script(request: Request) -> Response:
    # `async`: the bytes are in memory, nothing blocks.
    if _SCRIPT_ETAG in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=SCRIPT_HEADERS)
    return Response(_SCRIPT_BODY, media_type=JS, headers=SCRIPT_HEADERS)
