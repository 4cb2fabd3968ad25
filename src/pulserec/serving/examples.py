"""Response examples for the OpenAPI document, so /docs shows what every endpoint returns.

Routes may declare their own (`responses=json_example(...)`); the endpoints below get theirs
added when the schema is generated, without touching their route modules. A test checks that
every operation ends up with an example."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

_RECOMMENDED = {"item_id": "sku-7", "score": 0.8123, "reason": "because you viewed Trail shoe", "source": "item_knn",
                "title": "Trail running shoe", "category": "shoes"}
_RECOMMENDATIONS = {"recommendation_id": "5f0c9a3e4b8d4e2fa1c0d9e8b7a6f5e4", "strategy": "default", "cold_start": False,
                    "history_size": 3, "generated_at": 1732521600.5, "items": [_RECOMMENDED]}
_ITEM = {"item_id": "sku-7", "title": "Trail running shoe", "description": "Light and grippy.", "category": "shoes",
         "tags": ["running", "trail"], "price": 89.9, "active": True, "created_at": 1732000000.0, "attrs": {"brand": "Acme"},
         "events": 412, "popularity": 1290.5}
_PROFILE = {
    "user_id": "u42", "first_seen": 1731000000.0, "last_seen": 1732521600.0, "event_count": 31, "total_weight": 77.5,
    "counts_by_type": {"view": 25, "add_to_cart": 4, "purchase": 2},
    "interests": {"categories": [{"name": "shoes", "score": 12.5}, {"name": "socks", "score": 3.1}],
                  "tags": [{"name": "running", "score": 9.0}]},
    "favourite_device": "mobile", "favourite_location": "Lyon", "favourite_hour": 20, "time_of_day": "evening",
    "devices": {"mobile": 28, "desktop": 3}, "hours": [0] * 24, "weekdays": [0] * 7, "recent_searches": ["trail shoes"],
    "segments": ["active", "buyer", "mobile_first"], "attrs": {"plan": "gold"},
    "recent_items": [{"item_id": "sku-7", "title": "Trail running shoe", "type": "view", "ts": 1732521600.0}],
    "session": {"events": 3, "items": ["sku-5", "sku-6", "sku-7"], "started": 1732521000.0},
}

_JOB = {"id": "3f9c2a7d1b0e4c55", "kind": "train", "target": "als", "state": "running", "progress": 0.1,
        "note": "fitting als on 19,000 interactions", "started_at": 1732521600.0, "finished_at": None, "duration_s": 1.2,
        "result": None, "error": None}
_DONE = {**_JOB, "state": "succeeded", "progress": 1.0, "note": "done", "finished_at": 1732521603.4, "duration_s": 3.4,
         "result": ["als: trained on 19,000 interactions in 3.20s"]}

#: (method, path template) -> example of the 200 response body.
RESPONSE_EXAMPLES: dict[tuple[str, str], Any] = {
    ("post", "/events"): {"accepted": 2, "duplicates": 0, "event_ids": ["e-1001", "e-1002"]},
    ("put", "/items/{item_id}"): {"item_id": "sku-7", "created": True},
    ("post", "/items"): {"upserted": 250},
    ("get", "/items/{item_id}"): _ITEM,
    ("get", "/items/{item_id}/similar"): {"item_id": "sku-5", "items": [{**_RECOMMENDED, "reason": "similar to Road shoe"}]},
    ("put", "/users/{user_id}"): {"user_id": "u42"},
    ("get", "/users/{user_id}/profile"): _PROFILE,
    ("delete", "/users/{user_id}"): {"user_id": "u42", "deleted_events": 31},
    ("get", "/users/{user_id}/recommendations"): {"user_id": "u42", **_RECOMMENDATIONS},
    ("get", "/sessions/{session_id}/recommendations"): {"session_id": "s-9f2c", **_RECOMMENDATIONS},
    ("get", "/health"): {"status": "ok", "version": "0.1.0"},
    ("get", "/stats"): {"events_applied": 20000, "events_stored": 20000, "items": 400, "users": 333, "cooccurrence_nnz": 51234,
                        "event_time": 1732521600.0, "strategies": ["default", "item_knn", "popular", "trending"],
                        "counters": {"events.accepted": 1000, "events.view": 800}, "uptime_s": 3600.0},
    ("post", "/impressions"): {"recommendation_id": "5f0c9a3e4b8d4e2fa1c0d9e8b7a6f5e4", "recorded": True},
    ("get", "/feedback"): {"strategies": [{"name": "default", "impressions": 1200, "clicked": 180, "converted": 31, "users": 640,
                                           "ctr": 0.15, "conversion_rate": 0.0258}],
                           "promotions": [{"name": "summer-sale", "impressions": 2400, "clicks": 130, "ctr": 0.0542}],
                           "exploration": [{"strategy": "default", "impressions": 1200, "clicks": 41, "ctr": 0.0342}]},
    ("get", "/experiments"): {"experiments": [{"name": "homepage", "variants": [
        {"name": "control", "strategy": "default", "weight": 1.0}, {"name": "als", "strategy": "als", "weight": 1.0}],
        "active": True, "default": True}]},
    ("put", "/experiments/{name}"): {"experiment": "homepage", "variants": [
        {"name": "control", "strategy": "default", "weight": 1.0}, {"name": "als", "strategy": "als", "weight": 1.0}],
        "active": True, "default": True},
    ("get", "/experiments/{name}"): {"experiment": "homepage", "active": True, "default": True, "control": "control", "variants": [
        {"name": "control", "strategy": "default", "weight": 1.0, "impressions": 5000, "clicked": 600, "converted": 90,
         "users": 2400, "ctr": 0.12, "conversion_rate": 0.018},
        {"name": "als", "strategy": "als", "weight": 1.0, "impressions": 5100, "clicked": 714, "converted": 101, "users": 2450,
         "ctr": 0.14, "conversion_rate": 0.0198,
         "ctr_vs_control": {"z": 2.97, "p_value": 0.003, "lift": 0.1667, "significant": True},
         "conversion_vs_control": {"z": 0.69, "p_value": 0.49, "lift": 0.1, "significant": False}}]},
    ("delete", "/experiments/{name}"): {"experiment": "homepage", "deleted": True},
    ("post", "/models/{name}/train"): {"model": "als", "status": "training", "job_id": _JOB["id"], "job": _JOB},
    ("post", "/admin/rebuild"): {"status": "rebuilding", "job_id": "9a1b2c3d4e5f6071",
                                 "job": {**_JOB, "id": "9a1b2c3d4e5f6071", "kind": "rebuild", "target": "online-state"}},
    ("get", "/jobs"): {"max_jobs": 2, "jobs": [_JOB, _DONE]},
    ("get", "/jobs/{job_id}"): _DONE,
    ("get", "/health/ready"): {"status": "ok", "checks": {"state": {"ok": True, "backend": "memory", "status": "ok"}}},
    ("get", "/dashboard/api/history"): {"since": 1731916800.0, "until": 1732521600.0, "bucket": "hour", "bucket_s": 3600,
                                        "types": ["purchase", "view"], "strategies": ["default"], "series": [
        {"t": 1732518000.0, "events": 120, "by_type": {"view": 117, "purchase": 3}, "active_users": 41, "new_items": 2,
         "strategies": {"default": {"impressions": 60, "clicks": 9, "conversions": 1, "ctr": 0.15, "conversion_rate": 0.0167}}}]},
    ("get", "/dashboard/api/users"): {"total": 333, "offset": 0, "limit": 25, "sort": "events", "descending": True,
                                      "pseudonymous": False, "rows": [
        {"user_id": "u42", "events": 31, "first_seen": 1731000000.0, "last_seen": 1732521600.0}]},
    ("get", "/dashboard/api/items"): {"total": 400, "offset": 0, "limit": 25, "sort": "events", "descending": True, "rows": [
        {"item_id": "sku-7", "title": "Trail running shoe", "category": "shoes", "price": 89.9, "active": True,
         "catalogued": True, "events": 412, "last_seen": 1732521600.0}]},
    ("get", "/dashboard/api/items/{item_id}/activity"): {"item_id": "sku-7", "bucket": "day", "bucket_s": 86400,
                                                         "types": ["view"], "series": [
        {"t": 1732492800.0, "events": 12, "by_type": {"view": 12}}],
        "recent": [{"user_id": "u42", "session_id": None, "type": "view", "ts": 1732521600.0}]},
    ("get", "/dashboard/api/config"): {"settings": [
        {"name": "max_jobs", "value": 2, "secret": False, "default": True},
        {"name": "api_keys", "value": "<redacted> (1 set)", "secret": True, "default": False}]},
    ("get", "/dashboard/api/session"): {"role": "admin", "keys_required": True},
    ("get", "/models"): {"default": "default", "models": [
        {"name": "default", "kind": "Blend"},
        {"name": "als", "kind": "AlignedModel", "trained_on": 19000, "train_seconds": 2.4, "trained_at": 1732500000.0}]},
}


def json_example(example: Any, status: int = 200) -> dict[int | str, dict[str, Any]]:
    """A `responses=` value documenting one JSON example for `status`."""
    return {status: {"content": {"application/json": {"example": example}}}}


def add_response_examples(app: FastAPI, examples: dict[tuple[str, str], Any] = RESPONSE_EXAMPLES) -> None:
    """Fill in the 200 example of listed operations that do not declare one when the schema is built."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            paths = schema.get("paths", {})
            for (method, path), example in examples.items():
                operation = paths.get(path, {}).get(method)
                if operation is None:
                    continue
                responses = operation.setdefault("responses", {})
                status = next((code for code in responses if code.startswith("2")), "200")
                content = responses.setdefault(status, {"description": "Successful Response"})
                media = content.setdefault("content", {}).setdefault("application/json", {})
                media.setdefault("example", example)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
