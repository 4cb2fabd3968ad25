"""Stream URLs: redis:// picks Redis Streams, kafka:// picks Kafka; anything else is one clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pulserec.config import Settings
from pulserec.urls import KafkaUrl

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_a_kafka_url_names_brokers_topic_and_partitions(tmp_path):
    url = KafkaUrl.parse("kafka://10.0.0.1:9092,broker-2.internal:9093,[::1]:9094/?topic=shop.events&partitions=6")
    assert (url.bootstrap, url.topic, url.partitions) == ("10.0.0.1:9092,broker-2.internal:9093,[::1]:9094",
                                                          "shop.events", 6)
    plain = KafkaUrl.parse("kafka://127.0.0.1:9092")
    assert (plain.topic, plain.partitions) == (None, 1)
    assert plain.topic_for(Settings(state_namespace="shop")) == "shop.events"  # like the Redis stream key
    assert Settings.load(tmp_path, stream_url="kafka://127.0.0.1:9092").stream_url == "kafka://127.0.0.1:9092"
    assert Settings.load(tmp_path, stream_url="redis://127.0.0.1:6379/0").stream_url == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(("url", "complaint"), [
    ("kafka://", "names no broker"),
    ("kafka://localhost", "is not host:port"),
    ("kafka://localhost:0", "bad port"),
    ("kafka://localhost:99999", "bad port"),
    ("kafka://bad_host!:9092", "bad host name"),
    ("kafka://[not-ipv6]:9092", "bad IPv6 address"),
    ("kafka://localhost:9092,", "is not host:port"),
    ("kafka://localhost:9092/some/path", "has a path"),
    ("kafka://localhost:9092?topic=no%20spaces", "invalid Kafka topic"),
    ("kafka://localhost:9092?topic=..", "invalid Kafka topic"),
    ("kafka://localhost:9092?partitions=0", "partitions must be a whole number"),
    ("kafka://localhost:9092?partitions=many", "partitions must be a whole number"),
    ("kafka://localhost:9092?topic=a&topic=b", "given more than once"),
    ("kafka://localhost:9092?acks=0", "unknown option"),
    ("kafka://user:secret@localhost:9092", "credentials are not supported"),
    ("amqp://localhost:5672", "must be a redis:// .* or kafka://host:port"),
])
def test_bad_stream_urls_are_rejected_clearly(tmp_path, url, complaint):
    with pytest.raises(ValueError, match=complaint):
        Settings.load(tmp_path, stream_url=url)


def test_a_namespace_that_is_no_topic_name_asks_for_one():
    with pytest.raises(ValueError, match=r"invalid Kafka topic 'a b.events'.*\?topic=NAME"):
        KafkaUrl.parse("kafka://127.0.0.1:9092").topic_for(Settings(state_namespace="a b"))


def test_the_state_must_still_be_redis(tmp_path):
    with pytest.raises(ValueError, match="state_url must be a redis://"):
        Settings.load(tmp_path, state_url="kafka://127.0.0.1:9092")


def test_the_updater_command_rejects_a_bad_kafka_url(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pulserec.cli.main", "updater", "--state", "redis://127.0.0.1:1/0",
                             "--stream", "kafka://localhost", "--data-dir", str(tmp_path)],
                            env={**os.environ, "PYTHONPATH": SRC, "COLUMNS": "200"}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "error: Kafka URL 'kafka://localhost': 'localhost' is not host:port" in result.stdout + result.stderr
