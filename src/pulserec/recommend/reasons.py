"""Human-readable explanations ("because you viewed X", "trending in shoes")."""

from __future__ import annotations

from pulserec.models.base import Reason
from pulserec.online.catalog import Catalog

VERBS = {
    "view": "viewed",
    "click": "clicked",
    "search": "searched for",
    "add_to_cart": "added to your cart",
    "purchase": "bought",
    "rating": "rated",
    "like": "liked",
    "share": "shared",
}


def render(reason: Reason | None, catalog: Catalog, strategy: str) -> str:
    if reason is None:
        return f"recommended by {strategy}"
    if reason.kind == "history" and reason.item is not None:
        verb = VERBS.get(reason.event_type or "", "interacted with")
        return f"because you {verb} {catalog.title_of(reason.item)}"
    if reason.kind in ("trending", "popular"):
        label = "trending" if reason.kind == "trending" else "popular"
        return f"{label} in {reason.detail}" if reason.detail else f"{label} now" if label == "trending" else "popular overall"
    if reason.kind in ("similar_item", "content") and reason.item is not None:
        return f"similar to {catalog.title_of(reason.item)}"
    return reason.detail or f"recommended by {strategy}"
