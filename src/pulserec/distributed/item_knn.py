"""Item-item similarity on Spark: BM25 (or TF-IDF) weighted cosine with top-k pruning, producing
the same :class:`~pulserec.models.item_knn_bm25.ItemKNNBM25` as the in-process trainer.

The in-process model treats every item as a document over the users who touched it. Here:

1. column statistics in Spark: idf per user (from the number of items they touched) and each
   item's length (summed weight) and the mean length;
2. the weighted entries, L2-normalised per item;
3. cosine = sum over shared users of the products of normalised weights: a self-join on the
   user (co-occurrence), aggregated by (item, item); with `shrink`, damped by the number of
   co-raters as in-process;
4. the k largest positive similarities per item (a window; ties by item index), collected into
   the model's sparse similarity matrix.

Step 3 grows with the square of a user's item count; very heavy users (bots, crawlers) are
worth capping before training on a large log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from pulserec.models.item_knn_bm25 import ItemKNNBM25
from pulserec.models.weighting import RowWeighting

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from pulserec.distributed.events import SparkInteractions


def weighted_entries(data: SparkInteractions, model: ItemKNNBM25) -> DataFrame:
    """(i, u, v): the item x user matrix weighted as :class:`RowWeighting` does, rows L2-normalised."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    RowWeighting(model.weighting)  # validates the scheme name
    entries = data.ratings.select("i", "u", F.col("w").cast("double").alias("w"))
    if model.weighting != "none":
        n_rows = max(data.n_items, 1)
        users = entries.groupBy("u").agg(F.count("*").alias("df"))
        idf = F.greatest(F.log(F.lit(float(n_rows))) - F.log1p(F.col("df")), F.lit(0.0)) + F.lit(1e-6)
        entries = entries.join(users.select("u", idf.alias("idf")), "u")
        entries = entries.withColumn("v", _term_frequency(entries, data, model) * F.col("idf"))
    else:
        entries = entries.withColumn("v", F.col("w"))
    entries = entries.withColumn("v", F.col("v").cast("float").cast("double"))
    norm = F.sqrt(F.sum(F.col("v") * F.col("v")).over(Window.partitionBy("i")))
    return entries.select("i", "u", (F.col("v") / norm).alias("v"))


def _term_frequency(entries: DataFrame, data: SparkInteractions, model: ItemKNNBM25) -> Column:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = F.col("w")
    if model.weighting == "tfidf":
        return 1.0 + F.greatest(F.log(F.greatest(w, F.lit(1e-12))), F.lit(0.0))
    total = entries.agg(F.sum("w")).first()[0] or 0.0
    mean_length = total / data.n_items if data.n_items and total > 0 else 1.0
    length = F.sum(w).over(Window.partitionBy("i"))
    norm = model.k1 * (1.0 - model.b + model.b * length / mean_length)
    return w * (model.k1 + 1.0) / (w + norm)


def top_k_similarities(vectors: DataFrame, k: int, shrink: float = 0.0) -> DataFrame:
    """(i, j, sim) for the k most similar items j != i of every item i (positive cosine only)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    left = vectors.select("u", F.col("i"), F.col("v").alias("vi"))
    right = vectors.select("u", F.col("i").alias("j"), F.col("v").alias("vj"))
    pairs = left.join(right, "u").where(F.col("i") != F.col("j"))
    sims = pairs.groupBy("i", "j").agg(F.sum(F.col("vi") * F.col("vj")).alias("sim"), F.count("*").alias("support"))
    if shrink > 0:
        sims = sims.withColumn("sim", F.col("sim") * F.col("support") / (F.col("support") + F.lit(float(shrink))))
    rank = F.row_number().over(Window.partitionBy("i").orderBy(F.col("sim").desc(), F.col("j")))
    return sims.where(F.col("sim") > 0).withColumn("rank", rank).where(F.col("rank") <= k).select("i", "j", "sim")


def train_item_knn(data: SparkInteractions, model: ItemKNNBM25 | None = None, **params: Any) -> ItemKNNBM25:
    """Fit `model` (or ``ItemKNNBM25(**params)``) on the prepared log with Spark; returns it."""
    model = model if model is not None else ItemKNNBM25(**params)
    if data.n_items == 0:
        raise ValueError("no events with an item to train on")
    neighbours = top_k_similarities(weighted_entries(data, model), model.k, model.shrink).toPandas()
    model.user_ids = data.user_ids
    model.item_ids = data.item_ids
    model.user_items = data.user_items()
    model.similarity = sp.csr_matrix(
        (neighbours["sim"].to_numpy(np.float32), (neighbours["i"].to_numpy(np.int64), neighbours["j"].to_numpy(np.int64))),
        shape=(data.n_items, data.n_items), dtype=np.float32,
    )
    return model
