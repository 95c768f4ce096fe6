"""Withdrawal purge: every subject whose consent for a purpose is withdrawn (for any fused source)
leaves every derived table of that purpose in one run.

Derived tables are found, not listed: any ``silver/<table>/purpose=<p>/`` or
``gold/<table>/purpose=<p>/`` whose partitions carry a ``pseudonym`` column, so tables added
later (features, segment assignments) are purged without changing this job. Only partitions
holding a withdrawn subject are rewritten, each atomically. What was purged (pseudonyms and row
counts, never link keys) is appended to ``consent/purge_audit.jsonl``.
"""
from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import consent, storage
from jobs.pseudonym import with_pseudonym
from mydata.config import Settings
from mydata.keys import KeyStore
from mydata.lake import Lake
from mydata.manifest import RunManifest
from mydata.spark import SESSION_TIME_ZONE, concurrently
from schemas.silver import FUSED_SOURCES

JOB = "purge"


def withdrawn_subjects(ledger: DataFrame, purpose: str, moment: datetime) -> DataFrame:
    """(link_key, key_version) whose latest event for some fused source, at ``moment``, is a withdrawal."""
    states = consent.consent_states(ledger, purpose, moment)
    return (states.where((F.col("state") == "withdrawn") & F.col("source").isin(*FUSED_SOURCES))
            .select("link_key", "key_version").distinct())


def derived_partitions(lake: Lake, purpose: str) -> list[tuple[str, Path]]:
    """(table, partition folder) of every derived table of ``purpose``: ``<zone>/<table>/purpose=<p>/<key>=<v>``."""
    found = []
    for zone in (lake.silver, lake.gold):
        for table in sorted(p for p in zone.iterdir() if p.is_dir()) if zone.is_dir() else []:
            folder = table / f"purpose={purpose}"
            for partition in sorted(folder.glob("*=*")) if folder.is_dir() else []:
                if partition.is_dir() and any(partition.glob("*.parquet")):
                    found.append((f"{zone.name}/{table.name}", partition))
    return found


def purge_partition(spark: SparkSession, partition: Path, pseudonyms: DataFrame, run_id: str) -> dict[str, int]:
    """Rewrite one partition without the given pseudonyms; rows removed per pseudonym found."""
    frame = spark.read.parquet(str(partition))
    if "pseudonym" not in frame.columns:
        return {}
    hits = {r["pseudonym"]: int(r["count"]) for r in
            frame.join(F.broadcast(pseudonyms), "pseudonym", "left_semi").groupBy("pseudonym").count().collect()}
    if hits:
        key, value = partition.name.split("=", 1)
        kept = (frame.join(F.broadcast(pseudonyms), "pseudonym", "left_anti")
                .withColumn(key, F.lit(value).cast("date")))
        storage.replace_partitions(kept, partition.parent, [date.fromisoformat(value)], run_id, key=key)
    return hits


def purge_table(spark: SparkSession, partitions: list[Path], pseudonyms: DataFrame,
                run_id: str) -> dict[Path, dict[str, int]]:
    """``purge_partition`` over one table's partitions, in order: hits per partition."""
    return {partition: purge_partition(spark, partition, pseudonyms, run_id) for partition in partitions}


def audit_path(lake: Lake) -> Path:
    return lake.consent / "purge_audit.jsonl"


def read_audit(lake: Lake) -> list[dict]:
    path = audit_path(lake)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if path.is_file() else []


def run(settings: Settings, spark: SparkSession | None = None, moment: datetime | None = None) -> dict:
    """Purge withdrawn subjects of ``settings.purpose`` from silver and gold, as of now (or ``moment``)."""
    from mydata.spark import spark_session

    lake, purpose = settings.lake, settings.purpose
    moment = moment or datetime.now(ZoneInfo(SESSION_TIME_ZONE))
    spark = spark or spark_session(settings, "purge")
    manifest = RunManifest.start(JOB, purpose=purpose, moment=moment.isoformat())
    ledger = consent.read_ledger(spark, lake)
    partitions = derived_partitions(lake, purpose)
    removed: dict[str, int] = {}
    found: list[str] = []
    keystore = KeyStore.open(settings)
    versions = keystore.purpose_versions(purpose)
    withdrawn_count = 0
    if ledger is not None and partitions:
        withdrawn = withdrawn_subjects(ledger, purpose, moment).cache()
        withdrawn_count = withdrawn.count()
        # a table may still be keyed with an older purpose secret: every version's pseudonyms go
        pseudonyms = None
        for version in versions:
            keyed = with_pseudonym(withdrawn, keystore.purpose_secret(purpose, version)).select("pseudonym")
            pseudonyms = keyed if pseudonyms is None else pseudonyms.unionByName(keyed)
        pseudonyms = pseudonyms.distinct().cache()
        purged: set[str] = set()
        by_table: dict[str, list[Path]] = {}
        for table, partition in partitions:
            by_table.setdefault(table, []).append(partition)
        # tables side by side, each table's partitions one after another: they share its folder
        # for what a swap sets aside
        hits_of: dict[Path, dict[str, int]] = {}
        for found_in_table in concurrently([(purge_table, spark, parts, pseudonyms, manifest.run_id)
                                            for parts in by_table.values()]):
            hits_of.update(found_in_table)
        for table, partition in partitions:
            hits = hits_of[partition]
            if hits:
                removed[f"{table}/{partition.name}"] = sum(hits.values())
                purged.update(hits)
        found = sorted(purged)
        spark.catalog.clearCache()
    entry = {"run_id": manifest.run_id, "at": moment.isoformat(), "purpose": purpose,
             "purpose_key_versions": versions, "withdrawn_subjects": withdrawn_count,
             "rows_removed": removed, "pseudonyms": found}
    if removed:
        audit = audit_path(lake)
        audit.parent.mkdir(parents=True, exist_ok=True)
        with open(audit, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")
    manifest.inputs = {"partitions_checked": len(partitions), "withdrawn_subjects": withdrawn_count}
    manifest.outputs = {"rows_removed": removed, "rows_removed_total": sum(removed.values()),
                        "pseudonyms_purged": len(found), "audit": str(audit_path(lake)) if removed else None}
    path = manifest.finish(lake, "succeeded")
    return {"manifest": str(path), **manifest.outputs}


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load()), file=sys.stdout)
