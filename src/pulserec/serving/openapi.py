"""The OpenAPI document states the rules this server enforces, some of which come from its
settings or its state: id and result-count limits, known event types and strategies.

Request models are module-level types, so they carry only hard caps (:mod:`pulserec.validation`)
and free-form names; this fills in the real bounds and enums, so that a client (or schemathesis)
reads what the server actually accepts. It also adds `EventIn` and `BrowserBatch`, which POST
/events and POST /sdk/events refer to but FastAPI does not emit (those routes parse their bodies
themselves: to accept three shapes, and a beacon's text/plain). The document
is rebuilt when the set of strategies changes (a model trained or installed)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.ingest.schemas import EventIn
from pulserec.serving.errors import BEYOND_SCHEMA
from pulserec.serving.routes.sdk import SDK_EVENT_TYPES, BrowserBatch
from pulserec.validation import ID_LEN_CAP, N_CAP, ValueRule

REF = "#/components/schemas/{model}"


def _walk(node: Any, visit: Any) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk(value, visit)


def _add_body_schemas(schema: dict[str, Any]) -> None:
    _, defs = models_json_schema([(EventIn, "validation"), (BrowserBatch, "validation")], ref_template=REF)
    schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))


def _apply_rules(schema: dict[str, Any], engine: Engine, strategies: list[str]) -> None:
    settings = engine.settings
    components = schema.get("components", {}).get("schemas", {})

    def visit(node: dict[str, Any]) -> None:
        if node.get("maxLength") == ID_LEN_CAP:
            node["maxLength"] = settings.max_id_len
        param_schema = node.get("schema")
        if "in" in node and isinstance(param_schema, dict):  # a parameter
            if node.get("name") == "n" and param_schema.get("maximum") == N_CAP:
                param_schema["maximum"] = settings.max_n
            if node.get("name") == "strategy":
                node["schema"] = {"type": "string", "enum": strategies}

    _walk(schema, visit)
    event = components.get("EventIn", {})
    if "type" in event.get("properties", {}):
        event["properties"]["type"] = {"type": "string", "enum": sorted(settings.event_weights), "title": "Type"}
        event["allOf"] = _event_rules(settings)
    browser = components.get("BrowserEvent", {})
    if "type" in browser.get("properties", {}):
        known = [t for t in SDK_EVENT_TYPES if t in settings.event_weights]
        browser["properties"]["type"] = {"type": "string", "enum": known, "title": "Type"}
        browser["properties"]["timestamp"] = {"type": "null", "title": "Timestamp"}  # the server stamps them
        browser["allOf"] = _event_rules(settings, known)
    variant = components.get("Variant", {}).get("properties", {})
    if "strategy" in variant:
        variant["strategy"] = {"type": "string", "enum": strategies, "title": "Strategy"}


def _given(name: str, **schema: Any) -> dict[str, Any]:
    return {"properties": {name: {"type": "string", **schema}}, "required": [name]}


def _value_schema(event_type: str, rule: ValueRule) -> dict[str, Any]:
    bounds: dict[str, Any] = {"type": "number"}
    if rule.min is not None:
        bounds["minimum"] = rule.min
    if rule.max is not None:
        bounds["maximum"] = rule.max
    value = bounds if rule.required else {"anyOf": [bounds, {"type": "null"}]}
    return {"properties": {"type": {"const": event_type}, "value": value}, "required": ["type", "value"] if rule.required else ["type"]}


def _event_rules(settings: Settings, types: list[str] | None = None) -> list[dict[str, Any]]:
    """EventIn's own rules (a user or a session; an item unless it is a search with a query) and
    the settings' value rules per event type (of `types`, default all), as JSON Schema: a
    request the document calls valid is not refused for them (issue 13.16)."""
    known = set(settings.event_weights if types is None else types)
    rules = {name: rule for name, rule in settings.value_rules.items() if name in known}
    free = sorted(known - set(rules))
    values = [{"properties": {"type": {"enum": free}}}] if free else []
    values += [_value_schema(event_type, rule) for event_type, rule in sorted(rules.items())]
    search = {"properties": {"type": {"const": "search"}, "query": {"type": "string", "minLength": 1}}, "required": ["type", "query"]}
    return [{"anyOf": [_given("user_id"), _given("session_id")]},
            {"anyOf": [_given("item_id"), search]},
            {"anyOf": values}]


def _describe_unstated(schema: dict[str, Any]) -> None:
    """Name, in each operation's 422, the rules beyond its schema (serving/errors.py:BEYOND_SCHEMA)."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            rules = operation.get(BEYOND_SCHEMA) if isinstance(operation, dict) else None
            invalid = operation.get("responses", {}).get("422") if rules else None
            if invalid is not None:
                invalid["description"] += "; also, though the schema allows it: " + "; ".join(rules)


def document_rules(app: FastAPI, engine: Engine) -> None:
    """Wrap `app.openapi` so the document carries the engine's settings and strategies."""
    build = app.openapi
    built_for: list[tuple[str, ...]] = []

    def openapi() -> dict[str, Any]:
        strategies = tuple(sorted(engine.served_models()))
        if app.openapi_schema is None or built_for != [strategies]:
            app.openapi_schema = None  # the inner builders cache in the same attribute
            schema = build()
            _add_body_schemas(schema)
            _apply_rules(schema, engine, list(strategies))
            _describe_unstated(schema)
            app.openapi_schema = schema
            built_for[:] = [strategies]
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
