"""Python clients for the pulserec HTTP API (httpx): `Client` (sync) and `AsyncClient`.

Each endpoint is written once, in :class:`_Endpoints`, as a :class:`Call` (method, path,
parameters, body and how to read the answer). `Client` runs calls with `httpx.Client`;
`AsyncClient` runs the same calls with `httpx.AsyncClient`, so its methods are awaitable:

    with Client("http://127.0.0.1:8000") as api:
        answer = api.recommend("u42", n=5)
        answer.items[0].reason            # typed
        answer["items"][0]["reason"]      # the raw JSON, as before

    async with AsyncClient("http://127.0.0.1:8000") as api:
        answer = await api.recommend("u42", n=5)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx

from pulserec.client_results import IngestResult, Item, ItemSearch, Profile, Recommendation, Recommendations, SearchResults

__all__ = ["AsyncClient", "Client", "IngestResult", "Item", "Profile", "PulserecError", "Recommendation", "Recommendations",
           "SearchResults", "ItemSearch"]

T = TypeVar("T")


class PulserecError(RuntimeError):
    """The API answered 4xx/5xx; `status` is the HTTP status, `detail` the server's message."""

    def __init__(self, status: int, detail: Any) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {detail}")


def _check(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        try:
            body = response.json()
            detail = body.get("detail") if isinstance(body, dict) else body
        except ValueError:
            detail = response.text
        raise PulserecError(response.status_code, detail)
    return response


def _json(response: httpx.Response) -> Any:
    return response.json()


def _text(response: httpx.Response) -> str:
    return response.text


def _params(**kwargs: Any) -> dict[str, Any]:
    """Query parameters: None dropped, booleans as true/false, collections comma-joined."""
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


def _segment(value: str) -> str:
    """One URL path segment: ids may contain '/', '?', '#', spaces or non-ASCII text."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"an id must be a non-empty string, got {value!r}")
    return quote(value, safe="")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One HTTP request and how to turn its (successful) response into a result."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    body: Any = None

    def send_with(self, http: httpx.Client) -> T:
        return self.read(_check(http.request(self.method, self.path, params=self.params, json=self.body)))

    async def send_async(self, http: httpx.AsyncClient) -> T:
        return self.read(_check(await http.request(self.method, self.path, params=self.params, json=self.body)))


def _typed(kind: Any) -> Callable[[httpx.Response], Any]:
    return lambda response: kind.from_json(response.json())


class _Endpoints:
    """Every endpoint of the API, once. Subclasses decide how a :class:`Call` is run (`_run`)."""

    def _run(self, call: Call[Any]) -> Any:
        raise NotImplementedError

    # -- events -------------------------------------------------------------------------------
    def send_events(self, events: Iterable[Mapping[str, Any]]) -> IngestResult:
        """POST /events with a batch; applied to the online state before the answer."""
        return self._run(Call("POST", "/events", _typed(IngestResult), body={"events": [dict(e) for e in events]}))

    def send_event(self, **event: Any) -> IngestResult:
        """POST /events with one event: `send_event(user_id="u42", item_id="sku-1", type="view")`."""
        return self._run(Call("POST", "/events", _typed(IngestResult), body=event))

    # -- catalogue ----------------------------------------------------------------------------
    def put_item(self, item_id: str, **fields: Any) -> dict[str, Any]:
        return self._run(Call("PUT", f"/items/{_segment(item_id)}", _json, body=fields))

    def put_items(self, items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        return self._run(Call("POST", "/items", _json, body={"items": [dict(i) for i in items]}))

    def item(self, item_id: str) -> Item:
        return self._run(Call("GET", f"/items/{_segment(item_id)}", _typed(Item)))

    def similar(self, item_id: str, n: int = 10, **options: Any) -> Recommendations:
        """Items similar to `item_id`; options: strategy, category, exclude, min_price, max_price,
        filter (a named filter), filter_expression."""
        return self._run(Call("GET", f"/items/{_segment(item_id)}/similar", _typed(Recommendations), _params(n=n, **options)))

    # -- users --------------------------------------------------------------------------------
    def put_user(self, user_id: str, attrs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._run(Call("PUT", f"/users/{_segment(user_id)}", _json, body={"attrs": dict(attrs or {})}))

    def profile(self, user_id: str) -> Profile:
        return self._run(Call("GET", f"/users/{_segment(user_id)}/profile", _typed(Profile)))

    def delete_user(self, user_id: str) -> dict[str, Any]:
        return self._run(Call("DELETE", f"/users/{_segment(user_id)}", _json))

    # -- recommendations ----------------------------------------------------------------------
    def recommend(self, user_id: str, n: int = 10, **options: Any) -> Recommendations:
        """What `user_id` should see now; options: strategy, category, exclude_seen, exclude,
        min_price, max_price, filter (a named filter), filter_expression, max_per_category,
        diversity (0-1), promotions (False: none), exploration (0-1), experiment, device, location."""
        return self._run(Call("GET", f"/users/{_segment(user_id)}/recommendations", _typed(Recommendations),
                              _params(n=n, **options)))

    def recommend_session(self, session_id: str, n: int = 10, **options: Any) -> Recommendations:
        return self._run(Call("GET", f"/sessions/{_segment(session_id)}/recommendations", _typed(Recommendations),
                              _params(n=n, **options)))

    # -- social ties ----------------------------------------------------------------------------
    def follow(self, user_id: str, other_id: str, weight: float = 1.0) -> dict[str, Any]:
        """`user_id` follows `other_id` with tie strength `weight` (PUT again to change it)."""
        return self._run(Call("PUT", f"/users/{_segment(user_id)}/follows/{_segment(other_id)}", _json, body={"weight": weight}))

    def unfollow(self, user_id: str, other_id: str) -> dict[str, Any]:
        return self._run(Call("DELETE", f"/users/{_segment(user_id)}/follows/{_segment(other_id)}", _json))

    def follows(self, user_id: str, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """Whom `user_id` follows: {"user_id", "follows": [{"user_id", "weight", "since"}]}."""
        return self._run(Call("GET", f"/users/{_segment(user_id)}/follows", _json, _params(limit=limit, offset=offset)))

    def followers(self, user_id: str, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        return self._run(Call("GET", f"/users/{_segment(user_id)}/followers", _json, _params(limit=limit, offset=offset)))

    def import_follows(self, edges: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Bulk import of {"follower", "followee", "weight"?} edges (one transaction)."""
        return self._run(Call("POST", "/follows", _json, body={"edges": [dict(e) for e in edges]}))

    def search_items(self, q: str, n: int = 10, user_id: str | None = None, session_id: str | None = None,
                     **options: Any) -> ItemSearch:
        """Catalogue items matching the shopper's query `q`, ranked for `user_id` (or `session_id`);
        options: filter (a named filter), filter_expression."""
        return self._run(Call("GET", "/search", _typed(ItemSearch), _params(q=q, n=n, user_id=user_id, session_id=session_id,
                                                                             **options)))

    # -- operations ---------------------------------------------------------------------------
    def find(self, q: str, limit: int = 10, kind: Literal["all", "users", "items"] = "all") -> SearchResults:
        """Operators: users and items whose id (or item title) contains `q`, prefix matches first."""
        return self._run(Call("GET", "/dashboard/api/search", _typed(SearchResults), _params(q=q, limit=limit, kind=kind)))

    def overview(self, window: int = 60, top: int = 10) -> dict[str, Any]:
        """The dashboard's overview document (events/s, latency, trending, coverage, models...)."""
        return self._run(Call("GET", "/dashboard/api/overview", _json, _params(window=window, top=top)))

    def metrics(self) -> str:
        """The Prometheus exposition text of GET /metrics."""
        return self._run(Call("GET", "/metrics", _text))

    # -- merchandising controls ---------------------------------------------------------------
    def put_filter(self, name: str, expression: str) -> dict[str, Any]:
        """Store a named filter (`?filter=NAME` on every ranking route); a bad expression is a
        PulserecError 422 whose detail names the position and what was expected."""
        return self._run(Call("PUT", f"/filters/{_segment(name)}", _json, body={"expression": expression}))

    def filter(self, name: str) -> dict[str, Any]:
        return self._control("GET", "filters", name)

    def filters(self) -> list[dict[str, Any]]:
        return self._run(Call("GET", "/filters", lambda response: response.json()["filters"]))

    def delete_filter(self, name: str) -> dict[str, Any]:
        return self._control("DELETE", "filters", name)

    def put_promotion(self, name: str, filter: str, share: float | None = None, boost: float | None = None,
                      starts: float | None = None, ends: float | None = None) -> dict[str, Any]:
        """Items `filter` selects take `share` of each slate, or have their score times `boost`,
        from `starts` to `ends` (Unix seconds, optional)."""
        body = {k: v for k, v in {"filter": filter, "share": share, "boost": boost, "starts": starts, "ends": ends}.items()
                if v is not None}
        return self._run(Call("PUT", f"/promotions/{_segment(name)}", _json, body=body))

    def promotion(self, name: str) -> dict[str, Any]:
        """A promotion with `running` and its slots' impressions, clicks and CTR."""
        return self._control("GET", "promotions", name)

    def promotions(self) -> list[dict[str, Any]]:
        return self._run(Call("GET", "/promotions", lambda response: response.json()["promotions"]))

    def delete_promotion(self, name: str) -> dict[str, Any]:
        return self._control("DELETE", "promotions", name)

    def _control(self, method: str, kind: str, name: str) -> Any:
        return self._run(Call(method, f"/{kind}/{_segment(name)}", _json))

    # -- feedback and experiments -------------------------------------------------------------
    def post_impression(self, recommendation_id: str, **fields: Any) -> dict[str, Any]:
        """Record that a recommendation list was shown (items default to what was served)."""
        return self._run(Call("POST", "/impressions", _json, body={"recommendation_id": recommendation_id, **fields}))

    def put_experiment(self, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        return self._run(Call("PUT", f"/experiments/{_segment(name)}", _json, body=dict(config)))

    def experiment(self, name: str) -> dict[str, Any]:
        """CTR, conversion, sample sizes and z-tests per variant."""
        return self._run(Call("GET", f"/experiments/{_segment(name)}", _json))

    def feedback(self) -> dict[str, Any]:
        return self._run(Call("GET", "/feedback", _json))

    def train(self, model: str) -> dict[str, Any]:
        """Retrain a batch model in the background; it swaps in when done."""
        return self._run(Call("POST", f"/models/{_segment(model)}/train", _json))

    def stats(self) -> dict[str, Any]:
        return self._run(Call("GET", "/stats", _json))

    def models(self) -> dict[str, Any]:
        return self._run(Call("GET", "/models", _json))

    # -- apps (tenants): on a client of the default app, with the server's key ---------------------
    def list_apps(self) -> dict[str, Any]:
        """The apps the server serves (`default` first)."""
        return self._run(Call("GET", "/apps", _json))

    def put_app(self, app: str, settings: Mapping[str, Any] | None = None, api_keys: Iterable[str] = (),
                read_keys: Iterable[str] = ()) -> dict[str, Any]:
        """Create app `app` or replace its settings and keys; `Client(url, app=...)` then works on it."""
        body = {"settings": dict(settings or {}), "api_keys": list(api_keys), "read_keys": list(read_keys)}
        return self._run(Call("PUT", f"/apps/{_segment(app)}", _json, body=body))

    def get_app(self, app: str) -> dict[str, Any]:
        return self._run(Call("GET", f"/apps/{_segment(app)}", _json))

    def delete_app(self, app: str) -> dict[str, Any]:
        """Delete app `app` and all its data."""
        return self._run(Call("DELETE", f"/apps/{_segment(app)}", _json))

    def health(self) -> dict[str, Any]:
        return self._run(Call("GET", "/health", _json))


def _headers(api_key: str | None) -> dict[str, str]:
    return {"x-api-key": api_key} if api_key else {}


def _app_url(base_url: str, app: str | None) -> str:
    """The base URL of app `app`'s API (every route under `/apps/{app}`; None or "default": the server's own)."""
    return base_url if app in (None, "default") else f"{base_url.rstrip('/')}/apps/{_segment(app)}"


class Client(_Endpoints):
    """Synchronous client. `Client("http://127.0.0.1:8000")`; use as a context manager to close it.
    `Client(url, app="shop", api_key=...)` works on app `shop` (with one of its keys)."""

    def __init__(self, base_url: str, timeout: float = 10.0, api_key: str | None = None, app: str | None = None,
                 **kwargs: Any) -> None:
        self._http = httpx.Client(base_url=_app_url(base_url, app), timeout=timeout, headers=_headers(api_key), **kwargs)

    def _run(self, call: Call[T]) -> T:
        return call.send_with(self._http)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Endpoints):
    """Asyncio client with the same methods as :class:`Client`; each returns an awaitable.

    `async with AsyncClient(url) as api: answer = await api.recommend("u42")`."""

    def __init__(self, base_url: str, timeout: float = 10.0, api_key: str | None = None, app: str | None = None,
                 **kwargs: Any) -> None:
        self._http = httpx.AsyncClient(base_url=_app_url(base_url, app), timeout=timeout, headers=_headers(api_key),
                                       **kwargs)

    def _run(self, call: Call[T]) -> Any:  # a coroutine resolving to T
        return call.send_async(self._http)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
