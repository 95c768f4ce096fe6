"""Consent-based fusion: bronze -> silver for one purpose and as-of date.

A subject (a link key and its key version) is fused when its consent for the purpose is valid at
the as-of date for every fused source and each of those sources delivered records for it. Fused
records leave bronze re-keyed to the purpose pseudonym, without what the purpose may not use
(schemas/silver.py), into ``silver/<table>/purpose=<purpose>/as_of=<date>/``. Every other subject
is counted by why it was left out: the linkage report.
"""
from __future__ import annotations

import hashlib
import sys
from datetime import date
from functools import reduce

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from jobs import consent, storage
from jobs.pseudonym import with_pseudonym
from mydata import html
from mydata.config import ConfigError, Settings
from mydata.keys import KeyStore
from mydata.lake import Lake
from mydata.manifest import RunManifest
from mydata.spark import concurrently
from schemas.bronze import CUSTOMERS
from schemas.silver import (FUSED_SOURCES, SUBJECTS, consent_source, dropped_columns, fused_tables,
                            silver_columns)

JOB = "fuse"
IDENTITY = ["link_key", "key_version"]
#: linkage outcomes, in the order the report lists them
OUTCOMES = ("fused", "no_consent", "withdrawn", "expired", "source_missing", "key_version_mismatch")
OUTCOME_TEXT = {
    "fused": "fused: valid consent for every source and records from each",
    "no_consent": "no consent for the purpose (for at least one source, never given)",
    "withdrawn": "consent withdrawn for at least one source",
    "expired": "consent expired for at least one source",
    "source_missing": "consent valid, but a source delivered no records for the subject",
    "key_version_mismatch": "records under a link key version the consent log does not use "
                            "(the holder keyed them with another secret version)",
}


# -- pure transforms -------------------------------------------------------------------------------

def bronze_as_of(frame: DataFrame, as_of: date) -> DataFrame:
    """The deliveries made by the as-of date (their records all predate it)."""
    return frame.where(F.col("dt") <= F.lit(as_of))


def source_presence(frames: dict[str, DataFrame]) -> DataFrame:
    """(link_key, key_version, source) for every subject a fused source delivered records for."""
    parts = [frame.select(*IDENTITY, F.lit(consent_source_name).alias("source"))
             for consent_source_name, frame in frames.items()]
    return reduce(DataFrame.unionByName, parts).distinct()


def _per_source(frame: DataFrame, value: str, name: str) -> list[SparkColumn]:
    return [F.max(F.when(F.col("source") == s, F.col(value))).alias(f"{name}_{s}") for s in FUSED_SOURCES]


def linkage(states: DataFrame, presence: DataFrame, customers: DataFrame,
            consent_versions: list[int]) -> DataFrame:
    """One row per subject seen anywhere (consent log, sources, customer master) with its outcome.

    Columns: link_key, key_version, consent_<source> (valid/withdrawn/expired/null),
    has_<source>, outcome, missing (the sources without records), consent_until.
    """
    consents = (states.where(F.col("source").isin(*FUSED_SOURCES)).groupBy(*IDENTITY)
                .agg(*_per_source(states, "state", "consent"),
                     F.min(F.when(F.col("state") == "valid", F.col("end_date"))).alias("consent_until")))
    has = (presence.withColumn("_has", F.lit(True)).groupBy(*IDENTITY)
           .agg(*_per_source(presence, "_has", "has")))
    subjects = (customers.select(*IDENTITY).distinct()
                .join(consents, IDENTITY, "full").join(has, IDENTITY, "full"))
    consent_of = {s: F.col(f"consent_{s}") for s in FUSED_SOURCES}
    has_of = {s: F.coalesce(F.col(f"has_{s}"), F.lit(False)) for s in FUSED_SOURCES}
    all_valid = reduce(lambda a, b: a & b, [F.coalesce(c == "valid", F.lit(False)) for c in consent_of.values()])
    all_data = reduce(lambda a, b: a & b, has_of.values())
    any_state = {state: reduce(lambda a, b: a | b, [F.coalesce(c == state, F.lit(False))
                                                   for c in consent_of.values()])
                 for state in ("withdrawn", "expired")}
    never = reduce(lambda a, b: a & b, [c.isNull() for c in consent_of.values()])
    outcome = (F.when(all_valid & all_data, "fused")
               .when(all_valid, "source_missing")
               .when(any_state["withdrawn"], "withdrawn")
               .when(any_state["expired"], "expired")
               .when(never & ~F.col("key_version").isin(*consent_versions), "key_version_mismatch")
               .otherwise("no_consent"))
    missing = F.concat_ws(",", *[F.when(~has_of[s], F.lit(s)) for s in FUSED_SOURCES])
    return subjects.select(*IDENTITY, *consent_of.values(), *[has_of[s].alias(f"has_{s}") for s in FUSED_SOURCES],
                           outcome.alias("outcome"), missing.alias("missing"), "consent_until")


