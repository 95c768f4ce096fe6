"""Scoring: every row of a published feature snapshot gets its segment, in Spark.

The fitted pipeline is broadcast once and applied batch by batch with ``mapInPandas``, so a
snapshot of any size is scored on the executors and nothing is collected to the driver. Output:
``gold/segments/purpose=<p>/as_of=<date>/`` (pseudonym, segment, its label, model version), which the
purge finds like any derived table.
"""
from __future__ import annotations

import sys
from typing import Iterator

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import storage
from mydata.config import ConfigError, Settings
from mydata.manifest import RunManifest

JOB = "score"
SEGMENTS = "segments"


def assign_segments(snapshot: DataFrame, pipeline, features: list[str]) -> DataFrame:
    """(pseudonym, segment) for every row of ``snapshot``, computed on the executors."""
    from pyspark.sql.utils import is_remote

    # a Spark Connect client has no SparkContext to broadcast with: there the model travels in
    # the function's closure, once per task
    model = None if is_remote() else snapshot.sparkSession.sparkContext.broadcast(pipeline)
    columns = list(features)

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        fitted = pipeline if model is None else model.value
        for batch in batches:
            if len(batch):
                yield pd.DataFrame({"pseudonym": batch["pseudonym"],
                                    "segment": fitted.predict(batch[columns]).astype("int32")})

    return snapshot.select("pseudonym", *columns).mapInPandas(predict, "pseudonym string, segment int")


def with_labels(segments: DataFrame, metadata: dict) -> DataFrame:
    """Each segment's readable label from the model's profile, as a literal map (no join)."""
    labels = {s["segment"]: s["label"] for s in metadata.get("profile", {}).get("segments", [])}
    if not labels:
        return segments.withColumn("segment_label", F.lit(None).cast("string"))
    mapping = F.create_map(*[F.lit(x) for item in sorted(labels.items()) for x in item])
    return segments.withColumn("segment_label", mapping[F.col("segment")])


def run(settings: Settings, spark: SparkSession | None = None, version: str | None = None) -> dict:
    """Score the published snapshot of ``settings.purpose`` as of ``settings.as_of`` with the current
    model (or ``version``)."""
    from jobs.privacy import gold_table
    from models import registry
    from mydata.spark import spark_session

    if settings.as_of is None:
        raise ConfigError("scoring needs an as-of date (--as-of YYYY-MM-DD or MYDATA_AS_OF)")
    lake, purpose, as_of = settings.lake, settings.purpose, settings.as_of
    chosen = registry.get(lake, purpose, version)
    folder = gold_table(lake, purpose) / f"as_of={as_of.isoformat()}"
    if not folder.is_dir():
        raise FileNotFoundError(f"no published feature snapshot {folder}: run features and release first")
    spark = spark or spark_session(settings, "score")
    manifest = RunManifest.start(JOB, purpose=purpose, as_of=as_of.isoformat(), model=chosen.version)
    snapshot = spark.read.parquet(str(folder))
    segments = with_labels(assign_segments(snapshot, chosen.load(), chosen.metadata["features"]), chosen.metadata)
    segments = segments.withColumn("model_version", F.lit(chosen.version)).withColumn("as_of", F.lit(as_of))
    target = lake.gold / SEGMENTS / f"purpose={purpose}"
    storage.replace_partitions(segments, target, [as_of], manifest.run_id, key="as_of")
    written = spark.read.parquet(str(target / f"as_of={as_of.isoformat()}"))
    sizes = {int(r["segment"]): int(r["count"]) for r in written.groupBy("segment").count().collect()}
    manifest.inputs = {"snapshot": str(folder), "model": chosen.version,
                       "consent_snapshot": chosen.metadata.get("consent_snapshot")}
    manifest.outputs = {"segments": str(target / f"as_of={as_of.isoformat()}"), "rows": sum(sizes.values()),
                        "sizes": dict(sorted(sizes.items()))}
    path = manifest.finish(lake)
    return {"manifest": str(path), **manifest.outputs, "model": chosen.version}


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load()), file=sys.stdout)
