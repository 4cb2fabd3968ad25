"""Popularity in Redis: all-time totals, event counts and forward-decayed trending.

The vectors are float64 strings (vec:total, vec:events, vec:trending) updated by COMMIT.
Trending uses exactly the in-memory `ForwardDecay` maths: writers compute contributions
relative to the shared landmark (`moved_landmark`, `forward_weights`) and COMMIT rescales the
stored vector when the landmark moves; readers wrap the fetched vector in a `ForwardDecay`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pulserec.decay import LN2, ForwardDecay, forward_weights, moved_landmark, rescale_factor
from pulserec.online.redis.codec import decode_vector

if TYPE_CHECKING:
    from pulserec.online.redis.plan import CommitPlan
    from pulserec.online.redis.state import RedisState


class RedisPopularity:
    """The `Popularity` interface read from a snapshot (vectors fetched at most once per request)."""

    def __init__(self, state: RedisState, trending_halflife: float) -> None:
        self.state = state
        self.rate = LN2 / trending_halflife

    # -- reads -------------------------------------------------------------------------------
    @property
    def trending(self) -> ForwardDecay:
        view = self.state.view()
        decay = ForwardDecay(LN2 / self.rate)
        decay.values, decay.landmark, decay.now = view.trending, view.landmark, view.now  # type: ignore[assignment]
        return decay

    def trending_scores(self, n: int, at: float | None = None) -> np.ndarray:
        """Trending weights read at time `at` (default: the newest event; see read_clock)."""
        return self.trending.decayed(n, at)

    def vector(self, name: str) -> np.ndarray:
        """A per-item vector (vec:<name>), fetched at most once per view and cached per vec_ver
        (read-only: a view serves every request of its owner until the next push)."""
        view = self.state.view()
        vector = view.vectors.get(name)
        if vector is None:
            cache = self.state.read_cache.other_vectors
            held = cache.get(name)
            if held is None or held[0] != view.vec_ver:  # written since this process read it
                held = cache[name] = (view.vec_ver, self.state.client.get(self.state.keys.vector(name)))
            vector = decode_vector(held[1], len(view.trending))  # type: ignore[arg-type]
            vector.flags.writeable = False
            view.vectors[name] = vector
        return vector

    def counts(self, name: str) -> np.ndarray:
        """`vector(name)` as int64 counts (events, owners per item), converted once per view:
        item-kNN's support check and the query's ask for them on every request."""
        view = self.state.view()
        key = name + ":int64"
        counts = view.vectors.get(key)
        if counts is None:
            counts = self.vector(name).astype(np.int64)
            counts.flags.writeable = False
            view.vectors[key] = counts
        return counts

    def all_time(self, n: int) -> np.ndarray:
        vector = self.vector("total")
        return vector[:n] if len(vector) >= n else np.pad(vector, (0, n - len(vector)))

    @property
    def total(self) -> np.ndarray:
        return self.vector("total")

    @property
    def events(self) -> np.ndarray:
        return self.counts("events")

    @property
    def now(self) -> float:
        return self.state.now

    # -- writes ------------------------------------------------------------------------------
    def plan_add(self, plan: CommitPlan, landmark: float | None, items: np.ndarray, weights: np.ndarray,
                 ts: np.ndarray, clock: float, sign: float = 1.0) -> None:
        """Add (sign=-1: subtract, clamping at zero) weighted events to the three vectors,
        aggregated per item as `Popularity.add_many` does. `clock` is the latest time seen."""
        new = moved_landmark(landmark, clock, self.rate)
        plan.move_landmark(landmark, new, 1.0 if landmark is None else rescale_factor(landmark, new, self.rate))
        if len(items) == 0:
            return
        unique, inverse = np.unique(items, return_inverse=True)
        clamp = sign < 0
        plan.add_to_vector("total", unique, sign * np.bincount(inverse, weights=weights), clamp)
        plan.add_to_vector("events", unique, sign * np.bincount(inverse).astype(np.float64), clamp)
        contributions = forward_weights(weights, ts, new, self.rate)
        plan.add_to_vector("trending", unique, sign * np.bincount(inverse, weights=contributions), clamp)
