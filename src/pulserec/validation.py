"""Input rules: per-event-type value ranges and id/result-count limits from the settings, and
the base of every request body (strict JSON types, valid Unicode only).

They live below the engine, the API and the importers so that all three apply one rule: an
event the API refuses with a 422 is also a rejected row of a CSV or MovieLens import."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from pulserec.event_weights import MAX_DWELL_S
from pulserec.events import Event

#: The hard upper bounds the settings may not exceed (`max_id_len`, `max_n`): ids are stored in
#: indexes and sent in every answer, and a result list is scored and explained item by item.
ID_LEN_CAP = 1024
#: The least `max_id_len`: ids the server makes (event ids, recommendation ids) are 32 hex digits.
ID_LEN_MIN = 32
N_CAP = 10_000


#: `settings.max_id_len` of the server handling the current request (set per request by the
#: app's `SettingLimits` middleware; 128, the setting's default, outside a request). Request
#: models are module-level types, so the configured limit reaches their validators this way.
ID_LIMIT: ContextVar[int] = ContextVar("max_id_len", default=128)


#: An id: printable (no control characters) and not whitespace only. Surrounding whitespace is
#: stripped (" u1 " is the id "u1"), so an id of spaces alone would be empty: the schema states it
#: with a pattern that asks for one character neither control nor whitespace (the second class:
#: space and every other character Python's str.strip() removes; ECMA-262, Python's re and
#: pydantic's Rust regex read this pattern alike; tests/test_validation.py checks the class).
ID_PATTERN = (r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
              r"[^\x00-\x1f\x7f]*$")


def within_id_limit(value: str) -> str:
    """Validator of every id field and id path parameter."""
    limit = ID_LIMIT.get()
    if len(value) > limit:
        raise ValueError(f"must be at most {limit} characters (setting max_id_len)")
    return value


def dwell_problem(value: float | None) -> str | None:
    """Why a `dwell_seconds` is refused (None: it is fine or absent): the API, the engine and
    every import apply this one rule."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_DWELL_S:
        return f"dwell_seconds must be a number of seconds from 0 to {MAX_DWELL_S:,.0f}"
    return None


