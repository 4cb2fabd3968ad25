"""What a served request costs besides the default's blended parts, measured when `auto` is fitted.

Issue 2's latency target is the WHOLE request (p50 < 2 ms, p99 < 10 ms in process), and the
served default pays more than its parts' scores: the owner's query (history, ties, declared
attributes), the filters' environment and mask, the social and segment parts the default always
blends (recommend/model_set.py `choose_default`), the normalisation and sum of the parts, top-n,
the explanation and the rendering of the slate (0.5-1.2 ms on MovieLens in the seventh session's
quiet window). `auto`'s latency budget (models/latency_budget.py) bounds the whole request when
it is told this overhead: :func:`overhead_meter` gives `Hybrid.request_overhead` a function that
builds an in-memory online state from a sample of the training log's users (all their events,
the whole catalogue), serves them through the same :class:`RecommendationService` the server
uses with a blend of one flat part and the social and segment parts, and times each request in
the calling thread's CPU time (the minimum of two calls, as parts are priced).

What the parts' prices and that overhead do not see (a fresh user's long-term gather, the
aligned parts' id maps, a dense pass per part) :func:`served_cost` measures: the fitted blend
itself served as the default (ModelSet.choose_default: its live item-kNN, aligned batch parts,
social and segment parts) to the same sampled users, each request a user's FIRST (the kept
long-term parts are dropped before each timed pass): `Hybrid.request_meter`, which verifies the
chosen blend (models/latency_budget.py verified_choice)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from pulserec.config import Settings
from pulserec.models.base import Query
from pulserec.models.blend import Blend
from pulserec.models.interactions import Interactions
from pulserec.models.latency_budget import PRICE_QUERIES, REPEATS, SLATE, price_sample
from pulserec.online.catalog import Catalog
from pulserec.online.state import OnlineState
from pulserec.records import ItemRecord
from pulserec.recommend.model_set import long_term_cache
from pulserec.recommend.service import RecommendationService

if TYPE_CHECKING:
    from pulserec.models.auto import AutoBlend

#: The strategy name the flat blend is registered under in the throwaway service.
PROBE = "request-overhead"


class Flat:
    """A part that scores every item alike at no cost: what the request does around it is timed."""

    name: ClassVar[str] = "flat"

    def fit(self, data: Interactions, catalog: Catalog | None = None) -> Flat:
        return self

    def score(self, query: Query, n_items: int) -> np.ndarray:
        return np.ones(n_items)

    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        return None


def sampled_state(data: Interactions, catalog: Catalog | None, settings: Settings, users: np.ndarray) -> OnlineState:
    """An online state holding the whole catalogue and every event of `users` (in time order)."""
    state = OnlineState(settings)
    records = catalog.records() if catalog is not None else [ItemRecord(str(i)) for i in data.item_ids.ids]
    for record in records:
        state.catalog.upsert(record)
    mask = np.isin(data.users, users)
    order = np.flatnonzero(mask)[np.argsort(data.timestamps[mask], kind="stable")]
    ids = np.asarray(data.user_ids.ids, dtype=object)
    items = np.asarray(data.item_ids.ids, dtype=object)
    frame = pd.DataFrame({"event_id": [f"overhead-{k}" for k in range(len(order))],
                          "user_id": ids[data.users[order]], "item_id": items[data.items[order]],
                          "type": data.types[order], "ts": data.timestamps[order], "session_id": None})
    state.apply_frame(frame)
    state.end_bulk()
    return state


def sampled_service(data: Interactions, catalog: Catalog | None, settings: Settings, size: int = PRICE_QUERIES,
                    seed: int = 0) -> tuple[RecommendationService, list[str]]:
    """A throwaway service over :func:`sampled_state` of a seeded sample of `size` users (the
    sample parts are priced on, latency_budget.price_sample), and those users' keys."""
    users = price_sample(data.n_users, size, seed)
    service = RecommendationService(sampled_state(data, catalog, settings, users), settings)
    return service, [str(data.user_ids.ids[u]) for u in users]


def timed_requests(service: RecommendationService, keys: Sequence[str], strategy: str | None,
                   between: Callable[[], None] = lambda: None) -> list[float]:
    """(p50, p99) CPU ms of `strategy`'s request for each of `keys` (this thread's time, the
    minimum over REPEATS passes; `between` runs before each pass; one untimed request first, so
    that lazy set-up such as compiled filters is not a request's)."""
    service.recommend(keys[0], SLATE, strategy=strategy)
    costs = np.full(len(keys), np.inf)
    for _ in range(REPEATS):
        between()
        for k, key in enumerate(keys):
            start = time.thread_time()
            service.recommend(key, SLATE, strategy=strategy)
            costs[k] = min(costs[k], time.thread_time() - start)
    costs *= 1e3
    return [round(float(np.percentile(costs, 50)), 3), round(float(np.percentile(costs, 99)), 3)]


def request_overhead(data: Interactions, catalog: Catalog | None, settings: Settings, size: int = PRICE_QUERIES,
                     seed: int = 0) -> list[float]:
    """(p50, p99) CPU ms of a served request's own work over `size` sampled users of `data`."""
    if data.n_users == 0:
        return [0.0, 0.0]
    service, keys = sampled_service(data, catalog, settings, size, seed)
    models = service.models
    service.register(Blend([(Flat(), 1.0), (models.social, settings.social_blend), (models.segment, settings.segment_blend)],
                           name=PROBE), PROBE)
    return timed_requests(service, keys, PROBE)


def served_cost(auto: AutoBlend, data: Interactions, catalog: Catalog | None, settings: Settings,
                size: int = PRICE_QUERIES, seed: int = 0) -> list[float]:
    """(p50, p99) CPU ms of the whole request of the fitted `auto` served as the default, over
    `size` sampled users of `data`, each request the user's first (as a fresh user's)."""
    if data.n_users == 0:
        return [0.0, 0.0]
    service, keys = sampled_service(data, catalog, settings, size, seed)
    models = service.models
    models.choose_default(auto, {})

    def forget_long_term() -> None:  # every user's next request gathers their long-term part again
        models.item_knn.long_term_cache = long_term_cache(settings)

    return timed_requests(service, keys, None, forget_long_term)


def overhead_meter(settings: Settings) -> Callable[[Interactions, Catalog | None], list[float]]:
    """What `Hybrid.request_overhead` calls at fit: :func:`request_overhead` under `settings`."""
    return lambda data, catalog: request_overhead(data, catalog, settings)


def served_meter(settings: Settings) -> Callable[[AutoBlend, Interactions, Catalog | None], list[float]]:
    """What `Hybrid.request_meter` calls at fit: :func:`served_cost` under `settings`."""
    return lambda auto, data, catalog: served_cost(auto, data, catalog, settings)
