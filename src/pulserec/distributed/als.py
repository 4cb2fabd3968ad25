"""Implicit ALS on Spark: our objective, exact solves, the same :class:`~pulserec.models.als.ALS`.

Each half-step keeps one side fixed: its factors Y and regularised Gram matrix YtY + reg I are
broadcast to the executors; the (user -> items, weights) rows, grouped once and cached, are
solved exactly row by row on the executors with the same function the in-process
``ALS(solver="cholesky")`` and fold-in use (:func:`~pulserec.models.factors.solve_implicit_rows`);
the new factors are collected to the driver for the next half-step. Starting from the same seeded
initialisation, the result matches the in-process exact trainer up to float rounding.

Memory: the driver and every executor hold one side's factors (n x k float32); the interaction
rows stay distributed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pulserec.models.als import ALS
from pulserec.models.factors import regularised_gram, solve_implicit_rows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from pulserec.distributed.events import SparkInteractions

SOLVED_SCHEMA = "row int, factors binary"


def group_rows(ratings: DataFrame, row: str, col: str) -> DataFrame:
    """(row, cols array<int>, weights array<float>) with each row's entries sorted by column."""
    from pyspark.sql import functions as F

    pairs = F.array_sort(F.collect_list(F.struct(F.col(col).alias("c"), F.col("w").alias("w"))))
    return ratings.groupBy(row).agg(pairs.alias("pairs")).select(
        F.col(row).alias("row"), F.col("pairs.c").alias("cols"), F.col("pairs.w").alias("weights")
    )


def solve_batches(batches: Iterator[pd.DataFrame], fixed: Any, alpha: float) -> Iterator[pd.DataFrame]:
    """mapInPandas body: the exact solution of every row in each batch, as float32 bytes.

    `fixed` is a broadcast of (gram, y): the regularised Gram matrix and the fixed factors."""
    gram, y = fixed.value
    for batch in batches:
        cols = [np.asarray(c, dtype=np.int64) for c in batch["cols"]]
        weights = [np.asarray(w, dtype=np.float32) for w in batch["weights"]]
        indptr = np.concatenate([[0], np.cumsum([len(c) for c in cols])])
        indices = np.concatenate(cols) if cols else np.empty(0, dtype=np.int64)
        extra = (alpha * (np.concatenate(weights) if weights else np.empty(0, np.float32))).astype(np.float32)
        solved = solve_implicit_rows(gram, y, indptr, indices, extra)
        yield pd.DataFrame({"row": batch["row"].to_numpy(np.int32), "factors": [r.tobytes() for r in solved]})


def half_step(spark: SparkSession, rows: DataFrame, y: np.ndarray, n_rows: int, model: ALS) -> np.ndarray:
    """New factors of every row of `rows` with `y` fixed (rows without entries stay zero)."""
    fixed = spark.sparkContext.broadcast((regularised_gram(y, model.regularization), y))
    alpha = float(model.alpha)
    try:
        solved = rows.mapInPandas(lambda batches: solve_batches(batches, fixed, alpha), SOLVED_SCHEMA).toPandas()
    finally:
        fixed.unpersist()
    out = np.zeros((n_rows, y.shape[1]), dtype=np.float32)
    if len(solved):
        out[solved["row"].to_numpy(np.int64)] = np.frombuffer(b"".join(solved["factors"]), dtype=np.float32).reshape(
            len(solved), y.shape[1]
        )
    return out


def train_als(spark: SparkSession, data: SparkInteractions, model: ALS | None = None, **params: Any) -> ALS:
    """Fit `model` (or ``ALS(**params)``) on the prepared log with Spark; returns the model.

    The model's own hyper-parameters (factors, regularization, alpha, iterations, seed) are used;
    its `solver` is recorded as "cholesky", the in-process trainer this one reproduces."""
    model = model if model is not None else ALS(**params)
    model.solver = "cholesky"
    if data.n_users == 0:
        raise ValueError("no events with an item to train on")
    by_user = group_rows(data.ratings, "u", "i").cache()
    by_item = group_rows(data.ratings, "i", "u").cache()
    try:
        users, items = model.initial_factors(data.n_users, data.n_items)
        for _ in range(model.iterations):
            users = half_step(spark, by_user, items, data.n_users, model)
            items = half_step(spark, by_item, users, data.n_items, model)
    finally:
        by_user.unpersist()
        by_item.unpersist()
    model.set_training_data(data.user_ids, data.item_ids, data.user_items(), data.user_last_ts)
    return model.set_factors(users, items)
