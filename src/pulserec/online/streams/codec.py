"""How a stored event travels on the stream: the same two fields on every backend.

A Redis stream entry has the fields `event` (the event as JSON) and `seq` (its position in the
SQLite log, as decimal text); a Kafka message value is those two fields as one JSON object.
Decoding checks the shape, so a malformed message is reported (and skipped by the updater)
rather than applied. An updater decodes a whole batch at once into columns (`decode_batch`):
no `Event` object per message, and the checks run per column.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pulserec.events import Event

_TEXT_FIELDS = ("user_id", "item_id", "session_id", "query", "rec_id")


class MalformedMessage(ValueError):
    """A stream message that is not an encoded event."""


def encode_event(event: Event, seq: int) -> dict[str, str]:
    """The fields of one stream entry."""
    return {"event": json.dumps(event._asdict(), separators=(",", ":")), "seq": str(seq)}


def decode_event(fields: Mapping[bytes, bytes]) -> tuple[Event, int]:
    """A Redis stream entry's fields back into (event, seq)."""
    return decode_fields(fields.get(b"event"), fields.get(b"seq"))


def encode_message(event: Event, seq: int) -> bytes:
    """A Kafka message value: the entry's fields as one JSON object."""
    return json.dumps(encode_event(event, seq), separators=(",", ":")).encode()


def decode_message(value: bytes | None) -> tuple[Event, int]:
    """A Kafka message value back into (event, seq)."""
    return decode_fields(*message_fields(value))


def entry_fields(fields: Mapping[bytes, bytes]) -> tuple[Any, Any]:
    """A Redis stream entry's (event JSON, seq text), still undecoded."""
    return fields.get(b"event"), fields.get(b"seq")


def message_fields(value: bytes | None) -> tuple[Any, Any]:
    """A Kafka message value's (event JSON, seq text), still undecoded."""
    try:
        fields = json.loads(value) if value else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise MalformedMessage("not a JSON object with 'event' and 'seq'")
    return fields.get("event"), fields.get("seq")


def decode_fields(event_json: str | bytes | None, seq: str | bytes | None) -> tuple[Event, int]:
    """Check and rebuild (event, seq) from the two fields; MalformedMessage if they are not one."""
    data, number = _parsed(event_json, seq)
    return Event(**_checked(data)), number


_scan = json.JSONDecoder().scan_once


def _parsed(event_json: str | bytes | None, seq: str | bytes | None) -> tuple[Any, int]:
    """(the event's decoded JSON, seq as a number), unchecked beyond being JSON and digits.

    The C scanner is called directly: `json.loads`' Python layers cost ~2 us of the ~2.6 an
    event (measured on MovieLens events); anything it does not take whole goes to `json.loads`
    for the real error (or leading whitespace)."""
    if isinstance(seq, bytes):
        seq = seq.decode("ascii", "replace")
    if not isinstance(seq, str) or not (seq.isascii() and seq.isdigit()):
        raise MalformedMessage(f"bad seq {seq!r}")
    try:
        text = event_json.decode() if isinstance(event_json, bytes) else event_json
        if not text or not isinstance(text, str):
            return None, int(seq)
        try:
            data, end = _scan(text, 0)
            if end != len(text):
                raise ValueError("more after the value")
        except (StopIteration, ValueError):
            data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedMessage(f"event is not JSON: {exc}") from None
    return data, int(seq)


_FIELDS = frozenset(Event._fields)
_NUMBERS = (int, float)  # exact types: JSON gives no subclasses, and bool must not count


