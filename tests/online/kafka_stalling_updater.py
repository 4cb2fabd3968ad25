"""A Kafka updater that applies its first batch and then hangs before committing it, for the
test that SIGKILLs it there. Usage: kafka_stalling_updater.py STATE_URL NAMESPACE STREAM_URL GROUP SESSION_MS"""

from __future__ import annotations

import sys

from pulserec.config import Settings
from pulserec.online.redis.state import RedisState
from pulserec.online.streams.kafka import KafkaUpdater
from pulserec.urls import KafkaUrl
from stalling_state import StallingState  # beside this script, on sys.path when it runs


def main(state_url: str, namespace: str, stream_url: str, group: str, session_ms: str) -> None:
    settings = Settings(state_url=state_url, state_namespace=namespace, stream_url=stream_url)
    url = KafkaUrl.parse(stream_url)
    worker = KafkaUpdater(StallingState(RedisState(settings)), url, url.topic_for(settings), group, "stalling",
                          block_ms=100, session_timeout_ms=int(session_ms))
    while True:
        worker.step()


if __name__ == "__main__":
    main(*sys.argv[1:])
