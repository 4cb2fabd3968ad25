"""SASRec and GRU4Rec on tiny synthetic sequences with a known next item."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from pulserec.config import DEFAULT_EVENT_WEIGHTS  # noqa: E402
from pulserec.models.base import Explainer, Query, Reason, Recommender  # noqa: E402
from pulserec.models.gru4rec import GRU4Rec  # noqa: E402
from pulserec.models.interactions import Interactions  # noqa: E402
from pulserec.models.registry import model_class  # noqa: E402
from pulserec.models.sasrec import SASRec  # noqa: E402
from pulserec.models.persist import ModelFileError  # noqa: E402
from pulserec.models.sequence_base import SequenceRecommender  # noqa: E402
from pulserec.models.sequence_data import EventVocabulary, SequenceLog  # noqa: E402

MODELS = [SASRec, GRU4Rec]
TINY = dict(max_len=8, dim=16, dropout=0.0, lr=0.02, batch_size=16, max_epochs=60, patience=10, n_negatives=8,
            seed=0, validate_unseen_only=False)
# SASRec needs two attention layers (one finds the previous item, one reads it); on ten items
# its full softmax is both cheap and steadier than sampling 8 negatives.
PER_MODEL = {"sasrec": dict(n_layers=2, n_heads=2, loss="softmax"), "gru4rec": dict(n_layers=1)}
# After "a, b" comes "c"; after "x, b" comes "d": the last item alone (b) is ambiguous.
PATTERNS = [("a", "b", "c"), ("x", "b", "d")]
NOISE = ["n1", "n2", "n3", "n4", "n5", "n6"]


def event_type(item: str) -> str:
    return "click" if item in NOISE else "view"


def synthetic_log(n_users: int = 96, seed: int = 0) -> pd.DataFrame:
    """Each user: a noise item (clicked), then their pattern twice (viewed; twice so that the
    held-out last event is not the only example of it), one event a minute."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        pattern = PATTERNS[user % 2]
        items = [NOISE[rng.integers(len(NOISE))], *pattern, *pattern]
        for step, item in enumerate(items):
            rows.append((f"u{user}", item, event_type(item), 1_000.0 * user + 60.0 * step))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "type", "ts"])


@pytest.fixture(scope="module")
def data() -> Interactions:
    torch.set_num_threads(1)
    log = Interactions.from_frame(synthetic_log(), DEFAULT_EVENT_WEIGHTS)
    log.item_ids.add("never_seen")  # in the catalogue, absent from training
    return log


@pytest.fixture(scope="module", params=MODELS, ids=lambda cls: cls.name)
def model(request: pytest.FixtureRequest, data: Interactions) -> SequenceRecommender:
    return request.param(**TINY, **PER_MODEL[request.param.name]).fit(data)


def query_of(data: Interactions, *item_ids: str) -> Query:
    """A query from items given oldest first (Query wants most recent first)."""
    items = np.array([data.item_ids.get(i) for i in item_ids][::-1])
    n = len(items)
    return Query(items=items, types=tuple(event_type(i) for i in item_ids[::-1]), timestamps=1e6 - 60.0 * np.arange(n),
                 n_items=data.n_items)


def top(model: SequenceRecommender, data: Interactions, *item_ids: str) -> str:
    scores = model.score(query_of(data, *item_ids), data.n_items)
    assert scores is not None
    return data.item_ids.id_of(int(np.argmax(scores)))


def test_learns_the_next_item_from_context(model: SequenceRecommender, data: Interactions) -> None:
    assert top(model, data, "n3", "a", "b") == "c"
    assert top(model, data, "n1", "x", "b") == "d"
    assert top(model, data, "n4", "x", "b", "d", "x", "b") == "d"
    assert top(model, data, "n5", "a") == "b"


def test_early_stopping_tracks_validation(model: SequenceRecommender) -> None:
    assert model.history and all(r.validation for r in model.history)
    assert max(r.validation["hr@10"] for r in model.history) == 1.0


def test_save_load_round_trip(model: SequenceRecommender, data: Interactions, tmp_path) -> None:
    path = tmp_path / f"{model.name}.model"
    model.save(path)
    loaded = type(model).load(path)
    query = query_of(data, "n1", "x", "b")
    np.testing.assert_array_equal(loaded.score(query, data.n_items), model.score(query, data.n_items))
    assert loaded.item_ids.ids == data.item_ids.ids
    with pytest.raises(ModelFileError, match="not 'gru4rec'|not 'sasrec'"):
        (GRU4Rec if isinstance(model, SASRec) else SASRec).load(path)


