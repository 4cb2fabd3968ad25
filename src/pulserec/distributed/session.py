"""A SparkSession for training: `local[N]` on one machine or `spark://host:7077` on a cluster.

Settings come from arguments, else from the environment (``PULSEREC_SPARK_MASTER``,
``PULSEREC_SPARK_EXECUTOR_MEMORY``, ``PULSEREC_SPARK_DRIVER_MEMORY``, ``PULSEREC_SPARK_CONF`` as
comma-separated ``key=value`` pairs). The executors run this very pulserec code: the package
the driver imported is zipped and shipped with ``addPyFile``, so a cluster needs only Python
with numpy/scipy/pandas/pyarrow, not a pulserec install.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[2]"


def parse_conf(pairs: str | list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """``key=value`` pairs (a list, or one comma-separated string) as a dict."""
    if not pairs:
        return {}
    items = pairs.split(",") if isinstance(pairs, str) else list(pairs)
    conf = {}
    for item in items:
        key, sep, value = item.strip().partition("=")
        if not sep or not key:
            raise ValueError(f"expected key=value, got {item!r}")
        conf[key.strip()] = value.strip()
    return conf


@dataclass(frozen=True)
class SparkConfig:
    """Where and how to run. Anything not covered by a field goes into `conf`."""

    master: str = DEFAULT_MASTER
    app_name: str = "pulserec-train"
    driver_memory: str = "2g"
    executor_memory: str | None = None
    shuffle_partitions: int = 4
    conf: dict[str, str] = field(default_factory=dict)
    ship_code: bool = True

    @classmethod
    def from_env(cls, master: str | None = None, executor_memory: str | None = None,
                 conf: dict[str, str] | None = None) -> SparkConfig:
        """Arguments first, then ``PULSEREC_SPARK_*`` environment variables, then defaults."""
        env = os.environ
        merged = {**parse_conf(env.get("PULSEREC_SPARK_CONF")), **(conf or {})}
        return cls(
            master=master or env.get("PULSEREC_SPARK_MASTER") or DEFAULT_MASTER,
            driver_memory=env.get("PULSEREC_SPARK_DRIVER_MEMORY") or "2g",
            executor_memory=executor_memory or env.get("PULSEREC_SPARK_EXECUTOR_MEMORY"),
            conf=merged,
        )

    def options(self) -> dict[str, str]:
        """Every Spark setting this config stands for."""
        options = {
            "spark.app.name": self.app_name,
            "spark.driver.memory": self.driver_memory,
            "spark.sql.shuffle.partitions": str(self.shuffle_partitions),
            "spark.ui.enabled": "false",
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.sql.session.timeZone": "UTC",
        }
        if self.executor_memory:
            options["spark.executor.memory"] = self.executor_memory
        options.update(self.conf)
        return options


def spark_session(config: SparkConfig | None = None) -> SparkSession:
    """Start (or join) the SparkSession described by `config`.

    Python workers use this interpreter in local mode (``PYSPARK_PYTHON`` if set wins)."""
    from pyspark.sql import SparkSession

    config = config or SparkConfig.from_env()
    if config.master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(config.master)
    for key, value in config.options().items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    if config.ship_code:
        ship_package(spark)
    return spark


_SHIPPED: dict[int, str] = {}


def ship_package(spark: SparkSession) -> str:
    """Zip the pulserec package the driver runs and add it to the executors' Python path
    (once per SparkContext). Returns the zip's path."""
    context = spark.sparkContext
    key = id(context)
    if key in _SHIPPED:
        return _SHIPPED[key]
    import pulserec

    root = Path(pulserec.__file__).resolve().parent
    scratch = tempfile.mkdtemp(prefix="pulserec-spark-")
    atexit.register(shutil.rmtree, scratch, True)
    target = Path(scratch) / "pulserec.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" not in path.parts:
                archive.write(path, Path("pulserec") / path.relative_to(root))
    context.addPyFile(str(target))
    _SHIPPED[key] = str(target)
    return str(target)
