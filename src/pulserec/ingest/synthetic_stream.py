"""The synthetic shop's event stream, drawn with whole-array NumPy operations (10M events in
seconds rather than the hours a per-event Python loop took).

Shape: users browse in sessions (a burst of views a minute or so apart, started at random
times, by users drawn by a Pareto activity); each view is of a category the user favours (60%
the first, then 75% of the rest the second) by Zipf popularity within it, or, 45% of the time
after the user's first view, the "bought together" partner of the user's previous view. A view
may lead to a funnel (click 35%, then add-to-cart 30%, then purchase 50%) or a rating, like or
share; 5% of views come after a search. Every draw comes from one seeded generator, in a fixed
order, so a seed (and `end_ts`) gives the same stream."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Mean views per session and mean seconds between two views of one session.
SESSION_VIEWS = 6.0
VIEW_GAP_S = 60.0
#: Probabilities of the planted structure (see the module docstring).
FAVOURITE_FIRST, FAVOURITE_SECOND, FOLLOW_PARTNER, SEARCH_FIRST = 0.6, 0.75, 0.45, 0.05
#: Rows per view on average (view, search, funnel, rating/like/share), to size the first draw.
ROWS_PER_VIEW = 1.63
#: Derived rows: (slot in generation order, type, seconds after the view).
OUTCOMES = {"search": (0, 0.0), "view": (1, 0.0), "click": (2, 5.0), "add_to_cart": (3, 30.0), "purchase": (4, 90.0),
            "rating": (2, 60.0), "like": (2, 10.0), "share": (2, 20.0)}
TYPES = list(OUTCOMES)


@dataclass
class Stream:
    """Events as aligned arrays in time order (indices into the shop's users/items/etc.)."""

    user: np.ndarray  # int64
    item: np.ndarray  # int64, -1 for a search
    type: np.ndarray  # int8 index into TYPES
    ts: np.ndarray  # float64
    device: np.ndarray  # int8 index into DEVICES
    value: np.ndarray  # float64, NaN when none
    query_item: np.ndarray  # int64 the item whose adjective a search names, -1 when no query
    query_cat: np.ndarray  # int8 searched category, -1 when no query


def views(rng, n_views, t0, span, activity, fav, item_cat, pop, partner, n_devices, user_device):
    """(user, ts, item, category, device) of `n_views` views in time order."""
    n_sessions = int(n_views / SESSION_VIEWS) + 1
    lengths = rng.geometric(1.0 / SESSION_VIEWS, n_sessions)
    while lengths.sum() < n_views:  # rare: draw more sessions until there are enough views
        lengths = np.r_[lengths, rng.geometric(1.0 / SESSION_VIEWS, n_sessions)]
    cut = int(np.searchsorted(np.cumsum(lengths), n_views)) + 1
    lengths = lengths[:cut]
    lengths[-1] -= lengths.sum() - n_views
    users = np.searchsorted(np.cumsum(activity), rng.random(len(lengths)) * activity.sum()).clip(0, len(activity) - 1)
    starts = t0 + rng.random(len(lengths)) * span
    session = np.repeat(np.arange(len(lengths)), lengths)
    gaps = rng.exponential(VIEW_GAP_S, n_views)
    first = np.r_[0, np.cumsum(lengths)[:-1]]
    gaps[first] = 0.0
    offsets = np.cumsum(gaps)
    ts = starts[session] + offsets - offsets[first][session]
    order = np.argsort(ts, kind="stable")
    user, ts = users[session][order], ts[order]
    category = _categories(rng, fav[user], int(item_cat.max()) + 1)
    item = _chained_items(rng, user, _popular_items(rng, category, item_cat, pop), partner)
    device = np.where(rng.random(n_views) < 0.85, user_device[user], rng.integers(0, n_devices, n_views))
    return user, ts, item, category, device


def _categories(rng, fav, n_categories):
    draw = rng.random((len(fav), 2))
    other = rng.integers(0, n_categories, len(fav))
    return np.where(draw[:, 0] < FAVOURITE_FIRST, fav[:, 0], np.where(draw[:, 1] < FAVOURITE_SECOND, fav[:, 1], other))


def _popular_items(rng, category, item_cat, pop):
    """One item per view, by Zipf popularity within the view's category."""
    out = np.zeros(len(category), dtype=np.int64)
    draw = rng.random(len(category))
    for c in range(int(item_cat.max()) + 1):
        pool = np.flatnonzero(item_cat == c)
        rows = category == c
        if len(pool) == 0 or not rows.any():
            out[rows] = rng.integers(0, len(item_cat), int(rows.sum())) if rows.any() else 0
            continue
        cum = np.cumsum(pop[pool])
        out[rows] = pool[np.searchsorted(cum, draw[rows] * cum[-1]).clip(0, len(pool) - 1)]
    return out


def _chained_items(rng, user, fresh, partner):
    """A view after the user's first follows the partner of their previous view with
    probability FOLLOW_PARTNER: along each user's views, item = partner^k(last fresh draw)."""
    order = np.argsort(user, kind="stable")
    by_user = user[order]
    first = np.r_[True, by_user[1:] != by_user[:-1]]
    jump = first | (rng.random(len(user)) >= FOLLOW_PARTNER)
    positions = np.arange(len(user))
    run_start = np.maximum.accumulate(np.where(jump, positions, 0))
    depth = positions - run_start
    items = fresh[order][run_start]
    for step in range(1, int(depth.max(initial=0)) + 1):
        deeper = depth >= step
        items[deeper] = partner[items[deeper]]
    out = np.empty_like(items)
    out[order] = items
    return out


def outcomes(rng, n_views):
    """For each view, the rows it makes: (view index, type index), type-major (so a search
    comes before its view of the same time)."""
    r, funnel, search = rng.random(n_views), rng.random((n_views, 2)), rng.random(n_views)
    click = r < 0.35
    cart = click & (funnel[:, 0] < 0.3)
    buy = cart & (funnel[:, 1] < 0.5)
    masks = {"search": search < SEARCH_FIRST, "view": np.ones(n_views, dtype=bool), "click": click, "add_to_cart": cart,
             "purchase": buy, "rating": (r >= 0.35) & (r < 0.40), "like": (r >= 0.40) & (r < 0.45),
             "share": (r >= 0.45) & (r < 0.47)}
    rows = [np.flatnonzero(mask) for mask in masks.values()]
    kinds = [np.full(len(idx), TYPES.index(name), dtype=np.int8) for name, idx in zip(masks, rows)]
    return np.concatenate(rows), np.concatenate(kinds)


def _first_rows(view, kind, n_views, n_events):
    """The rows of the first `n_events` in generation order (view by view, each view's rows by
    slot), without sorting them all: every row of the views before the cut, then the cut
    view's first rows."""
    cum = np.cumsum(np.bincount(view, minlength=n_views))
    cut = int(np.searchsorted(cum, n_events))
    whole = view < cut
    last = np.flatnonzero(view == cut)
    slot = np.array([OUTCOMES[name][0] for name in TYPES], dtype=np.int8)
    last = last[np.argsort(slot[kind[last]], kind="stable")][: n_events - int(whole.sum())]
    keep = np.flatnonzero(whole)
    keep = np.sort(np.r_[keep, last]) if len(last) else keep
    return view[keep], kind[keep]


def stream(rng, n_events: int, t0: float, span: float, shop: dict[str, np.ndarray]) -> Stream:
    """`n_events` rows: views and what they led to, cut in generation order, sorted by time."""
    n_views = int(n_events / ROWS_PER_VIEW) + 16
    while True:
        user, ts, item, category, device = views(rng, n_views, t0, span, shop["activity"], shop["fav"], shop["item_cat"],
                                                 shop["pop"], shop["partner"], shop["n_devices"], shop["user_device"])
        view, kind = outcomes(rng, n_views)
        if len(view) >= n_events:
            break
        n_views = int(n_views * 1.1 * n_events / len(view)) + 16
    view, kind = _first_rows(view, kind, n_views, n_events)
    lag = np.array([OUTCOMES[name][1] for name in TYPES])[kind]
    order = np.argsort(ts[view] + lag, kind="stable")
    view, kind = view[order], kind[order]
    ratings = rng.integers(3, 6, len(view)).astype(np.float64)
    is_search = kind == TYPES.index("search")
    value = np.where(kind == TYPES.index("purchase"), shop["price"][item[view]],
                     np.where(kind == TYPES.index("rating"), ratings, np.nan))
    return Stream(
        user=user[view], item=np.where(is_search, -1, item[view]), type=kind, ts=ts[view] + lag[order], device=device[view],
        value=value, query_item=np.where(is_search, item[view], -1),
        query_cat=np.where(is_search, category[view], -1).astype(np.int8),
    )
