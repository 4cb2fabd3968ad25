"""POST /events: one event, a JSON list of events, or {"events": [...]}."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, TypeAdapter, ValidationError

from pulserec.ingest.schemas import IN_THE_FUTURE, EventIn
from pulserec.serving.errors import beyond_schema, error_items, parse_json, validation_response
from pulserec.serving.routes.deps import engine_of, on_engine
from pulserec.validation import InvalidInput

router = APIRouter(tags=["events"])
_ONE = TypeAdapter(EventIn)
_MANY = TypeAdapter(list[EventIn])


class IngestResponse(BaseModel):
    accepted: int
    duplicates: int
    event_ids: list[str]


_BODY_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/EventIn"},
                        {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/EventIn"}},
                        {"type": "object", "properties": {"events": {"type": "array", "minItems": 1,
                                                                    "items": {"$ref": "#/components/schemas/EventIn"}}},
                         "required": ["events"], "additionalProperties": False},
                    ]
                },
                "examples": {
                    "one": {"value": {"event_id": "e1", "user_id": "u42", "item_id": "sku-1", "type": "view",
                                      "context": {"device": "mobile"}}},
                    "batch": {"value": {"events": [{"user_id": "u42", "item_id": "sku-1", "type": "purchase", "value": 19.9}]}},
                },
            }
        },
    }
}


@router.post("/events", response_model=IngestResponse, openapi_extra={**_BODY_SCHEMA, **beyond_schema(IN_THE_FUTURE)},
             summary="Ingest behaviour events (applied to the online state before the response)")
async def post_events(request: Request) -> Any:
    # `async` to read the raw body without a thread (the body is parsed here, so that an error can
    # name the event and field); the ingest itself runs through deps.on_engine below.
    engine = engine_of(request)
    body = parse_json(await request.body())
    prefix: tuple[Any, ...] = ()
    if isinstance(body, dict) and "events" in body:
        extra = set(body) - {"events"}
        if extra:
            return validation_response([{"field": k, "message": "unexpected field"} for k in sorted(extra)])
        if not isinstance(body["events"], list):
            return validation_response([{"field": "events", "message": "must be a list of events"}])
        body, prefix = body["events"], ("events",)
    try:
        if isinstance(body, list):
            if len(body) > engine.settings.max_batch:
                return JSONResponse({"detail": f"batch of {len(body)} events exceeds the limit of {engine.settings.max_batch}"},
                                    status_code=413)
            if not body:
                return validation_response([{"field": "events", "message": "empty batch"}])
            parsed = _MANY.validate_python(body)
        else:
            parsed = [_ONE.validate_python(body)]
    except ValidationError as exc:
        return validation_response(error_items(exc.errors(), prefix if isinstance(body, list) else ()))
    now = time.time()
    events = [e.to_event(now) for e in parsed]
    try:
        # On the loop when the engine can take it at once, else in the thread pool: a stalled
        # state backend (up to its timeout) or a stream must not block the loop (deps.on_engine).
        result = await on_engine(request, lambda engine: engine.ingest(events), writes=True)
    except InvalidInput as exc:  # a rule of the settings (type, value range, id length)
        where = f"events[{exc.index}].{exc.field}" if isinstance(body, list) else exc.field
        return validation_response([{"field": where, "message": exc.message}])
    return {"accepted": result.accepted, "duplicates": result.duplicates, "event_ids": result.event_ids}
