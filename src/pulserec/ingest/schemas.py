"""Request bodies of the ingest API, validated field by field (errors name the field)."""

from __future__ import annotations

import math
import re
import time
import uuid
from datetime import datetime
from typing import Annotated, Any

from annotated_types import Gt, Le
from pydantic import AfterValidator, BaseModel, BeforeValidator, WithJsonSchema, ConfigDict, Field, StringConstraints, field_validator, model_validator

from pulserec.event_weights import MAX_DWELL_S
from pulserec.events import Event
from pulserec.validation import ID_LEN_CAP, ID_PATTERN, Body, is_unicode, within_id_limit

#: The schema's bound on ids; the engine enforces `settings.max_id_len` (default 128) below it,
#: and the app writes that setting into its OpenAPI document.
MAX_ID = ID_LEN_CAP
#: THE id type, of bodies and (serving/routes/deps.py) paths and query strings alike: an opaque
#: printable string, not whitespace only (validation.ID_PATTERN), stored without surrounding
#: whitespace. The pattern and lengths are checked on the text as sent, as the schema states
#: them, and the stripping comes after (it can never leave an empty id).
Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN),
               AfterValidator(within_id_limit), AfterValidator(str.strip)]
ShortText = Annotated[str, StringConstraints(max_length=256)]


#: ISO-8601 text starts with a year from 1971 on: then no time-zone offset can put it before
#: 1970 (which check_timestamp refuses), so the OpenAPI pattern and the validator agree exactly.
YEAR_PATTERN = r"^(197[1-9]|19[89][0-9]|[2-9][0-9]{3})-"


def _iso_datetime(value: Any) -> Any:
    """ISO-8601 text only: pydantic's lax datetime would also read "1700000000" (a number sent
    as a string) as Unix seconds, which strict mode exists to refuse."""
    if isinstance(value, str):
        if not re.match(YEAR_PATTERN, value):
            raise ValueError("must be Unix seconds (a JSON number) or ISO-8601 text from 1971 on")
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
        except ValueError:
            raise ValueError("must be Unix seconds (a JSON number) or ISO-8601 text") from None
    return value


#: Models are strict (JSON types as documented: no "1.5" for a number, no 0 for a boolean);
#: a datetime still parses from ISO-8601 text, since JSON has no datetime type.
IsoDatetime = Annotated[datetime, BeforeValidator(_iso_datetime),
                        WithJsonSchema({"type": "string", "format": "date-time", "pattern": YEAR_PATTERN})]
#: Unix seconds: positive (the schema's exclusiveMinimum is check_timestamp's lower bound).
EpochSeconds = Annotated[float, Gt(0)]
#: The last second of year 9999, the latest time ISO-8601 text can state: a creation time's bound.
LATEST_TS = 253_402_300_799.0
CreatedSeconds = Annotated[float, Gt(0), Le(LATEST_TS)]
EARLIEST_TS = 0.0
FUTURE_SLACK = 86_400.0
#: Why a timestamp past now + FUTURE_SLACK is refused (a rule of the clock, not of the schema).
IN_THE_FUTURE = "more than one day in the future"
MAX_CONTEXT_KEYS = 32
MAX_TAGS = 64
MAX_KEY_LEN = 64
MAX_TEXT_VALUE = 256


def check_timestamp(value: float) -> float:
    if not math.isfinite(value) or value <= EARLIEST_TS:
        raise ValueError("timestamp must be a positive number of seconds since 1970-01-01")
    if value > time.time() + FUTURE_SLACK:
        raise ValueError(f"timestamp is {IN_THE_FUTURE}")
    return value


def epoch_seconds(value: float | datetime | None) -> float | None:
    """Unix seconds from a number or an ISO-8601 datetime, checked by :func:`check_timestamp`."""
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.timestamp()
    return check_timestamp(float(value))


def creation_seconds(value: float | datetime | None) -> float | None:
    """Unix seconds of a creation time: any time its type allows, also a future one (a product
    that launches next month); the type's bounds are exactly the OpenAPI document's."""
    if value is None:
        return None
    return value.timestamp() if isinstance(value, datetime) else float(value)


