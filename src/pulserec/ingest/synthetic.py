"""A synthetic e-commerce stream with planted structure (the demo's bundled sample).

Users have hidden tastes (two favourite categories, a device, a city); they browse in sessions,
mostly within their tastes, moving from viewed items to items that are "bought together" with
them; some views lead to clicks, add-to-carts and purchases; some users search, rate, like and
share. Everything is drawn from one seeded generator, so a seed gives the same data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

import pyarrow as pa

from pulserec.events import Event
from pulserec.ingest.synthetic_stream import TYPES, Stream, stream
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


@dataclass
class SyntheticTables:
    """The shop as Arrow tables: what `pulserec generate` writes (no Python object per event)."""

    items: pa.Table
    users: pa.Table
    events: pa.Table


def generate(
    n_users: int = 300, n_items: int = 400, n_events: int = 20_000, days: float = 30.0, seed: int = 7, end_ts: float = 1_764_000_000.0
) -> SyntheticData:
    """The shop as pandas frames and item records (for tests, the demo and benchmarks)."""
    tables = generate_tables(n_users, n_items, n_events, days, seed, end_ts)
    items = [
        ItemRecord(item_id=r["item_id"], title=r["title"], category=r["category"], tags=tuple(r["tags"].split("|")),
                   price=r["price"], description=r["description"], created_ts=end_ts - days * 86_400.0)
        for r in tables.items.to_pylist()
    ]
    return SyntheticData(items=items, users=plain(tables.users).to_pandas(), events=plain(tables.events).to_pandas())


def generate_tables(
    n_users: int = 300, n_items: int = 400, n_events: int = 20_000, days: float = 30.0, seed: int = 7, end_ts: float = 1_764_000_000.0
) -> SyntheticTables:
    rng = np.random.default_rng(seed)
    names = list(CATEGORIES)
    item_cat = rng.integers(0, len(names), n_items)
    adj, noun = rng.integers(0, 5, n_items), rng.integers(0, 4, n_items)
    price = np.round(np.exp(rng.normal(3.5, 0.8, n_items)), 2)
    pop = 1.0 / (1.0 + rng.permutation(n_items)) ** 0.8  # Zipf-like popularity within each category
    fav_first = rng.integers(0, len(names), n_users)
    fav = np.stack([fav_first, (fav_first + rng.integers(1, len(names), n_users)) % len(names)], axis=1)
    shop = {"item_cat": item_cat, "item_adj": adj, "price": price, "pop": pop, "partner": _partners(rng, item_cat),
            "fav": fav, "user_device": rng.integers(0, len(DEVICES), n_users), "n_devices": len(DEVICES)}
    city = rng.integers(0, len(CITIES), n_users)
    shop["activity"] = rng.pareto(1.5, n_users) + 1.0
    events = stream(rng, n_events, end_ts - days * 86_400.0, days * 86_400.0, shop)
    user_ids = _ids("u", 4, n_users)
    items = _items_table(item_cat, adj, noun, price, names)
    return SyntheticTables(
        items=items,
        users=pa.table({
            "user_id": user_ids,
            "favourite_categories": pa.array([f"{names[a]}|{names[b]}" for a, b in fav.tolist()]),
            "device": _lookup(DEVICES, shop["user_device"]), "city": _lookup(CITIES, city),
        }),
        events=_events_table(events, names, city, item_cat * 5 + adj, user_ids, items["item_id"].combine_chunks()),
    )


def _partners(rng, item_cat: np.ndarray) -> np.ndarray:
    """A "bought together" partner per item: a random item of its category (maybe itself)."""
    by_cat = np.argsort(item_cat, kind="stable")
    counts = np.bincount(item_cat, minlength=int(item_cat.max()) + 1)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    return by_cat[starts[item_cat] + (rng.random(len(item_cat)) * counts[item_cat]).astype(np.int64)]


def _ids(prefix: str, width: int, n: int) -> pa.Array:
    return pa.array([f"{prefix}{i:0{width}d}" for i in range(n)])


def _lookup(values: list[str] | pa.Array, codes: np.ndarray) -> pa.Array:
    """values[codes] as a dictionary-encoded Arrow column (no string per row); negative codes
    are nulls."""
    dictionary = values if isinstance(values, pa.Array) else pa.array(values)
    indices = pa.array(codes.astype(np.int32), mask=codes < 0 if (codes < 0).any() else None)
    return pa.DictionaryArray.from_arrays(indices, dictionary)


def _numbered(prefix: str, n: int) -> pa.Array:
    """prefix + zero-padded row number (at least 7 digits), built as one byte buffer."""
    width = max(7, len(str(max(n - 1, 0))))
    text = np.empty((n, len(prefix) + width), dtype=np.uint8)
    text[:, : len(prefix)] = np.frombuffer(prefix.encode(), dtype=np.uint8)
    number = np.arange(n, dtype=np.int64)
    for column in range(len(prefix) + width - 1, len(prefix) - 1, -1):  # last digit first
        number, digit = np.divmod(number, 10)
        text[:, column] = digit + ord("0")
    offsets = np.arange(n + 1, dtype=np.int32) * text.shape[1]
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))


def plain(table: pa.Table) -> pa.Table:
    """A table with its dictionary-encoded columns decoded to plain strings."""
    schema = pa.schema([pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type) for f in table.schema])
    return table.cast(schema)


def _items_table(item_cat, adj, noun, price, names) -> pa.Table:
    rows = [(names[c], CATEGORIES[names[c]][0][a], CATEGORIES[names[c]][1][o], p)
            for c, a, o, p in zip(item_cat.tolist(), adj.tolist(), noun.tolist(), price.tolist())]
    return pa.table({
        "item_id": _ids("sku-", 5, len(rows)),
        "title": [f"{a.title()} {o} #{i}" for i, (_, a, o, _) in enumerate(rows)],
        "description": [f"A {a} {o} for {c} lovers." for c, a, o, _ in rows],
        "category": [c for c, *_ in rows],
        "tags": [f"{c}|{a}|{o.split()[0]}|{'premium' if p > 60 else 'budget'}" for c, a, o, p in rows],
        "price": price,
    })


def _events_table(events: Stream, names: list[str], city: np.ndarray, item_adj: np.ndarray, user_ids: pa.Array,
                  item_ids: pa.Array) -> pa.Table:
    """The stream as a table (`item_adj`: category * 5 + adjective of each item, for queries)."""
    n = len(events.ts)
    queries = [f"{CATEGORIES[c][0][a]} {q}" for c in names for a in range(5) for q in names]
    searched = events.query_item >= 0
    query_code = np.where(searched, item_adj[np.where(searched, events.query_item, 0)] * len(names) + events.query_cat, -1)
    return pa.table({
        "event_id": _numbered("syn-", n),
        "user_id": _lookup(user_ids, events.user),
        "item_id": _lookup(item_ids, events.item),
        "ts": events.ts,
        "device": _lookup(DEVICES, events.device.astype(np.int64)),
        "location": _lookup(CITIES, city[events.user]),
        "value": pa.array(events.value, mask=np.isnan(events.value)),
        "query": _lookup(queries, query_code),
        "type": _lookup(TYPES, events.type.astype(np.int64)),
    })


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


def write(data: SyntheticData | SyntheticTables, out_dir, fmt: str = "csv") -> dict[str, str]:
    """Write events/items/users files (csv or parquet) and return their paths."""
    from pathlib import Path

    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(data, SyntheticData):
        frames = {"events": data.events, "items": items_frame(data.items), "users": data.users}
        tables = {name: pa.Table.from_pandas(frame, preserve_index=False) for name, frame in frames.items()}
    else:
        tables = {"events": data.events, "items": data.items, "users": data.users}
    paths = {}
    for name, table in tables.items():
        path = out / f"{name}.{fmt}"
        if fmt == "parquet":  # without the Arrow schema: readers get plain strings, not categoricals
            pq.write_table(table, path, store_schema=False)
        else:
            pcsv.write_csv(plain(table), path)
        paths[name] = str(path)
    return paths
