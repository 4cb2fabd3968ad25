"""Kept for existing imports: the event stream now lives in :mod:`pulserec.online.streams`
(Redis Streams in `streams.redis_streams`, Kafka in `streams.kafka`)."""

from __future__ import annotations

from pulserec.online.streams import make_publisher
from pulserec.online.streams.codec import decode_event, encode_event
from pulserec.online.streams.redis_streams import EventPublisher, StreamUpdater
from pulserec.online.streams.updater import DEFAULT_GROUP, Applier, UpdaterStats
from pulserec.urls import stream_key

__all__ = ["DEFAULT_GROUP", "Applier", "EventPublisher", "StreamUpdater", "UpdaterStats", "decode_event",
           "encode_event", "make_publisher", "stream_key"]
