"""The uvicorn access log without personal ids, when user ids are pseudonymised.

uvicorn logs every request line, `PUT /users/alice%40example.com`, so a log file would undo
the pseudonymisation of the store. :class:`RedactIds` rewrites the line before any handler
formats it: user and session ids in the path become their pseudonyms (the ids the store uses,
so an operator can still follow one user through the log), and query-string values that may
name or describe a person become `-`."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, unquote, urlencode

from pulserec.store.pseudonym import Pseudonymizer

ACCESS_LOGGER = "uvicorn.access"
#: uvicorn's access record: args = (client address, method, path with query, HTTP version, status).
_PATH_ARG = 2
#: A user or session id in a path: /users/{id}, /sessions/{id}, /dashboard/users/{id}.
_ID_SEGMENT = re.compile(r"(/(users|sessions)/)([^/?#]+)")
#: Query parameters whose values never name or describe a person (all others are redacted:
#: `q` of /search may be a user id, `location`/`device` describe one).
SAFE_PARAMS = frozenset({"n", "strategy", "category", "exclude_seen", "min_price", "max_price", "experiment",
                         "limit", "kind", "window", "top"})


def redact_path(path: str, pseudonym: Pseudonymizer) -> str:
    """`path` (with its query string) with user/session ids pseudonymised and unsafe values dropped."""
    path, sep, query = path.partition("?")

    def replace(match: re.Match[str]) -> str:
        raw = unquote(match.group(3))
        return match.group(1) + (pseudonym(raw) if match.group(2) == "users" else pseudonym.session(raw))

    path = _ID_SEGMENT.sub(replace, path)
    if sep:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(name, value if name in SAFE_PARAMS else "-") for name, value in pairs], safe="-,")
    return path + sep + query


class RedactIds(logging.Filter):
    """Rewrites uvicorn's access records in place (see the module docstring)."""

    def __init__(self, pseudonym: Pseudonymizer) -> None:
        super().__init__()
        self.pseudonym = pseudonym

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > _PATH_ARG and isinstance(args[_PATH_ARG], str):
            record.args = (*args[:_PATH_ARG], redact_path(args[_PATH_ARG], self.pseudonym), *args[_PATH_ARG + 1:])
        return True


def redact_access_log(pseudonym: Pseudonymizer) -> RedactIds:
    """Install the filter on uvicorn's access logger; the caller removes it with `remove_filter`."""
    redact = RedactIds(pseudonym)
    logging.getLogger(ACCESS_LOGGER).addFilter(redact)
    return redact
