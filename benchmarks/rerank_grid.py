"""Which LightGBM settings the re-ranking stage (models/rerank.py) should use, on validation only.

    PYTHONPATH=src nice -n 19 python benchmarks/rerank_grid.py random|time

The split's training part is carved into a validation split of the same kind; the stage's
sources are fitted once on its training part, the candidates and features built once, then
each setting learns on half the validation users and is scored (NDCG@10 at 25-300 rounds) on
the other half, beside every source alone. The test part is never read."""
import sys
import time

import numpy as np
import lightgbm as lgb
from pulserec.config import DEFAULT_EVENT_WEIGHTS
from pulserec.ingest.movielens import read_ratings, read_movies
from pulserec.models.interactions import Interactions
from pulserec.online.catalog import Catalog
from pulserec.evaluation.split import make_split, validation_split
from pulserec.evaluation.metrics import ranking_metrics
from pulserec.evaluation.evaluate import Histories, held_out_users, relevant_of, score_queries, top_k
from pulserec.models.blend import normalised
from pulserec.models.hybrid import _build, labels
from pulserec.models import rerank as R
from pulserec.models.rerank_features import ItemStats, candidate_features, candidates
method = sys.argv[1]
params = R.VALIDATION_DEFAULTS[method]
data = Interactions.from_frame(read_ratings(None), DEFAULT_EVENT_WEIGHTS)  # $PULSEREC_MOVIELENS
cat = Catalog()
for record in read_movies(None):
    cat.upsert(record)
train = make_split(data, method, **params).train
split = validation_split(train, method, **params)
users = held_out_users(split)
h = Histories(split.train); queries = [h.query(int(u)) for u in users]
t = time.time()
parts = np.stack([normalised(score_queries(_build(s).fit(split.train, cat), queries, split.train.n_items)) for s in R.DEFAULT_SOURCES])
print('fits', time.time() - t, flush=True)
seen = split.train.to_csr()[users]; relevant = relevant_of(split, users)
rows, items = candidates(parts, seen, 50)
x = candidate_features(parts, rows, items, queries, ItemStats.fit(split.train, cat))
y = np.asarray(relevant[rows, items]).ravel() > 0
print('candidates', len(rows), 'positives', y.sum(), 'recall of held', y.sum() / relevant.nnz, flush=True)
first = np.zeros(len(users), bool); first[np.random.default_rng(0).permutation(len(users))[:len(users)//2]] = True
held = np.flatnonzero(~first)
def nd(rec, rel):
    return ranking_metrics(rec, rel, (10,))['ndcg@10']
for c, name in enumerate(labels(R.DEFAULT_SOURCES)):
    print(name, round(nd(top_k(parts[c][held], 10, seen[held]), relevant[held]), 4))
A = first[rows]; B = ~A
def groups(r): return np.bincount(r)[np.unique(r)]
grid = [dict(objective=o, learning_rate=lr, num_leaves=nl, min_data_in_leaf=md, feature_fraction=0.8, lambda_l2=l2)
        for o in ('lambdarank', 'binary') for lr in (0.05,) for nl in (7, 31) for md in (50, 300) for l2 in (0.0, 10.0)]
for g in grid:
    p = {'verbose': -1, 'num_threads': 1, 'seed': 0, 'deterministic': True,
         'force_col_wise': True, 'lambdarank_truncation_level': 20, **g}
    ds = lgb.Dataset(x[A], y[A].astype(int), group=groups(rows[A]) if g['objective'] != 'binary' else None)
    booster = lgb.train(p, ds, num_boost_round=300)
    out = []
    for k in (25, 50, 100, 200, 300):
        s = np.full((len(users), int(items.max()) + 1), -np.inf, np.float32)
        s[rows[B], items[B]] = booster.predict(x[B], num_iteration=k)
        out.append(round(nd(top_k(s[held], 10), relevant[held]), 4))
    print(g, out, flush=True)
