"""Typed results of the Python client that still read like the JSON they came from.

`answer.items[0].reason` (typed) and `answer["items"][0]["reason"]` (the raw JSON) both work,
so code written against the dict-returning client keeps working."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

R = TypeVar("R", bound="ApiResult")


def _each(kind: type) -> Any:
    """A list field whose JSON objects become `kind` results."""
    return field(default_factory=list, metadata={"each": kind})


@dataclass(eq=False)
class ApiResult:
    """Base of typed results: attributes for the documented fields, `[...]` for the raw JSON."""

    raw: dict[str, Any] = field(default_factory=dict, repr=False, kw_only=True)

    @classmethod
    def from_json(cls: type[R], data: dict[str, Any]) -> R:
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__} expects a JSON object, got {type(data).__name__}")
        values: dict[str, Any] = {}
        for spec in fields(cls):
            if spec.name == "raw" or spec.name not in data:
                continue
            value = data[spec.name]
            kind = spec.metadata.get("each")
            if kind is not None and isinstance(value, list):
                value = [kind.from_json(v) for v in value]
            values[spec.name] = value
        return cls(**values, raw=data)

    def to_dict(self) -> dict[str, Any]:
        return self.raw

    # dict-style access to the raw JSON, for code written against the dict-returning client
    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.raw

    def keys(self) -> Any:
        return self.raw.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ApiResult):
            return type(self) is type(other) and self.raw == other.raw
        if isinstance(other, dict):
            return self.raw == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


@dataclass(eq=False)
class IngestResult(ApiResult):
    """Answer of POST /events."""

    accepted: int = 0
    duplicates: int = 0
    event_ids: list[str] = field(default_factory=list)


@dataclass(eq=False)
class Recommendation(ApiResult):
    """One recommended item, with the reason it was chosen."""

    item_id: str = ""
    score: float = 0.0
    reason: str = ""
    source: str = ""
    title: str | None = None
    category: str | None = None


@dataclass(eq=False)
class Recommendations(ApiResult):
    """A recommendation list (for a user, a session, or items similar to `item_id`)."""

    items: list[Recommendation] = _each(Recommendation)
    strategy: str | None = None
    cold_start: bool = False
    history_size: int = 0
    recommendation_id: str | None = None
    generated_at: float | None = None
    user_id: str | None = None
    session_id: str | None = None
    item_id: str | None = None

    @property
    def item_ids(self) -> list[str]:
        return [r.item_id for r in self.items]


@dataclass(eq=False)
class Profile(ApiResult):
    """A user's profile: decayed interests, counts by type, habits, session, segments."""

    user_id: str = ""
    event_count: int = 0
    first_seen: float | None = None
    last_seen: float | None = None
    counts_by_type: dict[str, int] = field(default_factory=dict)
    interests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    segments: list[str] = field(default_factory=list)
    favourite_device: str | None = None
    favourite_location: str | None = None
    time_of_day: str | None = None
    recent_items: list[dict[str, Any]] = field(default_factory=list)
    session: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    def category_scores(self) -> dict[str, float]:
        """Interest score by category, strongest first."""
        return {c["name"]: c["score"] for c in self.interests.get("categories", [])}


@dataclass(eq=False)
class Item(ApiResult):
    """A catalogue item with its popularity."""

    item_id: str = ""
    title: str | None = None
    description: str | None = None
    category: str | None = None
    tags: list[str] = field(default_factory=list)
    price: float | None = None
    active: bool = True
    created_at: float | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    events: int = 0
    popularity: float = 0.0


@dataclass(eq=False)
class ItemSearch(Recommendations):
    """Items matching a shopper's query, ranked for them (GET /search)."""

    query: str = ""


@dataclass(eq=False)
class SearchResults(ApiResult):
    """Users and items matching an operator's search (GET /dashboard/api/search)."""

    query: str = ""
    users: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
