"""Merchandising controls of one app: named filters and promotions, validated, persisted in
the app's store (table `controls`) and held in memory for the ranking path."""

from __future__ import annotations

import threading
import time
from typing import Any

from pulserec.recommend.filters import check_expression
from pulserec.recommend.promotions import Promotion
from pulserec.store.controls import KINDS, ControlStore

#: The field of each kind that holds a filter expression (checked before it is stored).
EXPRESSION_FIELD = {"filter": "expression", "promotion": "filter"}


class Controls:
    """Named filters (`{"expression": "..."}`) and promotions (`{"filter", "share" or "boost",
    "starts", "ends"}`) by kind and name; expressions are parsed and typed before stored."""

    def __init__(self, store: ControlStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._bodies = {kind: store.all(kind) for kind in KINDS}

    def put(self, kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        field = EXPRESSION_FIELD[kind]
        check_expression(body[field], field)
        with self._lock:
            created = self.store.put(kind, name, body, time.time())
            self._bodies[kind] = self.store.all(kind)
            return {"name": name, **self._bodies[kind][name], "created": created}

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        body = self._bodies[kind].get(name)
        return None if body is None else {"name": name, **body}

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [{"name": name, **body} for name, body in sorted(self._bodies[kind].items())]

    def delete(self, kind: str, name: str) -> bool:
        with self._lock:
            deleted = self.store.delete(kind, name)
            self._bodies[kind] = self.store.all(kind)
            return deleted

    # -- what the ranking path reads --------------------------------------------------------
    def filter_text(self, name: str) -> str | None:
        """A named filter's expression (None if there is none by that name)."""
        body = self._bodies["filter"].get(name)
        return None if body is None else body["expression"]

    def running_promotions(self, at: float | None = None) -> tuple[Promotion, ...]:
        """The promotions running at `at` (the wall clock: campaigns are planned in real time)."""
        at = time.time() if at is None else at
        promos = (Promotion(name, b["filter"], b.get("share"), b.get("boost"), b.get("starts"), b.get("ends"))
                  for name, b in sorted(self._bodies["promotion"].items()))
        return tuple(p for p in promos if p.running(at))
