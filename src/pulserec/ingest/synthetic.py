"""A synthetic e-commerce stream with planted structure (the demo's bundled sample).

Users have hidden tastes (two favourite categories, a device, a city); they browse in sessions,
mostly within their tastes, moving from viewed items to items that are "bought together" with
them; some views lead to clicks, add-to-carts and purchases; some users search, rate, like and
share. Everything is drawn from one seeded generator, so a seed gives the same data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pulserec.events import Event
from pulserec.records import ItemRecord

CATEGORIES = {
    "shoes": (["running", "trail", "leather", "canvas", "hiking"], ["shoe", "sneaker", "boot", "sandal"]),
    "electronics": (["wireless", "smart", "compact", "4k", "portable"], ["headphones", "speaker", "camera", "watch"]),
    "books": (["classic", "illustrated", "bestselling", "pocket", "signed"], ["novel", "cookbook", "biography", "atlas"]),
    "home": (["oak", "ceramic", "minimal", "vintage", "cosy"], ["lamp", "mug", "chair", "blanket"]),
    "toys": (["wooden", "educational", "giant", "magnetic", "retro"], ["puzzle", "robot", "train set", "kite"]),
    "sports": (["carbon", "pro", "foldable", "weighted", "grip"], ["racket", "yoga mat", "bike helmet", "dumbbell"]),
    "beauty": (["organic", "vegan", "travel", "matte", "hydrating"], ["serum", "lipstick", "shampoo", "sunscreen"]),
    "garden": (["solar", "raised", "heirloom", "compost", "hanging"], ["planter", "hose", "seed kit", "lantern"]),
}
DEVICES = ["mobile", "desktop", "tablet"]
CITIES = ["Berlin", "Paris", "Madrid", "Rome", "Vienna", "Lisbon", "Warsaw", "Dublin"]


@dataclass
class SyntheticData:
    items: list[ItemRecord]
    users: pd.DataFrame  # user_id, favourite categories, device, city
    events: pd.DataFrame  # EVENT_COLUMNS-like with device/location columns


def generate(
    n_users: int = 300, n_items: int = 400, n_events: int = 20_000, days: float = 30.0, seed: int = 7, end_ts: float = 1_764_000_000.0
) -> SyntheticData:
    rng = np.random.default_rng(seed)
    names = list(CATEGORIES)
    item_cat = rng.integers(0, len(names), n_items)
    items: list[ItemRecord] = []
    for i in range(n_items):
        cat = names[item_cat[i]]
        adjectives, nouns = CATEGORIES[cat]
        adj, noun = adjectives[rng.integers(len(adjectives))], nouns[rng.integers(len(nouns))]
        price = float(np.round(np.exp(rng.normal(3.5, 0.8)), 2))
        tags = (cat, adj, noun.split()[0], "premium" if price > 60 else "budget")
        items.append(
            ItemRecord(item_id=f"sku-{i:05d}", title=f"{adj.title()} {noun} #{i}", category=cat, tags=tags, price=price,
                       description=f"A {adj} {noun} for {cat} lovers.", created_ts=end_ts - days * 86_400.0)
        )
    by_cat = [np.flatnonzero(item_cat == c) for c in range(len(names))]
    # Zipf-like popularity within each category, and a "bought together" partner per item.
    pop = 1.0 / (1.0 + rng.permutation(n_items)) ** 0.8
    partner = np.array([rng.choice(by_cat[item_cat[i]]) for i in range(n_items)])

    fav = np.stack([rng.choice(len(names), 2, replace=False) for _ in range(n_users)])
    device = rng.integers(0, len(DEVICES), n_users)
    city = rng.integers(0, len(CITIES), n_users)
    activity = rng.pareto(1.5, n_users) + 1.0
    activity /= activity.sum()

    rows = []
    t = end_ts - days * 86_400.0
    step = days * 86_400.0 / n_events
    current = {}
    while len(rows) < n_events:
        u = int(rng.choice(n_users, p=activity))
        t += rng.exponential(step)
        cat = fav[u][0] if rng.random() < 0.6 else fav[u][1] if rng.random() < 0.75 else rng.integers(len(names))
        prev = current.get(u)
        if prev is not None and rng.random() < 0.45:
            item = int(partner[prev])
        else:
            pool = by_cat[cat]
            p = pop[pool] / pop[pool].sum()
            item = int(rng.choice(pool, p=p))
        current[u] = item
        ctx_device = DEVICES[device[u]] if rng.random() < 0.85 else DEVICES[rng.integers(len(DEVICES))]
        base = dict(user_id=f"u{u:04d}", item_id=items[item].item_id, ts=t, device=ctx_device, location=CITIES[city[u]],
                    value=None, query=None)
        if rng.random() < 0.05:
            rows.append({**base, "type": "search", "item_id": None, "query": f"{items[item].tags[1]} {names[cat]}"})
        rows.append({**base, "type": "view"})
        r = rng.random()
        if r < 0.35:
            rows.append({**base, "type": "click", "ts": t + 5})
            if rng.random() < 0.3:
                rows.append({**base, "type": "add_to_cart", "ts": t + 30})
                if rng.random() < 0.5:
                    rows.append({**base, "type": "purchase", "ts": t + 90, "value": items[item].price})
        elif r < 0.40:
            rows.append({**base, "type": "rating", "ts": t + 60, "value": float(rng.integers(3, 6))})
        elif r < 0.45:
            rows.append({**base, "type": "like", "ts": t + 10})
        elif r < 0.47:
            rows.append({**base, "type": "share", "ts": t + 20})
    events = pd.DataFrame(rows[:n_events]).sort_values("ts", kind="stable").reset_index(drop=True)
    events.insert(0, "event_id", [f"syn-{i:07d}" for i in range(len(events))])
    users = pd.DataFrame(
        {
            "user_id": [f"u{u:04d}" for u in range(n_users)],
            "favourite_categories": ["|".join(names[c] for c in fav[u]) for u in range(n_users)],
            "device": [DEVICES[d] for d in device],
            "city": [CITIES[c] for c in city],
        }
    )
    return SyntheticData(items=items, users=users, events=events)


def as_events(frame: pd.DataFrame) -> list[Event]:
    """Rows of a generated event frame as engine events (context: device and location)."""
    return [
        Event(r.event_id, r.user_id, r.item_id if isinstance(r.item_id, str) else None, r.type, float(r.ts),
              value=None if r.value is None or r.value != r.value else float(r.value),
              query=r.query if isinstance(r.query, str) else None,
              context={"device": r.device, "location": r.location})
        for r in frame.itertuples()
    ]


def items_frame(items: list[ItemRecord]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": [i.item_id for i in items],
            "title": [i.title for i in items],
            "description": [i.description for i in items],
            "category": [i.category for i in items],
            "tags": ["|".join(i.tags) for i in items],
            "price": [i.price for i in items],
        }
    )


def write(data: SyntheticData, out_dir, fmt: str = "csv") -> dict[str, str]:
    """Write events/items/users files (csv or parquet) and return their paths."""
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames = {"events": data.events, "items": items_frame(data.items), "users": data.users}
    paths = {}
    for name, frame in frames.items():
        path = out / f"{name}.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
        paths[name] = str(path)
    return paths