def latest_customers(customers: DataFrame) -> DataFrame:
    """Each subject's row from the latest customer-master delivery."""
    newest = Window.partitionBy(*IDENTITY).orderBy(F.desc("dt"))
    return customers.withColumn("_n", F.row_number().over(newest)).where("_n = 1").drop("_n")


def to_silver(records: DataFrame, keyed: DataFrame, columns: list[str], as_of: date) -> DataFrame:
    """Records of fused subjects only, re-keyed: ``pseudonym`` first, the purpose's columns, the
    delivery date as ``delivered``, and the ``as_of`` partition column."""
    return (records.join(keyed, IDENTITY, "inner")
            .select("pseudonym", *columns, F.col("dt").alias("delivered"), F.lit(as_of).alias("as_of")))


def subjects_table(fused: DataFrame, customers: DataFrame, as_of: date) -> DataFrame:
    attributes = [c.name for c in CUSTOMERS.columns if c.name not in IDENTITY]
    return (fused.join(latest_customers(customers).select(*IDENTITY, *attributes), IDENTITY, "left")
            .select("pseudonym", *attributes, "consent_until", F.lit(as_of).alias("as_of")))


def snapshot_id(purpose: str, as_of: date, head: consent.LedgerHead) -> str:
    """Names the consent snapshot: the ledger head it was taken from, the purpose and the moment."""
    text = f"{head.hash}|{head.events}|{purpose}|{as_of.isoformat()}"
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


# -- the run ---------------------------------------------------------------------------------------

def silver_table(lake: Lake, table: str, purpose: str):
    return lake.silver / table / f"purpose={purpose}"


def render_report(manifest: RunManifest) -> str:
    """The linkage report: who was fused, who was left out and why, from what consent snapshot."""
    out, snap = manifest.outputs, manifest.inputs["consent_snapshot"]
    counts = out["linkage"]
    most = max(counts.values(), default=0)
    rows = [(html.code(o), OUTCOME_TEXT[o], counts.get(o, 0), html.bar(counts.get(o, 0), most))
            for o in OUTCOMES]
    missing = [(k or "-", v) for k, v in sorted(out["source_missing"].items())]
    tables = [(html.code(t), v["bronze_rows"], v["silver_rows"], ", ".join(v["dropped_columns"]))
              for t, v in sorted(out["tables"].items())]
    facts = {"purpose": manifest.parameters["purpose"], "as of": manifest.parameters["as_of"],
             "run": manifest.run_id, "subjects fused": f"{counts.get('fused', 0):,}"}
    sections = [
        html.section("Consent snapshot", html.table(("", ""), [
            ("snapshot id", html.code(snap["id"])), ("valid at", snap["as_of"]),
            ("ledger events", snap["ledger_head"]["events"]), ("ledger head hash", html.code(snap["ledger_head"]["hash"])),
            ("purpose key version", out["key_versions"]["purpose"]),
            ("link key versions in the consent log", ", ".join(map(str, out["key_versions"]["link"])))]),
            note="The ledger head this run verified and relied on: `mydata consent verify` proves the "
                 "ledger still holds exactly these events."),
        html.section("Subjects by outcome", html.table(("outcome", "meaning", "subjects", ""), rows),
                     note="A subject is a link key with its key version; the same person keyed with two "
                          "secret versions counts twice, as pseudonymisation intends."),
        html.section("Consent valid, source missing", html.table(("sources without records", "subjects"), missing)),
        html.section("Tables", html.table(("table", "bronze rows by the as-of date", "silver rows",
                                           "columns not carried"), tables)),
    ]
    return html.page(f"Fusion: {manifest.parameters['purpose']} as of {manifest.parameters['as_of']}",
                     facts, sections)