class InvalidInput(ValueError):
    """Input that breaks a rule from the settings; the API answers 422 naming `field`.

    `index` is the position of the event in a batch, when there is one."""

    def __init__(self, field: str, message: str, index: int | None = None, details: dict[str, Any] | None = None) -> None:
        self.field = field
        self.message = message
        self.index = index
        self.details = details or {}  # more about the error (a filter expression's position), in the 422
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class ValueRule:
    """What `value` means for one event type: its allowed range, and whether it must be given."""

    min: float | None = None
    max: float | None = None
    required: bool = False

    @classmethod
    def parse(cls, event_type: str, spec: Mapping[str, Any]) -> ValueRule:
        unknown = set(spec) - {"min", "max", "required"}
        if unknown:
            raise ValueError(f"event_values.{event_type}: unknown keys {', '.join(sorted(unknown))} (use min, max, required)")
        rule = cls(min=_bound(spec.get("min"), event_type, "min"), max=_bound(spec.get("max"), event_type, "max"),
                   required=bool(spec.get("required", False)))
        if rule.min is not None and rule.max is not None and rule.min > rule.max:
            raise ValueError(f"event_values.{event_type}: min {rule.min} exceeds max {rule.max}")
        return rule

    def describe(self, event_type: str) -> str:
        """The rule in words: "a rating event needs a value between 0.5 and 5"."""
        if self.min is not None and self.max is not None:
            bounds = f" between {self.min:g} and {self.max:g}"
        elif self.min is not None:
            bounds = f" of at least {self.min:g}"
        elif self.max is not None:
            bounds = f" of at most {self.max:g}"
        else:
            bounds = ""
        verb = "needs" if self.required else "takes"
        return f"a {event_type} event {verb} a value{bounds}"

    def problem(self, event_type: str, value: float | None) -> str | None:
        """Why `value` is not acceptable for this type, or None."""
        if value is None:
            return self.describe(event_type) if self.required else None
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            return self.describe(event_type)
        return None

    def bad(self, values: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`problem` for float values (NaN = missing): True where a value breaks the rule."""
        missing = np.isnan(values)
        out = missing if self.required else np.zeros(len(values), dtype=bool)
        with np.errstate(invalid="ignore"):
            if self.min is not None:
                out = out | (~missing & (values < self.min))
            if self.max is not None:
                out = out | (~missing & (values > self.max))
        return out


def _bound(value: Any, event_type: str, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"event_values.{event_type}.{name} must be a finite number")
    return float(value)


def value_rules(specs: Mapping[str, Mapping[str, Any]], event_types: Mapping[str, Any]) -> dict[str, ValueRule]:
    """Parsed `event_values` settings; every type named must be a known event type."""
    rules = {}
    for event_type, spec in specs.items():
        if event_type not in event_types:
            raise ValueError(f"event_values names an unknown event type {event_type!r} (known: {', '.join(sorted(event_types))})")
        if not isinstance(spec, Mapping):
            raise ValueError(f"event_values.{event_type} must be a table of min, max, required")
        rules[event_type] = ValueRule.parse(event_type, spec)
    return rules


def bad_values(types: np.ndarray, values: np.ndarray, rules: Mapping[str, ValueRule]) -> list[tuple[np.ndarray, str]]:
    """(mask of rows, message) per event type whose rule some rows break, for bulk imports."""
    out = []
    for event_type, rule in rules.items():
        of_type = types == event_type
        if of_type.any():
            mask = of_type & rule.bad(values)
            if mask.any():
                out.append((mask, rule.describe(event_type)))
    return out


def check_id_len(field: str, value: str | None, limit: int, index: int | None = None) -> None:
    if value is not None and len(value) > limit:
        raise InvalidInput(field, f"must be at most {limit} characters (setting max_id_len)", index)


def check_n(n: int, limit: int) -> None:
    if n > limit:
        raise InvalidInput("n", f"must be at most {limit} (setting max_n)")


# -- request bodies ----------------------------------------------------------------------


class UnknownEventType(InvalidInput):
    def __init__(self, index: int | None, event_type: str, known: Iterable[str]) -> None:
        self.event_type = event_type
        super().__init__("type", f"unknown event type {event_type!r}; known types: {', '.join(sorted(known))}", index)


#: Event fields holding ids (attribute, name in the API), checked against `settings.max_id_len`.
_ID_FIELDS = (("event_id", "event_id"), ("user_id", "user_id"), ("session_id", "session_id"),
              ("item_id", "item_id"), ("rec_id", "recommendation_id"))


def check_events(events: Iterable[Event], weights: Mapping[str, float], rules: Mapping[str, ValueRule], max_id: int) -> None:
    """The rules of the settings (known event types, per-type values, id lengths) over a batch;
    raises :class:`InvalidInput` naming the event's index and field."""
    for i, event in enumerate(events):
        if event.type not in weights:
            raise UnknownEventType(i, event.type, weights)
        rule = rules.get(event.type)
        problem = rule.problem(event.type, event.value) if rule else None
        if problem:
            raise InvalidInput("value", problem, i)
        problem = dwell_problem(event.dwell_seconds)
        if problem:
            raise InvalidInput("dwell_seconds", problem, i)
        for attr, name in _ID_FIELDS:
            check_id_len(name, getattr(event, attr), max_id, i)


def is_unicode(text: str) -> bool:
    """False for strings that cannot be stored or sent as UTF-8 (lone surrogates from JSON escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(key: Any) -> str:
    return str(key).encode("utf-8", "backslashreplace").decode()


def surrogate_path(value: Any, path: str = "") -> str | None:
    """Where in a JSON value a string (or key) is not valid Unicode ("attrs.k", "tags[1]"), or None.

    JSON's `\\udc00` escapes decode to lone surrogates, which UTF-8 cannot encode: once stored,
    they made every later read of the record a 500."""
    if isinstance(value, str):
        return None if is_unicode(value) else (path or "body")
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{_shown(key)}" if path else _shown(key)
            if isinstance(key, str) and not is_unicode(key):
                return where
            found = surrogate_path(item, where)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = surrogate_path(item, f"{path}[{i}]")
            if found:
                return found
    return None


class Body(BaseModel):
    """Base of every request body: strict JSON types, no unknown fields, valid Unicode only."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        if isinstance(data, dict):
            where = surrogate_path(data)
            if where:
                raise ValueError(f"{where} must be valid Unicode (no lone surrogates)")
        return data
