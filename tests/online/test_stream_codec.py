"""Stream messages: the same fields on Redis and Kafka; anything else is reported, not applied."""

from __future__ import annotations

import json

import pytest

from pulserec.events import Event
from pulserec.online.streams.codec import (MalformedMessage, decode_event, decode_message, encode_event,
                                           encode_message)

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
