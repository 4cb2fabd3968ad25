"""Reader for the MovieLens "latest" CSV layout (ratings.csv, movies.csv, tags.csv).

Ratings become `rating` events (value = stars); movies become catalogue items with the title,
the first genre as category and genres plus user tags as tags."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pulserec.config import Settings
from pulserec.records import ItemRecord
from pulserec.store import EVENT_COLUMNS
from pulserec.validation import ValueRule, bad_values

log = logging.getLogger(__name__)

ENV_VAR = "PULSEREC_MOVIELENS"
DEFAULT_PATH = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "ml-latest-small"


def movielens_path(path: str | os.PathLike[str] | None = None) -> Path:
    """Where the data set is: explicit path, else $PULSEREC_MOVIELENS, else ../shared/data/ml-latest-small."""
    candidate = Path(path or os.environ.get(ENV_VAR) or DEFAULT_PATH).resolve()
    if not (candidate / "ratings.csv").is_file():
        raise FileNotFoundError(f"no MovieLens ratings.csv under {candidate} (set {ENV_VAR} or pass a path)")
    return candidate


def read_ratings(path: str | os.PathLike[str] | None = None, rules: Mapping[str, ValueRule] | None = None) -> pd.DataFrame:
    """Ratings as an event frame (EVENT_COLUMNS), sorted by time; ratings outside the `rating`
    rule of `rules` (default: the default settings' 0.5-5 stars) are left out, with a warning."""
    frame, errors = read_checked_ratings(path, rules)
    if errors:
        log.warning("MovieLens: %d ratings rejected, first: row %d: %s", len(errors), errors[0]["row"], errors[0]["message"])
    return frame


def read_checked_ratings(path: str | os.PathLike[str] | None = None,
                         rules: Mapping[str, ValueRule] | None = None) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """(ratings that satisfy `rules`, one error per rejected row: row of ratings.csv, field, message)."""
    frame = _ratings(path)
    rules = Settings().value_rules if rules is None else rules
    bad = np.zeros(len(frame), dtype=bool)
    errors: list[dict[str, Any]] = []
    for mask, message in bad_values(frame["type"].to_numpy(dtype=object), frame["value"].to_numpy(dtype=np.float64), rules):
        bad |= mask
        errors.extend({"row": int(row), "field": "rating", "message": message} for row in frame.loc[mask, "row"])
    errors.sort(key=lambda e: e["row"])
    return frame.loc[~bad, list(EVENT_COLUMNS)].reset_index(drop=True), errors


def _ratings(path: str | os.PathLike[str] | None) -> pd.DataFrame:
    """Every rating as EVENT_COLUMNS plus `row` (its line in ratings.csv, 1 = the first rating)."""
    root = movielens_path(path)
    ratings = pd.read_csv(
        root / "ratings.csv", dtype={"userId": str, "movieId": str, "rating": "float64", "timestamp": "int64"}
    )
    ratings["row"] = np.arange(1, len(ratings) + 1)
    ratings = ratings.sort_values(["timestamp", "userId", "movieId"], kind="stable").reset_index(drop=True)
    return pd.DataFrame(
        {
            "event_id": "ml-" + ratings["userId"] + "-" + ratings["movieId"],
            "user_id": ratings["userId"],
            "item_id": ratings["movieId"],
            "type": "rating",
            "ts": ratings["timestamp"].astype("float64"),
            "value": ratings["rating"],
            "session_id": None,
            "query": None,
            "context": None,
            "rec_id": None,
            "dwell_seconds": None,
            "row": ratings["row"],
        }
    )


def read_movies(path: str | os.PathLike[str] | None = None) -> list[ItemRecord]:
    """Movies as catalogue items; genres and the most used user tags become tags."""
    root = movielens_path(path)
    movies = pd.read_csv(root / "movies.csv", dtype={"movieId": str, "title": str, "genres": str})
    tags_by_movie: dict[str, list[str]] = {}
    tags_file = root / "tags.csv"
    if tags_file.is_file():
        tags = pd.read_csv(tags_file, dtype={"userId": str, "movieId": str, "tag": str}).dropna(subset=["tag"])
        tags["tag"] = tags["tag"].str.strip().str.lower()
        counts = tags.groupby(["movieId", "tag"]).size().reset_index(name="n").sort_values("n", ascending=False)
        for movie_id, group in counts.groupby("movieId", sort=False):
            tags_by_movie[str(movie_id)] = group["tag"].head(10).tolist()
    records = []
    for movie_id, title, genres in movies.itertuples(index=False):
        genre_list = [] if genres == "(no genres listed)" else genres.split("|")
        records.append(
            ItemRecord(
                item_id=movie_id,
                title=title,
                category=genre_list[0] if genre_list else None,
                tags=tuple(dict.fromkeys(genre_list + tags_by_movie.get(movie_id, []))),
                description=" ".join(genre_list + tags_by_movie.get(movie_id, [])),
            )
        )
    return records
