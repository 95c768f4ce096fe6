"""Great Expectations' Spark data source over bronze: a table's partitions as a DataFrame."""
from __future__ import annotations

import threading

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from mydata import progress, storage
from mydata.spark import concurrently
from mydata.validation import ExpectationOutcome, TableValidation, Written, new_context, run_suite
from schemas.bronze import TABLES
from schemas.dialects import SPARK
from schemas.expectations import PARTITION
from schemas.sql import empty_table


def _validator():
    """A context whose data source takes Spark DataFrames, and its batch definition."""
    context = new_context()
    batch = context.data_sources.add_spark("bronze").add_dataframe_asset("partitions") \
        .add_batch_definition_whole_dataframe("run")
    return context, batch


def validate_frame(frame, table: str, context=None, batch=None) -> list[ExpectationOutcome]:
    """``run_suite`` over a Spark DataFrame."""
    if context is None:
        context, batch = _validator()
    cached_by_caller = frame.is_cached
    try:
        return run_suite(table, context, lambda: batch.get_batch(batch_parameters={"dataframe": frame}), frame.count)
    finally:
        if not cached_by_caller:
            # the Spark data source caches each batch it validates and never releases it: without
            # this a run kept every table it checked in the driver's heap (2.6 GiB at 100k subjects)
            frame.unpersist()


def validate(spark: SparkSession, written: list[Written]) -> list[TableValidation]:
    """Every table written, over the delivery dates it was written for.

    Tables are checked side by side (a small table's checks are mostly fixed per-job cost on the
    driver), each thread with a Great Expectations context of its own: a context's Spark engine
    holds one active batch at a time."""
    contexts = threading.local()

    def check(table: Written) -> TableValidation:
        if not hasattr(contexts, "validator"):
            contexts.validator = _validator()
        frame = storage.read_table(spark, table.path)
        if frame is None:
            frame = spark.sql(empty_table(SPARK, TABLES[table.table]))
        frame = frame.where(F.col(PARTITION).isin(*sorted(table.accepted)))
        with progress.step("validate", table.table) as shown:
            outcomes = validate_frame(frame, table.table, *contexts.validator)
            rows = next((o.checked for o in outcomes if o.checked is not None), sum(table.accepted.values()))
            shown.advance(rows)
        return TableValidation(table.table, [d.isoformat() for d in sorted(table.accepted)], rows, outcomes)

    return concurrently([(check, table) for table in written])
