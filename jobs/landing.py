"""Landing inventory: which deliveries are complete, and how many records each holds.

The first stage of every pipeline run: it tells the data engineer what arrived, what is still
incomplete (no ``_SUCCESS``), and gives ingest the record counts it must reconcile against.
Runnable as ``python -m jobs.landing`` (spark-submit).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mydata.config import Settings
from mydata.lake import Lake, is_complete
from mydata.manifest import RunManifest
from schemas.landing import CSV_SOURCES, SOURCES

DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".csv", ".csv.gz")


@dataclass(frozen=True)
class Delivery:
    source: str
    dt: date
    path: Path
    complete: bool


def find_deliveries(lake: Lake, dt: date | None = None) -> list[Delivery]:
    """Every ``landing/<source>/dt=...`` folder of a known source (one date if ``dt`` is given)."""
    found = []
    for source in SOURCES:
        for folder in sorted((lake.landing / source).glob("dt=*")):
            try:
                day = date.fromisoformat(folder.name[3:])
            except ValueError:
                continue
            if dt is None or day == dt:
                found.append(Delivery(source, day, folder, is_complete(folder)))
    return found


def deliveries_ready(dt: date | str, settings: Settings | None = None) -> bool:
    """Every source has delivered ``dt`` completely (``_SUCCESS``): what the ingest DAG waits for."""
    lake = (settings or Settings.load()).lake
    day = dt if isinstance(dt, date) else date.fromisoformat(str(dt))
    complete = {d.source for d in find_deliveries(lake, day) if d.complete}
    return complete >= set(SOURCES)


def data_files(delivery: Delivery) -> list[Path]:
    return sorted(p for p in delivery.path.iterdir()
                  if p.is_file() and p.name.endswith(DATA_SUFFIXES) and not p.name.startswith((".", "_")))


def count_records(lines: DataFrame) -> DataFrame:
    """Records per (source, dt) from raw text lines with their file path; CSV headers excluded."""
    path = F.col("file_path")
    source = F.regexp_extract(path, r"/landing/([^/]+)/dt=", 1)
    dt = F.regexp_extract(path, r"/dt=(\d{4}-\d{2}-\d{2})/", 1)
    is_header = source.isin(*CSV_SOURCES) & F.col("value").startswith("link_key,key_version,")
    return (lines.where(F.trim("value") != "")
            .select(source.alias("source"), dt.alias("dt"), is_header.alias("is_header"))
            .groupBy("source", "dt")
            .agg(F.sum((~F.col("is_header")).cast("long")).alias("records"))
            .orderBy("source", "dt"))


def run(settings: Settings, spark: SparkSession | None = None) -> dict:
    """Count the records of every complete delivery (or of ``settings.delivery_date`` only)."""
    from mydata.spark import spark_session

    lake = settings.lake
    manifest = RunManifest.start("landing", dt=settings.delivery_date)
    deliveries = find_deliveries(lake, settings.delivery_date)
    complete = [d for d in deliveries if d.complete]
    waiting = [d for d in deliveries if not d.complete]
    manifest.notes += [f"waiting for _SUCCESS: {d.source} dt={d.dt}" for d in waiting]
    files = [str(p) for d in complete for p in data_files(d)]
    counts: dict[str, dict[str, int]] = {}
    if files:
        spark = spark or spark_session(settings, "landing-inventory")
        lines = spark.read.text(files).select("value", F.col("_metadata.file_path").alias("file_path"))
        for row in count_records(lines).collect():  # one small row per (source, dt)
            counts.setdefault(row["source"], {})[row["dt"]] = int(row["records"])
    manifest.inputs = {"deliveries_complete": len(complete), "deliveries_waiting": len(waiting),
                       "files": len(files)}
    manifest.outputs = {"records": counts,
                        "total_records": sum(n for by_dt in counts.values() for n in by_dt.values())}
    if not deliveries:
        manifest.notes.append(f"no deliveries under {lake.landing}")
    path = manifest.finish(lake)
    return {"manifest": str(path), "total_records": manifest.outputs["total_records"],
            "deliveries_complete": len(complete), "deliveries_waiting": len(waiting)}


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load(), None), file=sys.stdout)
