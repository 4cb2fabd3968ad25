"""A Redis Streams updater that applies its first batch and then hangs before acknowledging
it, for the test that SIGKILLs it there. Usage: redis_stalling_updater.py URL NAMESPACE CONSUMER"""

from __future__ import annotations

import sys

from pulserec.config import Settings
from pulserec.online.redis.state import RedisState
from pulserec.online.streams import make_updater
from stalling_state import StallingState  # beside this script, on sys.path when it runs


def main(url: str, namespace: str, consumer: str) -> None:
    settings = Settings(state_url=url, state_namespace=namespace, stream_url=url)
    worker = make_updater(settings, StallingState(RedisState(settings)), consumer=consumer, batch=7)
    while True:
        worker.step(block_ms=100)


if __name__ == "__main__":
    main(*sys.argv[1:])
