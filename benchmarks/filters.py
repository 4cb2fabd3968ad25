"""What a compiled filter expression adds to building the candidate mask (issue 15.1).

For each catalogue size: the mask of the fixed rules alone (catalogue policy, the user's seen
items) and the same with the expression below, per request, once the static part is cached;
"adds" is the difference of their medians. Also: the first request (parse, compile, fill the
cache) and the request after one item changed (one row recomputed). Several rounds, each a
median of many requests; the spread of the rounds is printed. `--expression` measures another
one, e.g. USER_EXPRESSION (the requesting user's attributes, given in memory here: what the
masks cost, without the store read that serving makes once per request when they are used).

    flock /tmp/bench.lock /work/venv/bin/python benchmarks/filters.py [--sizes 10000 1000000] [--rounds 5]
        [--expression 'attrs.min_age <= user.attrs.age and category in user.attrs.preferred']
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import machine, print_table
from pulserec.config import Settings
from pulserec.online import make_state
from pulserec.recommend.filters import FilterCompiler, Filters
from pulserec.records import ItemRecord

EXPRESSION = 'category in ("shoes", "bags") and price < 100 and attrs.brand != "acme" and not seen and created_at > now - 30d'
USER_EXPRESSION = "attrs.min_age <= user.attrs.age and category in user.attrs.preferred and not seen"
USER = {"age": 30, "preferred": "shoes"}
DAY = 86400.0


def catalogue(n: int, seed: int = 7) -> list[ItemRecord]:
    rng = np.random.default_rng(seed)
    categories = np.array(["shoes", "bags", "hats", "socks", "coats"])[rng.integers(0, 5, n)]
    brands = np.array(["acme", "zest", "nova", "orbit"])[rng.integers(0, 4, n)]
    prices = np.round(rng.uniform(5, 300, n), 2)
    created = time.time() - rng.uniform(0, 120 * DAY, n)
    ages = rng.choice([0, 12, 16, 18, 21], n)
    return [ItemRecord(f"i{k}", category=str(c), price=float(p), created_ts=float(t), attrs={"brand": str(b), "min_age": int(a)})
            for k, (c, p, t, b, a) in enumerate(zip(categories, prices, created, brands, ages))]


def per_request(fn, repeat: int) -> float:
    times = np.empty(repeat)
    for i in range(repeat):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    return float(np.median(times)) * 1000.0


def measure(n: int, rounds: int, tmp: str, expression: str = EXPRESSION) -> list[object]:
    state = make_state(Settings.load(tmp, serve_unknown_items=False))
    state.catalog.upsert_many(catalogue(n))
    rng = np.random.default_rng(1)
    seen = set(rng.choice(n, 50, replace=False).tolist())  # a user with 50 seen items
    now = time.time()
    plain, filtered = Filters(), Filters(expressions=(("filter_expression", expression),))
    compiler = FilterCompiler(state.catalog)
    user = dict(USER)

    def attrs_of() -> dict[str, object]:
        return user

    start = time.perf_counter()
    compiler.mask(state, 0, filtered, now=now, seen=seen, attrs_of=attrs_of)
    first = (time.perf_counter() - start) * 1000.0
    repeat = 200 if n <= 100_000 else 30
    adds, base, full = [], [], []
    for _ in range(rounds):
        b = per_request(lambda: compiler.mask(state, 0, plain, now=now, seen=seen), repeat)
        f = per_request(lambda: compiler.mask(state, 0, filtered, now=now, seen=seen, attrs_of=attrs_of), repeat)
        base.append(b)
        full.append(f)
        adds.append(f - b)
    record = state.catalog.record(n // 2)
    state.catalog.upsert(ItemRecord(record.item_id, category="shoes", price=10.0, created_ts=now, attrs={"brand": "nova", "min_age": 0}))
    start = time.perf_counter()
    mask = compiler.mask(state, 0, filtered, now=now, seen=seen, attrs_of=attrs_of)
    changed = (time.perf_counter() - start) * 1000.0
    assert mask[n // 2] or (n // 2) in seen
    return [f"{n:,}", f"{np.median(base):.3f}", f"{np.median(full):.3f}", f"{np.median(adds):.3f}",
            f"{min(adds):.3f}-{max(adds):.3f}", f"{first:.1f}", f"{changed:.2f}"]


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--expression", default=EXPRESSION, help=f"default: {EXPRESSION}; try: {USER_EXPRESSION}")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"expression: {args.expression} (user attributes: {USER})")
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure(n, args.rounds, tmp, args.expression))
    print_table(["items", "fixed rules ms", "with expression ms", "adds ms (median)", "adds spread", "first ms",
                 "after 1 change ms"], rows)


if __name__ == "__main__":
    main()
