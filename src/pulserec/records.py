"""Plain records shared by every floor: the store writes them, the online state and models read them.

They live at the bottom so that `store/` need not import `online/` for a dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ItemRecord:
    """One catalogue item as stored and served; every field but `item_id` is optional metadata."""

    item_id: str
    title: str | None = None
    description: str | None = None
    category: str | None = None
    tags: tuple[str, ...] = ()
    price: float | None = None
    active: bool = True
    created_ts: float | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    #: In the catalogue (PUT or imported): False for an item only ever seen in events, which the
    #: catalogue policy (setting `serve_unknown_items`) keeps out of served lists.
    listed: bool = True