def run(settings: Settings, spark: SparkSession | None = None) -> dict:
    """Fuse bronze into silver for ``settings.purpose`` as of ``settings.as_of``."""
    from mydata.spark import spark_session

    if settings.as_of is None:
        raise ConfigError("fuse needs an as-of date (--as-of YYYY-MM-DD or MYDATA_AS_OF)")
    purpose, as_of, lake = settings.purpose, settings.as_of, settings.lake
    spark = spark or spark_session(settings, "fuse")
    ledger = consent.read_ledger(spark, lake)
    if ledger is None:
        raise consent.ConsentChainBroken("the consent ledger is empty: run the consent job before fusion")
    verification = consent.verify_ledger(spark, lake)
    if not verification.ok:
        raise consent.ConsentChainBroken(f"the consent ledger does not verify at {verification.problem}; "
                                         "no fusion until a reviewer acts")
    keystore = KeyStore.open(settings)
    purpose_version = keystore.current_purpose_version(purpose)
    manifest = RunManifest.start(JOB, purpose=purpose, as_of=as_of.isoformat())
    head = verification.head
    manifest.inputs["consent_snapshot"] = {"id": snapshot_id(purpose, as_of, head), "purpose": purpose,
                                           "as_of": consent.as_of_moment(as_of).isoformat(),
                                           "ledger_head": head.as_dict()}

    records = {name: bronze_as_of(frame, as_of) for name, spec in fused_tables().items()
               if (frame := storage.read_table(spark, lake.bronze_table(name))) is not None}
    customers_all = storage.read_table(spark, lake.bronze_table(CUSTOMERS.name))
    customers = bronze_as_of(customers_all, as_of) if customers_all is not None \
        else spark.createDataFrame([], "link_key string, key_version int, dt date")
    by_source: dict[str, DataFrame] = {}
    for name, frame in records.items():
        source = consent_source(fused_tables()[name])
        by_source[source] = frame.select(*IDENTITY) if source not in by_source \
            else by_source[source].unionByName(frame.select(*IDENTITY))
    states = consent.consent_states(ledger, purpose, as_of)
    versions = sorted(int(r[0]) for r in ledger.where(F.col("purpose") == purpose)
                      .select("key_version").distinct().collect())
    linked = linkage(states, source_presence(by_source), customers, versions).cache()
    counts: dict[str, int] = {}
    missing: dict[str, int] = {}
    for row in linked.groupBy("outcome", "missing").count().collect():  # one job for both tallies
        counts[row["outcome"]] = counts.get(row["outcome"], 0) + int(row["count"])
        if row["outcome"] == "source_missing":
            missing[row["missing"]] = int(row["count"])
    if not counts.get("fused"):
        linked.unpersist()
        _fused_nobody(lake, manifest, counts, missing)
    fused = with_pseudonym(linked.where(F.col("outcome") == "fused").select(*IDENTITY, "consent_until"),
                           keystore.purpose_secret(purpose, purpose_version)).cache()
    keyed = fused.select(*IDENTITY, "pseudonym")

    def publish(name: str, bronze: DataFrame, silver: DataFrame, dropped: list[str]) -> dict:
        storage.replace_partitions(silver, silver_table(lake, name, purpose), [as_of], manifest.run_id, key="as_of")
        return {"bronze_rows": bronze.count(), "silver_rows": _rows(spark, lake, name, purpose, as_of),
                "dropped_columns": dropped}

    # the tables are independent: their jobs overlap (a small run's are mostly driver-side cost)
    published = [(name, frame, to_silver(frame, keyed, silver_columns(fused_tables()[name], purpose), as_of),
                  dropped_columns(fused_tables()[name], purpose)) for name, frame in records.items()]
    published.append((SUBJECTS, customers, subjects_table(fused, customers, as_of), list(IDENTITY)))
    tables = dict(zip([name for name, *_ in published],
                      concurrently([(publish, *table) for table in published])))
    spark.catalog.clearCache()

    manifest.outputs = {
        "silver": {t: str(silver_table(lake, t, purpose) / f"as_of={as_of.isoformat()}") for t in tables},
        "linkage": {o: counts.get(o, 0) for o in OUTCOMES}, "source_missing": missing,
        "subjects_fused": counts.get("fused", 0), "tables": tables,
        "key_versions": {"purpose": purpose_version, "link": versions}}
    report = lake.report("fusion") / f"{manifest.run_id}.html"
    manifest.outputs["report"] = str(report)
    html.write_page(report, render_report(manifest))
    path = manifest.finish(lake, "succeeded")
    return {"manifest": str(path), "report": str(report), "snapshot": manifest.inputs["consent_snapshot"]["id"],
            "linkage": manifest.outputs["linkage"], "subjects_fused": counts.get("fused", 0)}


class FusedNobody(RuntimeError):
    """Fusion found no subject to fuse: nothing is published, and the linkage says why."""


def _fused_nobody(lake: Lake, manifest: RunManifest, counts: dict[str, int], missing: dict[str, int]) -> None:
    """Fail the run, loudly and with the breakdown: an empty silver would only fail later stages."""
    seen = sum(counts.values())
    breakdown = ", ".join(f"{o.replace('_', ' ')} {counts.get(o, 0):,}" for o in OUTCOMES if o != "fused")
    lacking = "; ".join(f"missing {m}: {n:,}" for m, n in sorted(missing.items()))
    manifest.outputs = {"linkage": {o: counts.get(o, 0) for o in OUTCOMES}, "source_missing": missing,
                        "subjects_fused": 0}
    manifest.error = (f"fused no subject of the {seen:,} seen ({breakdown}{'; ' + lacking if lacking else ''}); "
                      "silver was left as it was")
    path = manifest.finish(lake, "failed")
    raise FusedNobody(f"fuse {manifest.parameters['purpose']} as of {manifest.parameters['as_of']} {manifest.error}; "
                      f"see {path}")


def _rows(spark: SparkSession, lake: Lake, table: str, purpose: str, as_of: date) -> int:
    folder = silver_table(lake, table, purpose) / f"as_of={as_of.isoformat()}"
    return spark.read.parquet(str(folder)).count() if folder.is_dir() and any(folder.glob("*.parquet")) else 0


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load()), file=sys.stdout)
