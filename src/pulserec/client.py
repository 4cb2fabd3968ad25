"""Python client for the pulserec HTTP API (httpx)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import httpx


class PulserecError(RuntimeError):
    def __init__(self, status: int, detail: Any) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {detail}")


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        raise PulserecError(response.status_code, detail)
    return response.json()


def _params(**kwargs: Any) -> dict[str, Any]:
    out = {}
    for key, value in kwargs.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, (list, tuple, set, frozenset)):
            value = ",".join(value)
        out[key] = value
    return out


class Client:
    """Synchronous client. `Client("http://127.0.0.1:8000")`; use as a context manager to close it."""

    def __init__(self, base_url: str, timeout: float = 10.0, api_key: str | None = None, **kwargs: Any) -> None:
        headers = {"x-api-key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=base_url, timeout=timeout, headers=headers, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_events(self, events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        return _check(self._http.post("/events", json={"events": list(events)}))

    def send_event(self, **event: Any) -> dict[str, Any]:
        return _check(self._http.post("/events", json=event))

    def put_item(self, item_id: str, **fields: Any) -> dict[str, Any]:
        return _check(self._http.put(f"/items/{item_id}", json=fields))

    def put_items(self, items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        return _check(self._http.post("/items", json={"items": list(items)}))

    def item(self, item_id: str) -> dict[str, Any]:
        return _check(self._http.get(f"/items/{item_id}"))

    def put_user(self, user_id: str, attrs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return _check(self._http.put(f"/users/{user_id}", json={"attrs": dict(attrs or {})}))

    def recommend(self, user_id: str, n: int = 10, **options: Any) -> dict[str, Any]:
        return _check(self._http.get(f"/users/{user_id}/recommendations", params=_params(n=n, **options)))

    def recommend_session(self, session_id: str, n: int = 10, **options: Any) -> dict[str, Any]:
        return _check(self._http.get(f"/sessions/{session_id}/recommendations", params=_params(n=n, **options)))

    def similar(self, item_id: str, n: int = 10, **options: Any) -> dict[str, Any]:
        return _check(self._http.get(f"/items/{item_id}/similar", params=_params(n=n, **options)))

    def profile(self, user_id: str) -> dict[str, Any]:
        return _check(self._http.get(f"/users/{user_id}/profile"))

    def delete_user(self, user_id: str) -> dict[str, Any]:
        return _check(self._http.delete(f"/users/{user_id}"))

    def post_impression(self, recommendation_id: str, **fields: Any) -> dict[str, Any]:
        return _check(self._http.post("/impressions", json={"recommendation_id": recommendation_id, **fields}))

    def put_experiment(self, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        return _check(self._http.put(f"/experiments/{name}", json=dict(config)))

    def experiment(self, name: str) -> dict[str, Any]:
        return _check(self._http.get(f"/experiments/{name}"))

    def feedback(self) -> dict[str, Any]:
        return _check(self._http.get("/feedback"))

    def stats(self) -> dict[str, Any]:
        return _check(self._http.get("/stats"))

    def models(self) -> dict[str, Any]:
        return _check(self._http.get("/models"))

    def health(self) -> dict[str, Any]:
        return _check(self._http.get("/health"))
