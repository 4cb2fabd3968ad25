"""Structure-by-structure comparison of two in-memory online states (snapshot tests)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from pulserec.online.state import OnlineState


def cooc_matrix(state: OnlineState):
    state.cooc.compact()
    return state.cooc.base


def assert_same_state(a: OnlineState, b: OnlineState) -> None:
    """Every structure equal, items matched by id (a full replay interns the catalogue first,
    a live state in arrival order); floats to 1e-9 relative (summation orders differ)."""
    assert (a.applied, a.last_seq) == (b.applied, b.last_seq)
    assert sorted(a.catalog.item_ids.ids) == sorted(b.catalog.item_ids.ids)
    n = len(a.catalog)
    to_a = np.array([a.catalog.item_ids.get(i) for i in b.catalog.item_ids.ids], dtype=np.int64)  # b index -> a index
    by_id = {r.item_id: r for r in a.catalog.records()}
    assert all(by_id[r.item_id] == r for r in b.catalog.records())
    assert sorted(a.catalog.categories.ids) == sorted(b.catalog.categories.ids)
    for name in ("price", "active", "created_ts"):
        np.testing.assert_array_equal(getattr(a.catalog, name)[:n][to_a], getattr(b.catalog, name)[:n])
    np.testing.assert_allclose(a.popularity.all_time(n)[to_a], b.popularity.all_time(n), rtol=1e-9)
    np.testing.assert_array_equal(a.popularity.events[:n][to_a], b.popularity.events[:n])
    np.testing.assert_allclose(a.popularity.trending_scores(n)[to_a], b.popularity.trending_scores(n), rtol=1e-9)
    assert a.now == b.now
    ma, mb = cooc_matrix(a).tocoo(), cooc_matrix(b).tocoo()
    ma = sp.csr_matrix((ma.data, (ma.row, ma.col)), shape=(n, n))
    mb = sp.csr_matrix((mb.data, (to_a[mb.row], to_a[mb.col])), shape=(n, n))
    assert abs(ma - mb).max() <= 1e-9 * max(abs(ma).max(), 1.0)
    degree_b = np.zeros(n)
    degree_b[to_a[: min(n, len(b.cooc.degree))]] = b.cooc.degree[: min(n, len(b.cooc.degree))]
    np.testing.assert_allclose(a.cooc.degree[:n], degree_b, rtol=1e-9, atol=1e-12)
    owners_a, owners_b = _live_owners(a), _live_owners(b)
    assert owners_a.keys() == owners_b.keys()
    for key, owner in owners_a.items():
        other = owners_b[key]
        ra, rb = list(a.histories.recent(owner)), list(b.histories.recent(other))
        assert [(t.item, t.type) for t in ra] == [(int(to_a[t.item]), t.type) for t in rb], key
        np.testing.assert_allclose([(t.weight, t.ts) for t in ra], [(t.weight, t.ts) for t in rb], rtol=1e-12)
        assert a.histories.seen(owner) == {int(to_a[i]) for i in b.histories.seen(other)}
        assert _rounded(a.profiles.get(owner).to_state()) == _rounded(b.profiles.get(other).to_state()), key


def _live_owners(state: OnlineState) -> dict[str, int]:
    """Owners with a profile or history (a forgotten owner keeps its index slot, empty)."""
    out = {}
    for owner, key in enumerate(state.owners.ids):
        has_profile = state.profiles.get(owner) is not None
        assert has_profile or not state.histories.recent(owner), key
        if has_profile:
            out[key] = owner
    return out


def _rounded(value):
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value
