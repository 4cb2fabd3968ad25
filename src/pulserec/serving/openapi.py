"""The OpenAPI document states the limits this server enforces, which come from its settings.

Request models carry the hard caps of :mod:`pulserec.validation` (they are module-level types);
the engine enforces the configured `max_id_len` and `max_n` below them, and this rewrites those
caps in the generated document so that a client (or schemathesis) reads the real bounds."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from pulserec.config import Settings
from pulserec.validation import ID_LEN_CAP, N_CAP


def _lower_caps(node: Any, max_id_len: int, max_n: int) -> None:
    if isinstance(node, dict):
        if node.get("maxLength") == ID_LEN_CAP:
            node["maxLength"] = max_id_len
        if node.get("name") == "n" and isinstance(node.get("schema"), dict) and node["schema"].get("maximum") == N_CAP:
            node["schema"]["maximum"] = max_n
        for value in node.values():
            _lower_caps(value, max_id_len, max_n)
    elif isinstance(node, list):
        for value in node:
            _lower_caps(value, max_id_len, max_n)


def document_limits(app: FastAPI, settings: Settings) -> None:
    """Wrap `app.openapi` so the document carries `settings.max_id_len` and `settings.max_n`."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _lower_caps(schema, settings.max_id_len, settings.max_n)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
