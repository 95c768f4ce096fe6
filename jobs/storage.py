"""Atomic, idempotent partition replacement for plain Parquet tables (no Delta/Iceberg here).

A run writes its partitions aside (``<table>/_staging/<run_id>/dt=...``), then swaps each one in
with two renames: the old partition to ``_trash/<run_id>/``, the new one into place. Readers
never see a half-written partition: a run killed while writing leaves only staging behind, and
a run killed between the two renames is rolled back by ``recover`` (the next writer calls it),
which puts the old partition back. Rerunning a date replaces its partition, never appends.
Spark ignores the ``_staging`` and ``_trash`` folders when it reads the table.
"""
from __future__ import annotations

import os
import shutil
import uuid
from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

STAGING, TRASH = "_staging", "_trash"


def _live(entry: Path, run_id: str | None) -> bool:
    """Staging or trash of the running ``run_id`` (one of its concurrent writes), not leftovers."""
    return run_id is not None and entry.name.startswith(run_id)


def recover(table: Path, run_id: str | None = None) -> list[str]:
    """Undo what an interrupted swap left behind, sparing the writes of the running ``run_id``;
    return what it did."""
    done = []
    trash_root = table / TRASH
    for run in sorted(trash_root.iterdir()) if trash_root.is_dir() else []:
        if _live(run, run_id):
            continue
        for old in sorted(run.iterdir()):
            final = table / old.name
            if not final.exists():
                os.rename(old, final)
                done.append(f"restored {final.name} from interrupted run {run.name}")
        shutil.rmtree(run)
    staging_root = table / STAGING
    if staging_root.is_dir():
        for run in sorted(staging_root.iterdir()):
            if _live(run, run_id):
                continue
            shutil.rmtree(run)
            done.append(f"removed staging of interrupted run {run.name}")
    return done


def replace_partitions(frame: DataFrame, table: Path, dts: list[date], run_id: str,
                       tables: list[str] | None = None, key: str = "dt") -> None:
    """Make ``frame`` (with a ``key`` column, ``dt`` by default) the whole content of partitions
    ``dts`` of ``table``.

    With ``tables``, ``frame`` has a ``table`` column and ``table`` is the folder holding one
    table per value (quarantine/<table>/dt=...): one write job serves them all. Writes of one run
    may go on concurrently into one folder when their ``tables`` differ: each stages aside.
    """
    targets = [table / name for name in tables] if tables is not None else [table]
    for target in {table, *targets}:
        target.mkdir(parents=True, exist_ok=True)
        recover(target, run_id)
    staging = table / STAGING / f"{run_id}.{uuid.uuid4().hex[:8]}"
    keys = ["table", key] if tables is not None else [key]
    frame.write.mode("overwrite").partitionBy(*keys).parquet(str(staging))
    for target in targets:
        source = staging / f"table={target.name}" if tables is not None else staging
        trash = target / TRASH / run_id
        trash.mkdir(parents=True, exist_ok=True)
        for dt in dts:
            name = f"{key}={dt.isoformat()}"
            final, new = target / name, source / name
            if final.exists():
                os.rename(final, trash / name)
            if new.exists():
                os.rename(new, final)
        shutil.rmtree(trash)
    shutil.rmtree(staging)
    for target in {table, *targets}:
        for empty in (target / STAGING, target / TRASH):
            try:
                empty.rmdir()
            except OSError:  # not there, or still in use by a concurrent write of the run
                pass


def has_data(table: Path) -> bool:
    """Any Parquet file in a partition folder (``dt=``, ``as_of=``, …), one or two levels down."""
    return any(p for p in table.glob("*=*/*.parquet")) or any(table.glob("*=*/*=*/*.parquet"))


def read_table(spark: SparkSession, table: Path) -> DataFrame | None:
    """The table's current partitions, or None when it holds no data yet."""
    return spark.read.parquet(str(table)) if table.is_dir() and has_data(table) else None
