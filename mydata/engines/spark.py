"""The cluster engine: Spark (local mode, a standalone cluster, or Spark Connect).

Registered names are temporary views of the session; ``table`` caches its result, so several
outputs computed from one intermediate read it once.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from mydata import storage
from mydata.engines import Engine
from mydata.spark import concurrently
from schemas.dialects import SESSION_TIME_ZONE, SPARK

if TYPE_CHECKING:  # Great Expectations is imported only by a run that validates
    from mydata.validation import TableValidation, Written


class SparkEngine(Engine):
    name, dialect, sources_at_once, materializes = "spark", SPARK, 2, False

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self._cached: dict[str, Any] = {}
        self._names: set[str] = set()  # what close() drops: the session outlives the engine

    def lines(self, name: str, files: list[Path], streamed: bool = False) -> None:  # a view: read when used
        if not files:
            self.spark.createDataFrame([], "value string, bad_bytes boolean, file_path string, "
                                           "line_no long, dt date").createOrReplaceTempView(name)
            self._names.add(name)
            return
        lines = self.spark.read.text([str(p) for p in files]).select(
            "value", F.col("_metadata.file_path").alias("file_path"),
            F.col("_metadata.file_block_start").alias("_block"), F.monotonically_increasing_id().alias("_id"))
        # Spark reads a large file as blocks in different tasks; within a block ids are consecutive,
        # so a line's number is its place in its block plus the lines of the file's blocks before it
        blocks = (lines.groupBy("file_path", "_block")
                  .agg(F.min("_id").alias("_first"), F.count(F.lit(1)).alias("_lines"))
                  .withColumn("_before", F.sum("_lines").over(Window.partitionBy("file_path").orderBy("_block"))
                              - F.col("_lines")))
        # a byte-order mark before a file's first line is not part of the record
        unmarked = F.when((F.col("_block") == 0) & (F.col("_id") == F.col("_first")),
                          F.regexp_replace("value", "^\ufeff", "")).otherwise(F.col("value"))
        (lines.join(F.broadcast(blocks), ["file_path", "_block"])
         .withColumn("value", unmarked)
         .where(F.trim("value") != "")
         .selectExpr("CASE WHEN is_valid_utf8(value) THEN value ELSE make_valid_utf8(value) END AS value",
                     "NOT is_valid_utf8(value) AS bad_bytes", "file_path",
                     "_id - _first + _before + 1 AS line_no",
                     r"to_date(regexp_extract(file_path, '/dt=(\\d{4}-\\d{2}-\\d{2})/', 1)) AS dt")
         .createOrReplaceTempView(name))
        self._names.add(name)

    def arrow(self, name: str, table: pa.Table) -> None:
        self.spark.createDataFrame(table).createOrReplaceTempView(name)
        self._names.add(name)

    def table(self, name: str, sql: str) -> None:
        frame = self.spark.sql(sql).cache()
        self._cached[name] = frame
        frame.createOrReplaceTempView(name)
        self._names.add(name)

    def view(self, name: str, sql: str) -> None:
        self.spark.sql(sql).createOrReplaceTempView(name)
        self._names.add(name)

    def columns(self, name: str) -> list[str]:
        return self.spark.table(name).columns

    def map_batches(self, name: str, sql: str, fn: Callable[[Any], Any], schema: str) -> None:
        def apply(batches):  # runs on the executors, a batch of rows at a time
            for batch in batches:
                if len(batch):
                    yield fn(batch)

        self.spark.sql(sql).mapInPandas(apply, schema).createOrReplaceTempView(name)
        self._names.add(name)

    def parquet(self, name: str, path: Path) -> bool:
        frame = storage.read_table(self.spark, path)
        if frame is None:
            return False
        frame.createOrReplaceTempView(name)
        self._names.add(name)
        return True

    def partition(self, name: str, table: Path, key: str, value: date) -> bool:
        folder = table / f"{key}={value.isoformat()}"
        if not any(folder.glob("*.parquet")):
            return False
        self.spark.read.option("basePath", str(table)).parquet(str(folder)).createOrReplaceTempView(name)
        self._names.add(name)
        return True

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return [{k: _aware(v) for k, v in row.asDict().items()} for row in self.spark.sql(sql).collect()]

    def arrow_rows(self, sql: str) -> pa.Table:
        return self.spark.sql(sql).toArrow()

    def stage(self, sql: str, table: Path, dts: list[date], run_id: str,
              tables: list[str] | None = None, key: str = "dt") -> storage.Staged:
        return storage.stage(self.spark.sql(sql), table, dts, run_id, tables, key)

    def function(self, name: str, fn: Callable[..., Any], arguments: list[str], returns: str) -> None:
        from pyspark.sql.functions import udf

        # made here, so it is a Spark Connect UDF when the session is remote
        self.spark.udf.register(name, udf(fn, returns, useArrow=True))

    def concurrently(self, calls: list[tuple]) -> list:
        return concurrently(calls)

    def validate(self, written: list[Written], rows_at_once: int | None = None) -> list[TableValidation]:
        from mydata.engines import gx_spark

        return gx_spark.validate(self.spark, written)  # a table at a time, spread over the executors

    def drop(self, *names: str) -> None:
        # every cache released before any view goes: Spark Connect analyses a frame's plan again to
        # unpersist it, and that plan names the views it was built on
        for name in names:
            frame = self._cached.pop(name, None)
            if frame is not None:
                frame.unpersist()
        for name in names:
            self.spark.catalog.dropTempView(name)
            self._names.discard(name)

    def close(self) -> None:
        self.drop(*sorted(self._names))


def _aware(value: Any) -> Any:
    """An instant as the embedded engine gives it: PySpark collects a timestamp as a naive datetime
    in this process's local time, which ``astimezone`` reads as such, then shown in KST."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.astimezone(ZoneInfo(SESSION_TIME_ZONE))
    return value
