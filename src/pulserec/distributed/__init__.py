"""Distributed batch training on Apache Spark (issue 7).

The trainers here run on a Spark cluster (or `local[N]`) and produce the *same model objects*
as the in-process trainers, so `pulserec serve` loads them unchanged:

* :mod:`.session`  - a SparkSession from a master URL and cluster settings;
* :mod:`.events`   - the interaction log as a Spark DataFrame (Parquet/CSV export, the engine's
  SQLite store, MovieLens) and its preparation into indexed (user, item, weight) triples;
* :mod:`.als`      - implicit ALS (our objective) with exact per-row solves on the executors;
* :mod:`.item_knn` - BM25-weighted cosine item-item similarity with top-k pruning;
* :mod:`.train`    - `pulserec train --engine spark` glue.

pyspark is an optional dependency (``pip install 'pulserec[spark]'``); nothing here is imported
unless Spark training is asked for.
"""
