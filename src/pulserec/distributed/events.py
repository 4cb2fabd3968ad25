"""The interaction log as a Spark DataFrame, and its preparation for training.

Sources:

* an event export in Parquet or CSV (a file or a directory of parts, on shared storage for a
  cluster) with the stored-event columns ``user_id, item_id, type, ts`` and optionally
  ``session_id`` (anonymous owners), ``seq`` (log order) and ``dwell_seconds`` (a view's visible
  time);
* the engine's SQLite store (``--data-dir``), read in pandas chunks and staged as Parquet;
* a MovieLens directory, staged the same way.

:func:`prepare` turns events into what the trainers need: dense user/item indices numbered
exactly as :meth:`Interactions.from_frame` numbers them on the time-sorted log (by first event
time, ties by log order), and the summed event weight of every (user, item) pair. The weight
is the settings' `weighting` (event_weights.py: type weight x dwell factor) written as a Spark
expression from the same parameters (:func:`weight_column`), so a long read counts on Spark as it
does in process.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pulserec.event_weights import FACTOR_STEP, DwellCurve, EventWeights
from pulserec.events import SESSION_PREFIX
from pulserec.ids import IdIndex

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from pulserec.config import Settings

#: Columns kept from any source; `session_id`, `seq` and `dwell_seconds` may be missing in an export.
STRING_COLUMNS = ("user_id", "session_id", "item_id", "type")


def read_events(spark: SparkSession, path: str | os.PathLike[str]) -> DataFrame:
    """An event export (Parquet, or CSV with a header) as a DataFrame: a file or a directory.

    Remote paths (``hdfs://``, ``s3a://``) are passed to Spark as they are."""
    text = str(path)
    is_csv = text.endswith(".csv") or (Path(text).is_dir() and any(Path(text).glob("*.csv")))
    if is_csv:
        frame = spark.read.csv(text, header=True, inferSchema=False).withColumn("ts", _col("ts").cast("double"))
        return frame.withColumn("dwell_seconds", _col("dwell_seconds").cast("double")) if "dwell_seconds" in frame.columns else frame
    return spark.read.parquet(text)


def stage_frames(frames: Iterable[pd.DataFrame], directory: str | os.PathLike[str] | None = None) -> str:
    """Write event frames (pandas chunks) as Parquet parts Spark can read; returns the directory.

    Each part gets a `seq` column numbering rows in the order given (the log order). For a
    cluster, `directory` must be on storage the executors can read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="pulserec-events-"))
    out.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([(c, pa.string()) for c in STRING_COLUMNS]
                       + [("ts", pa.float64()), ("seq", pa.int64()), ("dwell_seconds", pa.float64())])
    offset = 0
    for part, frame in enumerate(frames):
        columns = {c: _as_strings(frame[c]) if c in frame else pd.Series([None] * len(frame), dtype=object)
                   for c in STRING_COLUMNS}
        columns["ts"] = frame["ts"].astype("float64").to_numpy()
        columns["seq"] = np.arange(offset, offset + len(frame), dtype=np.int64)
        columns["dwell_seconds"] = (pd.to_numeric(frame["dwell_seconds"], errors="coerce").to_numpy(np.float64)
                                    if "dwell_seconds" in frame else np.full(len(frame), np.nan))
        offset += len(frame)
        table = pa.Table.from_pandas(pd.DataFrame(columns), schema=schema, preserve_index=False)
        pq.write_table(table, out / f"part-{part:05d}.parquet")
    if offset == 0:
        pq.write_table(schema.empty_table(), out / "part-00000.parquet")
    return str(out)


def store_frames(data_dir: str | os.PathLike[str] | None) -> Iterable[pd.DataFrame]:
    """The SQLite store's events in log order, chunk by chunk (never the whole log in memory)."""
    from pulserec.config import Settings
    from pulserec.store import SQLiteStore

    db = Path(Settings.load(data_dir).db_path)
    if not db.is_file():
        raise FileNotFoundError(f"no event store at {db} (pass --data-dir, --events or --movielens)")
    store = SQLiteStore(db)
    try:
        yield from store.iter_events()
    finally:
        store.close()


def load_events(
    spark: SparkSession,
    events: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    movielens: str | os.PathLike[str] | None = None,
    staging_dir: str | os.PathLike[str] | None = None,
) -> tuple[DataFrame, Settings]:
    """Events from an export (`events`), MovieLens, or the store in `data_dir`, with the settings
    (event weights) of `data_dir`."""
    from pulserec.config import Settings

    settings = Settings.load(data_dir)
    if events is not None:
        return read_events(spark, events), settings
    if movielens is not None:
        from pulserec.ingest.movielens import read_ratings

        return read_events(spark, stage_frames([read_ratings(movielens)], staging_dir)), settings
    return read_events(spark, stage_frames(store_frames(data_dir), staging_dir)), settings


def as_weighting(event_weights: EventWeights | Mapping[str, float]) -> EventWeights:
    """The settings' `weighting`; a plain mapping gives the type weights alone (as Interactions.from_frame)."""
    return event_weights if isinstance(event_weights, EventWeights) else EventWeights(event_weights, ())


def dwell_factor_column(curve: DwellCurve, dwell: Column) -> Column:
    """:meth:`DwellCurve.factors` as a Spark expression (null dwell -> 1): the same formula from
    the same parameters, rounded half to even (``bround``, as ``np.round``) to FACTOR_STEP."""
    from pyspark.sql import functions as F

    grown = F.lit(1.0) + F.lit(curve.max_factor - 1.0) * F.log(F.greatest(dwell, F.lit(curve.bounce_s)) / F.lit(
        curve.bounce_s)) / F.lit(float(np.log(curve.cap_s / curve.bounce_s)))
    factor = F.least(F.bround(grown / F.lit(FACTOR_STEP), 0) * F.lit(FACTOR_STEP), F.lit(curve.max_factor))
    return (F.when(dwell.isNull() | F.isnan(dwell), F.lit(1.0))
            .when(dwell < F.lit(curve.bounce_s), F.lit(curve.bounce_factor)).otherwise(factor))


def weight_column(events: DataFrame, weighting: EventWeights) -> Column:
    """Each event's weight (:meth:`EventWeights.of_frame`; 1 for a type without a weight, as the
    in-process loader counts it): the type's weight, times the dwell factor for `dwell_types`."""
    from pyspark.sql import functions as F

    weights = F.create_map(*[F.lit(x) for pair in weighting.base.items() for x in pair])
    weight = F.coalesce(weights[F.col("type")], F.lit(1.0)).cast("double")
    if "dwell_seconds" not in events.columns or not weighting.dwell_types:
        return weight
    scaled = F.col("type").isin(*sorted(weighting.dwell_types))
    dwell = F.col("dwell_seconds").cast("double")
    return F.when(scaled, weight * dwell_factor_column(weighting.curve, dwell)).otherwise(weight)


def owner_events(events: DataFrame, event_weights: EventWeights | Mapping[str, float]) -> DataFrame:
    """Rows with an item as (owner, item_id, w, ts, ord): the owner is the user id, or the
    session key of an anonymous event (as :func:`pulserec.events.owner_keys`); `w` the event's
    weight (:func:`weight_column`); `ord` the log order."""
    from pyspark.sql import functions as F

    owner = F.col("user_id").cast("string")
    if "session_id" in events.columns:
        session = F.concat(F.lit(SESSION_PREFIX), F.coalesce(F.col("session_id").cast("string"), F.lit("None")))
        owner = F.when(owner.isNotNull() & (owner != ""), owner).otherwise(session)
    order = F.col("seq").cast("long") if "seq" in events.columns else F.monotonically_increasing_id()
    return events.where(F.col("item_id").isNotNull()).select(
        owner.alias("owner"),
        F.col("item_id").cast("string").alias("item_id"),
        weight_column(events, as_weighting(event_weights)).cast("float").alias("w"),
        F.col("ts").cast("double").alias("ts"),
        order.alias("ord"),
    )


@dataclass
class SparkInteractions:
    """The prepared log: `ratings` is a cached DataFrame (u int, i int, w float) with one row per
    (user, item) pair and the summed weight; the id indices and per-user last event time are on
    the driver (they are part of every trained model)."""

    ratings: DataFrame
    user_ids: IdIndex
    item_ids: IdIndex
    user_last_ts: np.ndarray
    n_events: int

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def user_items(self) -> sp.csr_matrix:
        """The user x item weight matrix on the driver (as :meth:`Interactions.to_csr`)."""
        frame = self.ratings.toPandas()
        matrix = sp.csr_matrix(
            (frame["w"].to_numpy(np.float32), (frame["u"].to_numpy(np.int64), frame["i"].to_numpy(np.int64))),
            shape=(self.n_users, self.n_items), dtype=np.float32,
        )
        matrix.sum_duplicates()
        return matrix


def prepare(spark: SparkSession, events: DataFrame, event_weights: EventWeights | Mapping[str, float]) -> SparkInteractions:
    """Index owners and items (numbered by first (ts, log order), as the in-process loader does)
    and sum the weights of every (user, item) pair."""
    from pyspark.sql import functions as F

    rows = owner_events(events, event_weights).cache()
    user_map, user_ids = _index(spark, rows, "owner", "u")
    item_map, item_ids = _index(spark, rows, "item_id", "i")
    indexed = rows.join(F.broadcast(user_map), "owner").join(F.broadcast(item_map), "item_id")
    ratings = indexed.groupBy("u", "i").agg(F.sum("w").cast("float").alias("w")).cache()
    last = indexed.groupBy("u").agg(F.max("ts").alias("ts")).toPandas()
    user_last_ts = np.full(len(user_ids), -np.inf)
    user_last_ts[last["u"].to_numpy(np.int64)] = last["ts"].to_numpy(np.float64)
    n_events = rows.count()
    rows.unpersist()
    return SparkInteractions(ratings, user_ids, item_ids, user_last_ts, n_events)


def _index(spark: SparkSession, rows: DataFrame, column: str, name: str) -> tuple[DataFrame, IdIndex]:
    """Distinct values of `column` numbered by first appearance in (ts, ord) order: the index on
    the driver and a (column, name) mapping DataFrame."""
    from pyspark.sql import functions as F

    first = rows.groupBy(column).agg(F.min(F.struct("ts", "ord")).alias("first"))
    ids = first.orderBy(F.col("first.ts"), F.col("first.ord")).select(column).toPandas()[column].tolist()
    mapping = pd.DataFrame({column: pd.Series(ids, dtype=object), name: np.arange(len(ids), dtype=np.int32)})
    schema = f"{column} string, {name} int"
    return spark.createDataFrame(mapping, schema=schema), IdIndex(ids)


def _col(name: str):
    from pyspark.sql import functions as F

    return F.col(name)


def _as_strings(column: pd.Series) -> pd.Series:
    """Non-null values as str (as the in-process loader's ``astype(str)``), nulls as None."""
    return column.astype(object).where(column.notna(), None).map(lambda v: v if v is None else str(v))