def test_unknown_items(model: SequenceRecommender, data: Interactions) -> None:
    n_items = data.n_items + 5  # catalogue grew after training
    never_seen = data.item_ids.get("never_seen")
    known = query_of(data, "n2", "a", "b")
    with_unknown = Query(
        items=np.array([n_items - 1, never_seen, *known.items]),
        types=("view", "view", *known.types),
        timestamps=np.array([known.timestamps[0] + 120, known.timestamps[0] + 60, *known.timestamps]),
        n_items=n_items,
    )
    scores = model.score(with_unknown, n_items)
    assert scores is not None and len(scores) == n_items
    assert np.isneginf(scores[data.n_items :]).all() and np.isneginf(scores[never_seen])
    assert data.item_ids.id_of(int(np.argmax(scores))) == "c"
    assert model.score(Query(items=np.array([n_items - 1, never_seen])), n_items) is None
    assert model.similar(never_seen, n_items) is None


def test_no_history_returns_none(model: SequenceRecommender, data: Interactions) -> None:
    assert model.score(Query(user=3), data.n_items) is None
    assert model.explain(Query(user=3), np.array([0])) == [None]


def test_batch_scores_match_single_requests(model: SequenceRecommender, data: Interactions) -> None:
    queries = [query_of(data, "n3", "a", "b"), Query(), query_of(data, "n1", "x", "b", "d", "x"), query_of(data, "c")]
    batch = model.score_batch(queries, data.n_items)
    assert np.isneginf(batch[1]).all()
    for row, query in enumerate(queries):
        single = model.score(query, data.n_items)
        if single is not None:
            np.testing.assert_allclose(batch[row], single, rtol=1e-4, atol=1e-4)


def test_explain_and_similar(model: SequenceRecommender, data: Interactions) -> None:
    query = query_of(data, "n3", "a", "b")
    reasons = model.explain(query, np.array([data.item_ids.get("c"), data.item_ids.get("never_seen")]))
    assert isinstance(reasons[0], Reason) and reasons[1] is None
    if isinstance(model, SASRec):
        assert reasons[0].kind == "history" and reasons[0].item in set(query.items.tolist())
    a = data.item_ids.get("a")
    similar = model.similar(a, data.n_items + 2)
    assert similar is not None and len(similar) == data.n_items + 2 and int(np.argmax(similar)) == a
    assert np.isneginf(similar[data.item_ids.get("never_seen")]) and np.isneginf(similar[-1])


@pytest.mark.parametrize("loss", ["bpr", "sampled_softmax"])
def test_sampled_losses_train(data: Interactions, loss: str) -> None:
    model = SASRec(**{**TINY, "max_epochs": 8, "patience": None, "loss": loss}).fit(data)
    assert model.history[-1].loss < model.history[0].loss


def test_registry_names_and_protocol(model: SequenceRecommender) -> None:
    assert model_class("sasrec") is SASRec and model_class("gru4rec") is GRU4Rec
    assert isinstance(model, Recommender) and isinstance(model, Explainer)


def test_sequence_log_orders_by_time_and_windows_cover_every_target() -> None:
    frame = pd.DataFrame({"user_id": ["u", "v", "u", "u", "u"], "item_id": ["b", "z", "a", "c", "d"],
                          "type": ["view"] * 5, "ts": [20.0, 5.0, 10.0, 30.0, 1e6]})
    data = Interactions.from_frame(frame, DEFAULT_EVENT_WEIGHTS)
    vocab = EventVocabulary.from_types(data.types)
    log = SequenceLog.from_interactions(data, vocab)
    u = data.user_ids.get("u")
    ordered = log.items[log.offsets[u] : log.offsets[u + 1]] - 1
    assert data.item_ids.ids_of(ordered) == ["a", "b", "c", "d"]
    gaps = log.gaps[log.offsets[u] : log.offsets[u + 1]]
    assert gaps[0] == 1 and gaps[1] == gaps[2] < gaps[3]  # no previous, 10 s, 10 s, ~11 days
    starts, ends = log.training_windows(width=3)  # u: [b c d] and [a b]; v has nothing to predict
    batch = log.window_batch(starts, ends, 3)
    assert [data.item_ids.ids_of(row[row > 0] - 1) for row in batch.items] == [["b", "c", "d"], ["a", "b"]]
