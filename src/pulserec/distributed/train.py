"""`pulserec train --engine spark`: load the log into Spark, train, return the model."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pulserec.distributed.events import SparkInteractions, load_events, prepare
from pulserec.distributed.session import SparkConfig, spark_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Models with a Spark trainer.
SPARK_MODELS = ("als", "item_knn_bm25")


@dataclass
class SparkTrainResult:
    model: Any
    data: SparkInteractions
    prepare_seconds: float
    train_seconds: float


def fit_on_spark(spark: SparkSession, name: str, data: SparkInteractions, params: dict[str, Any]) -> Any:
    """Train model `name` with `params` on prepared data."""
    if name == "als":
        from pulserec.distributed.als import train_als

        return train_als(spark, data, **params)
    if name == "item_knn_bm25":
        from pulserec.distributed.item_knn import train_item_knn

        return train_item_knn(data, **params)
    raise ValueError(f"no Spark trainer for {name!r}; choose one of {', '.join(SPARK_MODELS)}")


def train_with_spark(
    name: str,
    params: dict[str, Any] | None = None,
    events: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    movielens: str | os.PathLike[str] | None = None,
    config: SparkConfig | None = None,
    spark: SparkSession | None = None,
    staging_dir: str | os.PathLike[str] | None = None,
) -> SparkTrainResult:
    """Read the log (export, MovieLens or store), prepare it and train `name` on Spark.

    Uses `spark` if given, else starts a session from `config` (and leaves it running: a
    SparkSession is per process and cheap to reuse). The store or MovieLens log is staged as
    Parquet in `staging_dir` (kept; shared storage on a cluster) or in a temporary directory
    removed after training (local mode only)."""
    if name not in SPARK_MODELS:
        raise ValueError(f"no Spark trainer for {name!r}; choose one of {', '.join(SPARK_MODELS)}")
    spark = spark or spark_session(config)
    with contextlib.ExitStack() as stack:
        if events is None and staging_dir is None:  # a local scratch copy of the log, removed afterwards
            staging_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="pulserec-events-"))
        started = time.perf_counter()
        frame, settings = load_events(spark, events=events, data_dir=data_dir, movielens=movielens,
                                      staging_dir=staging_dir)
        data = prepare(spark, frame, settings.weighting)
        prepared = time.perf_counter()
        try:
            model = fit_on_spark(spark, name, data, params or {})
        finally:
            data.ratings.unpersist()
    return SparkTrainResult(model, data, prepared - started, time.perf_counter() - prepared)
