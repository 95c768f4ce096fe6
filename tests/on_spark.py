"""Test helpers that read the lake or run checks from a SparkSession (the jobs take an Engine)."""
from __future__ import annotations

from functools import reduce
from typing import Any

from mydata import storage
from mydata.engines import Engine
from mydata.lake import Lake


def as_engine(session: Any) -> Engine:
    """An engine as it is, or a SparkSession as the Spark engine."""
    if isinstance(session, Engine):
        return session
    from mydata.engines.spark import SparkEngine

    return SparkEngine(session)


def read_ledger(spark, lake: Lake):
    """The consent ledger as a Spark DataFrame, or None when there is none."""
    return storage.read_table(spark, lake.ledger)


def verify_ledger(session, lake: Lake, keystore=None):
    """``jobs.consent.verify_ledger`` on a SparkSession or an engine."""
    from jobs import consent

    return consent.verify_ledger(as_engine(session), lake, keystore)


def read_quarantine(spark, lake: Lake):
    """Every quarantine table as one Spark frame with a ``table`` column."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    folders = sorted(p for p in lake.quarantine.iterdir() if p.is_dir() and not p.name.startswith("_")) \
        if lake.quarantine.is_dir() else []
    frames = [frame.withColumn("table", F.lit(folder.name)) for folder in folders
              if (frame := storage.read_table(spark, folder)) is not None]
    return reduce(DataFrame.unionByName, frames) if frames else None
