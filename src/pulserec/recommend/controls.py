"""Merchandising controls of one app: named filters (and promotions), validated, persisted in
the app's store and held in memory for the ranking path."""

from __future__ import annotations

import threading
import time
from typing import Any

from pulserec.recommend.filters import check_expression
from pulserec.store.controls import ControlStore


class Controls:
    """Named filters: `{"expression": "..."}` per name, checked (parsed and typed) before stored."""

    def __init__(self, store: ControlStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._filters = store.all("filter")

    # -- named filters ---------------------------------------------------------------------
    def put_filter(self, name: str, expression: str) -> dict[str, Any]:
        check_expression(expression, "expression")
        with self._lock:
            created = self.store.put("filter", name, {"expression": expression}, time.time())
            self._filters = self.store.all("filter")
            return {"name": name, **self._filters[name], "created": created}

    def filter(self, name: str) -> dict[str, Any] | None:
        body = self._filters.get(name)
        return None if body is None else {"name": name, **body}

    def filter_text(self, name: str) -> str | None:
        body = self._filters.get(name)
        return None if body is None else body["expression"]

    def filters(self) -> list[dict[str, Any]]:
        return [{"name": name, **body} for name, body in sorted(self._filters.items())]

    def delete_filter(self, name: str) -> bool:
        with self._lock:
            deleted = self.store.delete("filter", name)
            self._filters = self.store.all("filter")
            return deleted
