"""Per-user profile, updated by every event in O(tags) time."""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from pulserec.decay import LN2

DAY = 86_400.0


class DecayedCounter:
    """Scores that halve every `halflife` seconds: each key keeps (value, time of value).

    A counter read from the profile columns (`from_columns`) keeps their arrays and interns the
    key names only when a method needs them all: the profile view asks `top` alone, which then
    names only the entries that can be among the best (a MovieLens user has ~140 tags)."""

    __slots__ = ("rate", "_values", "_columns")

    def __init__(self, halflife: float) -> None:
        self.rate = LN2 / halflife
        self._values: dict[str, tuple[float, float]] = {}
        self._columns: tuple[Callable[[list[int]], list[str]], np.ndarray, np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_columns(cls, halflife: float, names_of: Callable[[list[int]], list[str]], codes: np.ndarray,
                     values: np.ndarray, times: np.ndarray) -> DecayedCounter:
        """A counter holding `values` at `times` for the keys named `names_of(codes)` (distinct
        codes; the arrays are the counter's own from now on)."""
        counter = cls(halflife)
        counter._columns = (names_of, codes, values, times)
        return counter

    def _named(self) -> dict[str, tuple[float, float]]:
        """The (value, time) per key, naming the column-backed entries first if there are any."""
        if self._columns is not None:
            names_of, codes, values, times = self._columns
            self._values, self._columns = dict(zip(names_of(codes.tolist()), zip(values.tolist(), times.tolist()))), None
        return self._values

    def add(self, key: str, weight: float, ts: float) -> None:
        values = self._named()
        old = values.get(key)
        if old is None:
            values[key] = (weight, ts)
            return
        value, at = old
        if ts >= at:
            values[key] = (value * math.exp(-(ts - at) * self.rate) + weight, ts)
        else:  # late event: decay it to the key's clock instead
            values[key] = (value + weight * math.exp(-(at - ts) * self.rate), at)

    def assign(self, values: dict[str, tuple[float, float]]) -> None:
        """Replace the contents with {key: (value, time of value)} (bulk building)."""
        self._values, self._columns = values, None

    def at(self, now: float) -> dict[str, float]:
        rate = self.rate
        return {k: v * math.exp(-max(now - t, 0.0) * rate) for k, (v, t) in self._named().items()}

    def last_times(self) -> dict[str, float]:
        """Per key, the time of its latest contribution (the clock its value is kept at)."""
        return {k: t for k, (_, t) in self._named().items()}

    def top(self, now: float, n: int = 10) -> list[tuple[str, float]]:
        """The n highest scores at time `now`, equal scores by name (vectorised: profiles can hold
        thousands of tags)."""
        if self._columns is not None:
            names_of, codes, values, times = self._columns
        else:
            keys = list(self._values)
            names_of, codes = (lambda indices: [keys[i] for i in indices]), np.arange(len(keys))
            pairs = np.array(list(self._values.values()), dtype=np.float64).reshape(-1, 2)
            values, times = pairs[:, 0], pairs[:, 1]
        if not len(codes):
            return []
        scores = values * np.exp(-np.maximum(now - times, 0.0) * self.rate)
        among = _best_candidates(scores, n)
        names, scores = names_of(codes[among].tolist()), scores[among]
        best = np.lexsort((np.array(names, dtype=object), -scores))[:n]  # ties by name: the same order on every path
        return [(names[i], float(scores[i])) for i in best.tolist()]

    def __len__(self) -> int:
        return len(self._columns[1]) if self._columns is not None else len(self._values)

    def to_state(self) -> dict[str, list[float]]:
        """The raw (value, time) pairs, JSON-ready."""
        return {k: [v, t] for k, (v, t) in self._named().items()}

    def load_state(self, state: dict[str, list[float]]) -> None:
        self._values, self._columns = {k: (float(v), float(t)) for k, (v, t) in state.items()}, None


def _best_candidates(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of every score that can be among the `n` best (all of them tying with the n-th
    included, so ordering these by (score, name) gives the same first n as ordering all)."""
    if len(scores) <= n or n <= 0 or np.isnan(scores).any():  # NaN orders last: no threshold cut
        return np.arange(len(scores))
    nth = np.partition(scores, len(scores) - n)[len(scores) - n]
    return np.flatnonzero(scores >= nth)


@dataclass
class UserProfile:
    user_id: str
    interest_halflife: float
    first_seen: float = math.inf
    last_seen: float = -math.inf
    total_weight: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)
    devices: Counter[str] = field(default_factory=Counter)
    locations: Counter[str] = field(default_factory=Counter)
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    weekdays: list[int] = field(default_factory=lambda: [0] * 7)
    searches: deque[str] = field(default_factory=lambda: deque(maxlen=10))
    #: The latest search (issue 14.3): when it was made, and how many events came after it (its
    #: intent fades as the session moves on; see recommend/search_intent.py).
    last_search_ts: float = -math.inf
    since_search: int = 0
    categories: DecayedCounter = field(init=False)
    tags: DecayedCounter = field(init=False)

    def __post_init__(self) -> None:
        self.categories = DecayedCounter(self.interest_halflife)
        self.tags = DecayedCounter(self.interest_halflife)

    def update(
        self,
        event_type: str,
        weight: float,
        ts: float,
        category: str | None,
        tags: tuple[str, ...],
        context: dict[str, Any] | None,
        query: str | None,
    ) -> None:
        self.first_seen = min(self.first_seen, ts)
        self.last_seen = max(self.last_seen, ts)
        self.total_weight += weight
        self.counts[event_type] += 1
        if category:
            self.categories.add(category, weight, ts)
        if tags:
            share = weight / math.sqrt(len(tags))
            for tag in tags:
                self.tags.add(tag, share, ts)
        if context:
            device = context.get("device")
            if device:
                self.devices[str(device)] += 1
            location = context.get("location")
            if location:
                self.locations[str(location)] += 1
        moment = datetime.fromtimestamp(ts, tz=timezone.utc)
        self.hours[moment.hour] += 1
        self.weekdays[moment.weekday()] += 1
        if query:
            self.searches.append(query)
            self.last_search_ts, self.since_search = ts, 0
        else:
            self.since_search += 1

    def search_mark(self) -> tuple[str, float, int] | None:
        """(the latest query, its time, events since), or None before any search."""
        if not self.searches or not math.isfinite(self.last_search_ts):
            return None
        return self.searches[-1], self.last_search_ts, self.since_search

    def to_state(self) -> dict[str, Any]:
        """Everything needed to rebuild this profile exactly, as JSON-ready values."""
        return {
            "user_id": self.user_id,
            "first_seen": _finite(self.first_seen),
            "last_seen": _finite(self.last_seen),
            "total_weight": self.total_weight,
            "counts": dict(self.counts),
            "devices": dict(self.devices),
            "locations": dict(self.locations),
            "hours": self.hours,
            "weekdays": self.weekdays,
            "searches": list(self.searches),
            "last_search_ts": _finite(self.last_search_ts),
            "since_search": self.since_search,
            "categories": self.categories.to_state(),
            "tags": self.tags.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], interest_halflife: float) -> UserProfile:
        """Inverse of :meth:`to_state`."""
        profile = cls(state["user_id"], interest_halflife)
        first, last = state["first_seen"], state["last_seen"]
        profile.first_seen = math.inf if first is None else first
        profile.last_seen = -math.inf if last is None else last
        profile.total_weight = state["total_weight"]
        profile.counts.update(state["counts"])
        profile.devices.update(state["devices"])
        profile.locations.update(state["locations"])
        profile.hours = list(state["hours"])
        profile.weekdays = list(state["weekdays"])
        profile.searches.extend(state["searches"])
        last_search = state.get("last_search_ts")  # absent in profiles stored before issue 14.3
        profile.last_search_ts = -math.inf if last_search is None else last_search
        profile.since_search = int(state.get("since_search", 0))
        profile.categories.load_state(state["categories"])
        profile.tags.load_state(state["tags"])
        return profile

    @property
    def event_count(self) -> int:
        return sum(self.counts.values())

    def favourite_hour(self) -> int | None:
        return max(range(24), key=self.hours.__getitem__) if self.event_count else None

    def time_of_day(self) -> str | None:
        hour = self.favourite_hour()
        if hour is None:
            return None
        if 5 <= hour < 12:
            return "morning"
        if 12 <= hour < 17:
            return "afternoon"
        if 17 <= hour < 22:
            return "evening"
        return "night"

    def segments(self, now: float) -> list[str]:
        """Rule-based segments, evaluated at event time `now`."""
        segments: list[str] = []
        events = self.event_count
        if events == 0:
            return ["unknown"]
        if now - self.first_seen <= 7 * DAY:
            segments.append("new")
        if now - self.last_seen <= 7 * DAY:
            segments.append("active")
        elif now - self.last_seen > 30 * DAY:
            segments.append("dormant")
        purchases = self.counts.get("purchase", 0)
        if purchases:
            segments.append("buyer")
            if purchases >= 5:
                segments.append("loyal")
        elif events >= 20:
            segments.append("browser")
        if self.counts.get("add_to_cart", 0) > purchases:
            segments.append("cart_abandoner")
        if events >= 100:
            segments.append("power_user")
        if self.devices:
            device, count = self.devices.most_common(1)[0]
            if count * 2 > sum(self.devices.values()):
                segments.append(f"{device}_first")
        if self.time_of_day() == "night":
            segments.append("night_owl")
        return segments

    def to_dict(self, now: float, top: int = 10) -> dict[str, Any]:
        """The profile as JSON; `now` is the engine's clock (dormancy is measured against it).

        Interests are read as of the user's own last event (`interests_as_of`): their taste when
        last seen, comparable between users, and not all zeros for a user of an imported
        history who was last active years before its end."""
        device, location = _favourite(self.devices), _favourite(self.locations)
        as_of = self.last_seen if math.isfinite(self.last_seen) else now
        return {
            "user_id": self.user_id,
            "first_seen": _finite(self.first_seen),
            "last_seen": _finite(self.last_seen),
            "event_count": self.event_count,
            "total_weight": round(self.total_weight, 4),
            "counts_by_type": dict(self.counts),
            "interests": {
                "categories": [{"name": k, "score": significant(v)} for k, v in self.categories.top(as_of, top)],
                "tags": [{"name": k, "score": significant(v)} for k, v in self.tags.top(as_of, top)],
            },
            "interests_as_of": _finite(as_of),
            "favourite_device": device,
            "favourite_location": location,
            "favourite_hour": self.favourite_hour(),
            "time_of_day": self.time_of_day(),
            "devices": dict(self.devices),
            "hours": list(self.hours),
            "weekdays": list(self.weekdays),
            "recent_searches": list(self.searches),
            "last_search_at": _finite(self.last_search_ts),
            "events_since_search": self.since_search if self.searches else None,
            "segments": self.segments(now),
        }


def significant(value: float, digits: int = 4) -> float:
    """`value` to `digits` significant digits: a small decayed score stays visible (not 0.0)."""
    return float(f"{value:.{digits}g}")


def _favourite(counter: Counter[str]) -> str | None:
    """The most frequent key, equal counts by name (the same answer whatever order the counts
    were built in: per event, in bulk, from columns)."""
    return min(counter.items(), key=lambda kv: (-kv[1], kv[0]))[0] if counter else None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
