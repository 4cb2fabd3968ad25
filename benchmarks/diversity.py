"""The effect of `diversity` (MMR) and `max_per_category` on accuracy and variety (issue 15.4).

MovieLens leave-last-out: each user's last rating is held out, the online state is built from
the rest, and every test user gets 10 recommendations through the serving path
(`RecommendationService.recommend`, item-kNN, seen items excluded). Per setting: NDCG@10 and
HitRate@10 of the held-out item, intra-list diversity (1 - mean pairwise genre Jaccard, which
MMR does not optimise: it uses co-occurrence), distinct categories (first genre) per slate, and the median time
per request. Bootstrap 95% intervals of NDCG over users. No default is chosen from these
figures (diversity stays 0 unless a request asks).

    flock /tmp/bench.lock python benchmarks/diversity.py --movielens /work/shared/data/ml-latest-small
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pandas as pd

from _common import print_table
from pulserec.config import Settings
from pulserec.ingest.movielens import read_movies, read_ratings
from pulserec.online.state import OnlineState
from pulserec.recommend.diversity import intra_list_diversity, tag_similarity
from pulserec.recommend.filters import Filters
from pulserec.recommend.service import RecommendationService

SETTINGS = [{}, {"diversity": 0.1}, {"diversity": 0.25}, {"diversity": 0.5}, {"diversity": 0.75},
            {"max_per_category": 3}, {"max_per_category": 2}, {"max_per_category": 2, "diversity": 0.25}]


def split(ratings: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    ordered = ratings.sort_values(["user_id", "ts", "item_id"], kind="stable")
    last = ordered.groupby("user_id").tail(1)
    counts = ordered["user_id"].value_counts()
    test = last[last["user_id"].map(counts) >= 2]
    train = ratings.drop(index=test.index).sort_values("ts", kind="stable").reset_index(drop=True)
    return train.assign(seq=np.arange(1, len(train) + 1)), test


def bootstrap(values: np.ndarray, rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (rounds, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movielens", required=True)
    parser.add_argument("--strategy", default="item_knn")
    args = parser.parse_args()
    ratings = read_ratings(args.movielens)
    train, test = split(ratings)
    settings = Settings.load(tempfile.mkdtemp())
    state = OnlineState(settings)
    state.catalog.upsert_many(read_movies(args.movielens))
    state.apply_frame(train)
    service = RecommendationService(state, settings)
    catalog = state.catalog
    movies = pd.read_csv(f"{args.movielens}/movies.csv", dtype=str)
    genres_of = dict(zip(movies["movieId"], movies["genres"].str.split("|")))
    similarity = tag_similarity([tuple(genres_of.get(r.item_id, ())) for r in catalog.records()])
    print(f"{len(train):,} training ratings, {len(test):,} test users, strategy {args.strategy}")
    rows = []
    for rules in SETTINGS:
        ndcg, hits, ild, genres, times = [], [], [], [], []
        for user, item in zip(test["user_id"], test["item_id"]):
            start = time.perf_counter()
            answer = service.recommend(user, 10, Filters(**rules), args.strategy)
            times.append(time.perf_counter() - start)
            ids = [r.item_id for r in answer.items]
            rank = ids.index(item) if item in ids else None
            ndcg.append(0.0 if rank is None else 1.0 / np.log2(rank + 2))
            hits.append(rank is not None)
            picks = np.array([catalog.item_ids.get(i) for i in ids], dtype=np.int64)
            ild.append(intra_list_diversity(picks, similarity))
            genres.append(len({catalog.category_of(i) for i in picks.tolist()}))
        values = np.asarray(ndcg)
        low, high = bootstrap(values)
        rows.append([", ".join(f"{k}={v}" for k, v in rules.items()) or "plain", f"{values.mean():.4f}",
                     f"{low:.4f}-{high:.4f}", f"{np.mean(hits):.4f}", f"{np.mean(ild):.4f}", f"{np.mean(genres):.2f}",
                     f"{np.median(times) * 1000:.2f}"])
    print_table(["setting", "NDCG@10", "95% CI", "HitRate@10", "ILD (genres)", "distinct categories", "median ms"], rows)


if __name__ == "__main__":
    main()
