"""Where the event stream lives: which backend a `stream_url` selects, and the stream's name.

`redis://`, `rediss://` and `unix://` URLs select Redis Streams; `kafka://host:port[,host:port]`
selects Kafka, optionally with `?topic=NAME` (default: the stream key below) and
`?partitions=N` (used when the topic is created; default 1). Everything here is plain
parsing, so configuration can be validated without a Kafka client library installed; it sits
on the bottom floor beside `config.py`, which validates its URLs with it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
KAFKA_SCHEME = "kafka://"
MAX_PARTITIONS = 10_000

_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_KAFKA_FORM = "kafka://host:port[,host:port...][?topic=NAME&partitions=N]"


class Namespaced(Protocol):
    """What the stream's name depends on (`Settings` has it); a Protocol so that this module
    does not import `config`, which imports this one."""

    state_namespace: str


def stream_key(settings: Namespaced) -> str:
    """`<namespace>.events`: outside the `<namespace>:*` keys that a state reset deletes; also
    the default Kafka topic."""
    return f"{settings.state_namespace}.events"


def is_kafka_url(url: str) -> bool:
    return url.startswith(KAFKA_SCHEME)


def check_state_url(url: str) -> None:
    """Raise ValueError unless `url` names a Redis server (the shared online state)."""
    if not url.startswith(REDIS_SCHEMES):
        raise ValueError(f"state_url must be a redis:// (or rediss://, unix://) URL, got {url!r}")


def check_stream_url(url: str) -> None:
    """Raise ValueError, saying what is wrong, unless `url` names a Redis or a Kafka stream."""
    if url.startswith(REDIS_SCHEMES):
        return
    if is_kafka_url(url):
        KafkaUrl.parse(url)
        return
    raise ValueError(f"stream_url must be a redis:// (or rediss://, unix://) URL for Redis Streams or "
                     f"{_KAFKA_FORM} for Kafka, got {url!r}")


def check_topic(topic: str) -> str:
    """`topic` if Kafka accepts it as a topic name, else ValueError."""
    if not _TOPIC.match(topic) or topic in (".", ".."):
        raise ValueError(f"invalid Kafka topic {topic!r}: use 1-249 letters, digits, '.', '_' or '-' "
                         "(set one with kafka://...?topic=NAME)")
    return topic


@dataclass(frozen=True)
class KafkaUrl:
    """A parsed `kafka://` stream URL."""

    url: str
    bootstrap: str  # "host:port,host:port", as librdkafka's bootstrap.servers wants it
    topic: str | None = None
    partitions: int = 1

    @classmethod
    def parse(cls, url: str) -> KafkaUrl:
        """Parse and validate; every problem is a ValueError that names the URL and the fix."""
        if not is_kafka_url(url):
            raise ValueError(f"not a Kafka URL (expected {_KAFKA_FORM}): {url!r}")
        rest = url[len(KAFKA_SCHEME):]
        authority, _, query = rest.partition("?")
        if authority.endswith("/"):
            authority = authority[:-1]
        if "@" in authority:
            raise ValueError(f"Kafka URL {url!r}: credentials are not supported (plaintext brokers only)")
        if "/" in authority or "#" in authority:
            raise ValueError(f"Kafka URL {url!r} has a path; expected {_KAFKA_FORM}")
        if not authority:
            raise ValueError(f"Kafka URL {url!r} names no broker; expected {_KAFKA_FORM}")
        hosts = [_check_host_port(part, url) for part in authority.split(",")]
        options = _query_options(query, url)
        topic = check_topic(options["topic"]) if "topic" in options else None
        partitions = _partitions(options.get("partitions", "1"), url)
        return cls(url, ",".join(hosts), topic, partitions)

    def topic_for(self, settings: Namespaced) -> str:
        """The topic to use: `?topic=` if given, else the stream key of the namespace."""
        return self.topic or check_topic(stream_key(settings))


def _check_host_port(part: str, url: str) -> str:
    host, sep, port = part.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"Kafka URL {url!r}: {part!r} is not host:port")
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise ValueError(f"Kafka URL {url!r}: bad port in {part!r} (1-65535)")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"Kafka URL {url!r}: bad IPv6 address in {part!r}") from None
    elif not _HOSTNAME.match(host):
        raise ValueError(f"Kafka URL {url!r}: bad host name in {part!r}")
    return f"{host}:{int(port)}"


def _query_options(query: str, url: str) -> dict[str, str]:
    if not query:
        return {}
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ValueError(f"Kafka URL {url!r}: cannot parse the query {query!r}") from None
    unknown = sorted(set(parsed) - {"topic", "partitions"})
    if unknown:
        raise ValueError(f"Kafka URL {url!r}: unknown option(s) {', '.join(unknown)} (known: topic, partitions)")
    repeated = sorted(name for name, values in parsed.items() if len(values) > 1)
    if repeated:
        raise ValueError(f"Kafka URL {url!r}: {', '.join(repeated)} given more than once")
    return {name: values[0] for name, values in parsed.items()}


def _partitions(raw: str, url: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PARTITIONS:
        raise ValueError(f"Kafka URL {url!r}: partitions must be a whole number from 1 to {MAX_PARTITIONS}, got {raw!r}")
    return int(raw)
