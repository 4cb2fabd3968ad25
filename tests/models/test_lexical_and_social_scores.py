"""The vectorised BM25 and social scores equal their plain definitions (issue 14.3, 14.4)."""

from __future__ import annotations

import math

import numpy as np

from pulserec.ingest.synthetic import generate
from pulserec.models.base import Query
from pulserec.models.lexical import LexicalIndex, words
from pulserec.models.social import Social
from pulserec.online.history import Touch


def test_bm25_scores_equal_the_sum_of_the_query_terms_rows():
    records = list(generate(n_users=10, n_items=150, n_events=100, seed=4).items)
    index = LexicalIndex()
    index.refresh(records, (1, len(records)))
    dense = index.matrix.toarray()
    for query in ("running shoes", "shoes running shoes", "wireless 4K watch", "nothing-like-this", "Serum"):
        terms = [index.vocabulary.get(t) for t in dict.fromkeys(words(query)) if index.vocabulary.get(t) is not None]
        want = dense[terms].sum(axis=0) if terms else np.zeros(len(records))
        for n_items in (len(records), 100, len(records) + 7):  # the catalogue may be ahead of the index
            got = index.scores(query, n_items)
            assert got.shape == (n_items,)
            np.testing.assert_allclose(got[:min(n_items, len(records))], want[:n_items], rtol=1e-6)
            assert not got[len(records):].any()
    assert index.scores("running", len(records)).any()


class Histories:
    def __init__(self, touches: dict[int, list[Touch]]) -> None:
        self.touches = touches

    def recent(self, owner):
        return self.touches.get(owner, [])


def test_social_scores_equal_the_per_touch_definition():
    rng = np.random.default_rng(1)
    types = ["like", "share", "purchase", "rating", "view", "click"]
    touches = {o: [Touch(int(rng.integers(0, 60)), float(rng.choice([1.0, 0.5, 3.0])), float(1000 + rng.integers(0, 10**6)),
                         str(rng.choice(types))) for _ in range(int(rng.integers(0, 40)))] for o in range(8)}
    touches[3].append(Touch(70, 1.0, 5000.0, "like"))  # an item past n_items is left out
    ties = tuple((o, float(rng.uniform(0.2, 2.0)), f"user-{o}") for o in range(8))
    model = Social(Histories(touches), halflife=3 * 86_400.0)
    query = Query(ties=ties, now=2_000_000.0)
    want = np.zeros(64)
    for owner, weight, _ in ties:
        for t in touches[owner]:
            if t.type in model.types and t.item < 64:
                want[t.item] += weight * t.weight * math.exp(-model.rate * max(query.now - t.ts, 0.0))
    result = model.score_explained(query, 64)
    np.testing.assert_allclose(result.scores, want, rtol=1e-12)
    best = int(np.argmax(want))
    reason = result.explain(np.array([best]))[0]
    assert reason.kind == "social" and reason.detail.endswith("by someone you follow")
    only_views = Social(Histories({0: [Touch(1, 1.0, 5.0, "view"), Touch(2, 1.0, 6.0, "click")]}))
    assert only_views.score_explained(Query(ties=((0, 1.0, "x"),), now=10.0), 64).scores is None
    assert model.score_explained(Query(ties=((99, 1.0, "nobody"),), now=1.0), 64).scores is None


def real_histories(rng: np.random.Generator, max_len: int = 25):
    """In-memory histories with a bulk segment, per-event touches still pending, and owners past
    `max_len`, beside the same touches as plain lists (what `recent` must return)."""
    from pulserec.online.history import Histories

    histories = Histories(max_len)
    types = ["like", "share", "purchase", "rating", "view"]
    n = 400
    owners, items = rng.integers(0, 8, n), rng.integers(0, 60, n)
    weights, ts = rng.choice([1.0, 0.5, 3.0], n), np.sort(rng.uniform(0, 10**6, n))
    kinds = np.array(types, dtype=object)[rng.integers(0, len(types), n)]
    histories.add_many(owners, items, weights, ts, kinds)
    for k in range(30):  # per-event touches, not flushed into a segment
        histories.add(int(k % 5), Touch(int(rng.integers(0, 60)), 1.0, 2e6 + k, str(rng.choice(types))))
    return histories


def test_history_columns_equal_the_recent_touches():
    histories = real_histories(np.random.default_rng(2))
    for owner in [*range(9), None]:
        touches = histories.recent(owner)
        items, weights, ts, types = histories.recent_columns(owner)
        assert items.tolist() == [t.item for t in touches] and weights.tolist() == [t.weight for t in touches]
        assert ts.tolist() == [t.ts for t in touches] and types.tolist() == [t.type for t in touches]
    assert len(histories.recent(0)) == 25  # trimmed to max_len, like recent


def test_social_reads_history_columns_as_it_reads_touches():
    histories = real_histories(np.random.default_rng(3))
    plain = Histories({o: list(histories.recent(o)) for o in range(8)})
    ties = tuple((o, 1.0 + o / 4, f"user-{o}") for o in range(8))
    query = Query(ties=ties, now=2.5e6)
    columnar, tuples = Social(histories, halflife=86_400.0), Social(plain, halflife=86_400.0)
    assert columnar._columnar is histories and tuples._columnar is None
    got, want = columnar.score_explained(query, 64), tuples.score_explained(query, 64)
    np.testing.assert_array_equal(got.scores, want.scores)
    picks = np.argsort(-want.scores)[:5]
    assert got.explain(picks) == want.explain(picks)
