"""Stream messages: the same fields on Redis and Kafka; anything else is reported, not applied."""

from __future__ import annotations

import json

import pytest

from pulserec.events import Event, events_from_frame
from pulserec.online.streams.codec import (MalformedMessage, decode_batch, decode_event, decode_fields, decode_message,
                                           encode_event, encode_message)

EVENT = Event("e1", None, "sku-1", "view", 1_700_000_000.5, None, "s-9", None, {"device": "mobile"}, None)


def test_an_event_survives_both_encodings():
    fields = encode_event(EVENT, 42)
    assert decode_event({k.encode(): v.encode() for k, v in fields.items()}) == (EVENT, 42)
    assert json.loads(encode_message(EVENT, 42)) == fields  # a Kafka value is the Redis entry's fields
    assert decode_message(encode_message(EVENT, 42)) == (EVENT, 42)


@pytest.mark.parametrize("value", [
    None, b"", b"\xff", b"[]", b'{"seq": "1"}', b'{"event": "{}", "seq": "x"}',
    b'{"event": "not json", "seq": "1"}',
    b'{"event": "{\\"event_id\\": \\"e\\", \\"type\\": \\"view\\", \\"ts\\": 1}", "seq": "1"}',  # no owner
    b'{"event": "{\\"event_id\\": \\"e\\", \\"user_id\\": \\"u\\", \\"type\\": \\"view\\", \\"ts\\": \\"1\\"}", "seq": "1"}',
    b'{"event": "{\\"event_id\\": \\"e\\", \\"user_id\\": 7, \\"type\\": \\"view\\", \\"ts\\": 1}", "seq": "1"}',
    b'{"event": "{\\"event_id\\": \\"e\\", \\"user_id\\": \\"u\\", \\"type\\": \\"view\\", \\"ts\\": 1, \\"x\\": 1}", "seq": "1"}',
])
def test_a_malformed_message_is_reported(value):
    with pytest.raises(MalformedMessage):
        decode_message(value)


BAD_EVENTS = [  # each breaks one rule of an event (the batch checks them per column)
    b"", b"\xff", b"[]", b"not json", b'{"event_id": "e"} x',
    b'{"event_id": "e", "type": "view", "ts": 1}',  # no owner
    b'{"event_id": "e", "user_id": "u", "type": "view", "ts": "1"}',
    b'{"event_id": "e", "user_id": "u", "type": "view", "ts": true}',
    b'{"event_id": "e", "user_id": 7, "type": "view", "ts": 1}',
    b'{"event_id": "", "user_id": "u", "type": "view", "ts": 1}',
    b'{"event_id": "e", "user_id": "u", "type": "view", "ts": 1, "x": 1}',
    b'{"event_id": "e", "user_id": "u", "type": "view", "ts": 1, "value": "5"}',
    b'{"event_id": "e", "user_id": "u", "type": "view", "ts": 1, "context": [1]}',
    b'{"event_id": "e", "user_id": "u", "type": "view", "ts": 1, "value": 1' + b"0" * 400 + b"}",
    b'{"event_id": "e", "user_id": "u", "type": "view", "ts": 1' + b"0" * 400 + b"}",
]


def good_events(n: int) -> list[Event]:
    return [EVENT._replace(event_id=f"e{i}", ts=EVENT.ts + i, user_id="u" if i % 2 else None, value=i % 3 or None,
                           dwell_seconds=4 if i == 1 else None, query="q" if i == 2 else None) for i in range(n)]


def test_a_batch_decodes_to_the_frame_of_its_events():
    events = good_events(6)
    fields = [encode_event(e, 10 + i) for i, e in enumerate(events)]
    frame, bad = decode_batch([(f"m{i}", f["event"].encode(), f["seq"].encode()) for i, f in enumerate(fields)])
    assert bad == []
    assert frame["seq"].tolist() == list(range(10, 16))
    for row, event in zip(frame.itertuples(index=False), events):
        for name in Event._fields:
            got, want = getattr(row, name), getattr(event, name)
            assert got == want or (want is None and (got is None or got != got)), (name, got, want)
    assert frame["ts"].dtype == frame["value"].dtype == frame["dwell_seconds"].dtype == "float64"


@pytest.mark.parametrize("bad", BAD_EVENTS)
def test_a_malformed_event_in_a_batch_is_named_and_the_others_kept(bad):
    events = good_events(3)
    messages = [(f"m{i}", encode_event(e, i + 1)["event"], str(i + 1)) for i, e in enumerate(events)]
    messages.insert(1, ("broken", bad, "7"))
    messages.append(("bad-seq", encode_event(events[0], 1)["event"], "x1"))
    frame, malformed = decode_batch(messages)
    assert sorted(message_id for message_id, _ in malformed) == ["bad-seq", "broken"]
    assert frame["event_id"].tolist() == ["e0", "e1", "e2"] and frame["seq"].tolist() == [1, 2, 3]
    with pytest.raises(MalformedMessage):  # the same rules, one message at a time
        decode_fields(bad, "7")


def test_a_decoded_batch_gives_back_its_events():
    """The per-event path of a small stream batch rebuilds the events from the frame."""
    events = good_events(5)
    frame, _ = decode_batch([(f"m{i}", encode_event(e, i + 1)["event"], str(i + 1)) for i, e in enumerate(events)])
    assert events_from_frame(frame) == events