def _checked(data: Any) -> dict[str, Any]:
    """The decoded fields, checked (one `type()` test each), every field present, `ts` a float."""
    if type(data) is not dict or not _FIELDS.issuperset(data):
        raise MalformedMessage("event is not an object with the fields of an event")
    event_id, kind, ts = data.get("event_id"), data.get("type"), data.get("ts")
    if type(event_id) is not str or not event_id or type(kind) is not str or not kind:
        raise MalformedMessage("event lacks an event_id or a type")
    if type(ts) not in _NUMBERS:
        raise MalformedMessage("event lacks a numeric ts")
    for name in _TEXT_FIELDS:
        text = data.get(name)
        if text is not None and type(text) is not str:
            raise MalformedMessage("event has a non-text id")
    if not (data.get("user_id") or data.get("session_id")):
        raise MalformedMessage("event has neither a user_id nor a session_id")
    value, context, dwell = data.get("value"), data.get("context"), data.get("dwell_seconds")
    if value is not None and type(value) not in _NUMBERS:
        raise MalformedMessage("event value is not a number")
    if context is not None and type(context) is not dict:
        raise MalformedMessage("event context is not an object")
    if dwell is not None and type(dwell) not in _NUMBERS:
        raise MalformedMessage("event dwell_seconds is not a number")
    try:
        for number in (value, dwell):
            if number is not None:
                float(number)
        return {**_ABSENT, **data, "ts": float(ts)}
    except OverflowError:
        raise MalformedMessage("event has a number out of the float range") from None


_ABSENT = dict.fromkeys(Event._fields)
_TEXT = {str, type(None)}
_NUMBER_OR_NONE = {int, float, type(None)}
_NUMERIC = ("value", "dwell_seconds")


def decode_batch(messages: Sequence[tuple[str, Any, Any]]) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """(message id, event JSON, seq text) triples -> (a stored-event frame of the well-formed
    ones, in order: `seq` then `Event._fields`, context as dicts; [(message id, why)] of the
    others).

    The checks of `_checked` run per column over the batch (C-level `set(map(type, ...))`:
    ~0.5 us an event instead of ~3); a batch that fails any of them is checked event by event,
    which names each malformed message and keeps the others."""
    data, seqs, bad = [], [], []
    for message_id, event_json, seq in messages:
        try:
            parsed, number = _parsed(event_json, seq)
        except MalformedMessage as exc:
            bad.append((message_id, str(exc)))
            continue
        data.append((message_id, parsed))
        seqs.append(number)
    columns = _columns([parsed for _, parsed in data])
    if columns is None:  # some event is malformed: find which, one by one
        good, good_seqs = [], []
        for (message_id, parsed), number in zip(data, seqs):
            try:
                good.append(_checked(parsed))
                good_seqs.append(number)
            except MalformedMessage as exc:
                bad.append((message_id, str(exc)))
        columns, seqs = _columns(good), good_seqs
        assert columns is not None, "the column checks refused events that pass the event checks"
    return _frame(columns, seqs), bad


def _columns(data: list[Any]) -> dict[str, list[Any]] | None:
    """The events' fields as columns if every one passes `_checked`'s rules, else None."""
    if not data:
        return {name: np.empty(0) if name == "ts" or name in _NUMERIC else [] for name in Event._fields}
    if set(map(type, data)) != {dict} or not _FIELDS.issuperset(set().union(*data)):
        return None
    columns = {name: [d.get(name) for d in data] for name in Event._fields}
    for name in ("event_id", "type"):
        if set(map(type, columns[name])) != {str} or not all(columns[name]):
            return None
    if not set(map(type, columns["ts"])) <= {int, float}:
        return None
    if any(not set(map(type, columns[name])) <= _TEXT for name in _TEXT_FIELDS):
        return None
    if not all(u or s for u, s in zip(columns["user_id"], columns["session_id"])):
        return None
    if any(not set(map(type, columns[name])) <= _NUMBER_OR_NONE for name in _NUMERIC):
        return None
    if not set(map(type, columns["context"])) <= {dict, type(None)}:
        return None
    try:  # numbers as float64 (NaN for none), as the store's frames hold them
        columns["ts"] = np.array(columns["ts"], dtype=np.float64)
        for name in _NUMERIC:
            columns[name] = np.array([np.nan if v is None else v for v in columns[name]], dtype=np.float64)
    except OverflowError:  # an integer past the float range
        return None
    return columns


def _frame(columns: dict[str, Any], seqs: list[int]) -> pd.DataFrame:
    """Columns as a frame like the store's; text and context as object columns, given as Series
    of dtype object (pandas would otherwise infer string arrays: ~3x the cost of the frame)."""
    out: dict[str, Any] = {"seq": np.array(seqs, dtype=np.int64)}
    for name in Event._fields:
        values = columns[name]
        out[name] = values if isinstance(values, np.ndarray) else pd.Series(values, dtype=object)
    return pd.DataFrame(out)