def _small_flat_dict(value: dict[str, Any] | None, what: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if len(value) > MAX_CONTEXT_KEYS:
        raise ValueError(f"{what} has more than {MAX_CONTEXT_KEYS} keys")
    for key, item in value.items():
        if not is_unicode(key):
            raise ValueError(f"{what} keys must be valid Unicode (no lone surrogates)")
        if len(key) > MAX_KEY_LEN:
            raise ValueError(f"{what} key {key[:20]!r}... is longer than {MAX_KEY_LEN} characters")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{what}.{key} must be finite")
        if isinstance(item, str) and len(item) > MAX_TEXT_VALUE:
            raise ValueError(f"{what}.{key} is longer than {MAX_TEXT_VALUE} characters")
    return value


#: `_small_flat_dict`'s rules as JSON Schema (OpenAPI): a body the document allows is not refused
#: for them. (Lone surrogates, also refused, are not JSON Schema's to state.)
FLAT_DICT_SCHEMA: dict[str, Any] = {
    "maxProperties": MAX_CONTEXT_KEYS, "propertyNames": {"maxLength": MAX_KEY_LEN},
    "additionalProperties": {"anyOf": [{"type": "string", "maxLength": MAX_TEXT_VALUE}, {"type": "number"},
                                       {"type": "boolean"}, {"type": "null"}]}}


Scalar = str | int | float | bool | None


class Context(BaseModel):
    """Where and how the event happened. Extra keys are kept (max 32, scalar values)."""

    model_config = ConfigDict(extra="allow", strict=True, json_schema_extra=FLAT_DICT_SCHEMA)
    device: ShortText | None = Field(None, examples=["mobile"])
    location: ShortText | None = Field(None, examples=["Berlin"])

    @model_validator(mode="after")
    def _check_extras(self) -> Context:
        extras = self.model_extra or {}
        for key, item in extras.items():
            if not isinstance(item, Scalar):  # type: ignore[arg-type]
                raise ValueError(f"context.{key} must be a string, number or boolean")
        _small_flat_dict(self.model_dump(exclude_none=True), "context")
        return self


class EventIn(Body):
    """One behaviour event. `user_id` or `session_id` is required; `item_id` too unless type is search."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "event_id": "e-1001",
                    "user_id": "u42",
                    "item_id": "sku-123",
                    "type": "view",
                    "timestamp": 1732521600,
                    "context": {"device": "mobile", "location": "Berlin"},
                    "dwell_seconds": 42.5,
                }
            ]
        },
    )

    event_id: Id | None = Field(None, description="Idempotency key: an event_id already stored is ignored.")
    user_id: Id | None = None
    session_id: Id | None = None
    item_id: Id | None = None
    type: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    timestamp: EpochSeconds | IsoDatetime | None = Field(None, description="Unix seconds or ISO-8601; default: now.")
    value: float | None = Field(None, description="Rating, price paid or other numeric value.", ge=-1e9, le=1e9)
    query: Annotated[str, StringConstraints(max_length=512)] | None = None
    context: Context | None = None
    recommendation_id: Id | None = Field(None, description="The recommendation this event responds to.")
    dwell_seconds: float | None = Field(
        None, ge=0, le=MAX_DWELL_S, examples=[42.5],
        description="Seconds the item's page was visible (0 to 86,400); scales a view's weight by the dwell curve "
                    "(settings dwell_*: bounces count little, long reads more, capped).")

    _timestamp = field_validator("timestamp")(classmethod(lambda cls, v: epoch_seconds(v)))

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("value must be finite")
        return value

    @model_validator(mode="after")
    def _who_and_what(self) -> EventIn:
        if self.user_id is None and self.session_id is None:
            raise ValueError("an event needs a user_id or a session_id")
        if self.item_id is None and self.type != "search":
            raise ValueError(f"item_id is required for events of type {self.type!r}")
        if self.type == "search" and self.item_id is None and not self.query:
            raise ValueError("a search event needs a query or an item_id")
        return self

    def to_event(self, now: float | None = None) -> Event:
        ts = self.timestamp if self.timestamp is not None else (now or time.time())
        context = self.context.model_dump(exclude_none=True) if self.context else None
        return Event(
            event_id=self.event_id or uuid.uuid4().hex,
            user_id=self.user_id,
            item_id=self.item_id,
            type=self.type,
            ts=float(ts),  # type: ignore[arg-type]
            value=self.value,
            session_id=self.session_id,
            query=self.query,
            context=context or None,
            rec_id=self.recommendation_id,
            dwell_seconds=self.dwell_seconds,
        )


class ItemIn(Body):
    """Catalogue entry. PUT replaces the item's metadata."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"title": "Trail running shoe", "category": "shoes", "tags": ["running", "outdoor"], "price": 89.9}
            ]
        },
    )
    title: Annotated[str, StringConstraints(max_length=512)] | None = None
    description: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    category: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    tags: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=MAX_TAGS)
    price: float | None = Field(None, ge=0, le=1e9)
    active: bool = True
    created_at: CreatedSeconds | IsoDatetime | None = None
    attrs: dict[str, Scalar] | None = Field(None, json_schema_extra=FLAT_DICT_SCHEMA)

    _created = field_validator("created_at")(classmethod(lambda cls, v: creation_seconds(v)))

    @field_validator("price")
    @classmethod
    def _price(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("price must be finite")
        return value

    @field_validator("attrs")
    @classmethod
    def _attrs(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _small_flat_dict(value, "attrs")


class UserIn(Body):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{"attrs": {"country": "DE", "plan": "pro"}}]})
    attrs: dict[str, Scalar] = Field(default_factory=dict, json_schema_extra=FLAT_DICT_SCHEMA)
    created_at: CreatedSeconds | IsoDatetime | None = None

    _attrs = field_validator("attrs")(classmethod(lambda cls, v: _small_flat_dict(v, "attrs")))
    _created = field_validator("created_at")(classmethod(lambda cls, v: creation_seconds(v)))
