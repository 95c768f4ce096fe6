"""Validate: Great Expectations over published bronze, a gate that fails, and a readable report."""
from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs import validate
from mydata import storage
from mydata.config import Settings
from mydata.engines import gx_spark
from mydata.engines.spark import SparkEngine
from tests.tables import rows_table

LK, LK2 = "A" * 43, "B" * 43
CUSTOMERS = "link_key string, key_version int, birth_year int, gender string, region_code string, " \
            "customer_since date, dt date"


def test_a_frame_breaking_its_contract_fails_the_expectations_that_restate_the_rules(spark):
    june = date(2026, 6, 1)
    frame = spark.createDataFrame([
        (LK, 1, 1990, "F", "11", date(2020, 1, 15), june),
        (LK, 1, 1990, "F", "11", date(2020, 1, 15), june),       # natural key twice in a delivery
        (LK2, 1, 1980, "X", "11", date(2020, 1, 15), june),      # unknown gender code
        ("short", 1, 1850, "M", "11", date(2020, 1, 15), june),  # link key shape, birth year bound
        (LK2, 1, 1980, "M", "11", date(2020, 1, 15), date(2026, 7, 1)),  # same key, next delivery: fine
    ], CUSTOMERS)
    failed = {o.rule: (o.unexpected, o.checked) for o in gx_spark.validate_frame(frame, "customers")
              if not o.success}
    assert set(failed) == {"natural_key.unique", "gender.in_set", "link_key.format", "birth_year.range"}
    assert failed["gender.in_set"] == (1, 5)
    assert failed["birth_year.range"] == (1, 5)


def test_clean_rows_meet_every_expectation(spark):
    frame = spark.createDataFrame([(LK, 1, 1990, "F", "11", date(2020, 1, 15), date(2026, 6, 1)),
                                   (LK2, 2, 1961, "M", "50", date(2001, 3, 1), date(2026, 6, 1))],
                                  CUSTOMERS)
    outcomes = gx_spark.validate_frame(frame, "customers")
    assert outcomes and all(o.success for o in outcomes)
    # passing row checks report every row checked and none unexpected; the column-list check has no rows
    assert {(o.checked, o.unexpected) for o in outcomes if o.expectation != "expect_table_columns_to_match_ordered_list"} \
        == {(2, 0)}


def test_validation_leaves_nothing_cached_that_the_caller_did_not_cache(spark):
    """Great Expectations' Spark source caches every batch it checks; a run over many tables must
    not keep them all in the driver's heap."""
    row = (LK, 1, 1990, "F", "11", date(2020, 1, 15), date(2026, 6, 1))
    checked = spark.createDataFrame([row], CUSTOMERS)
    gx_spark.validate_frame(checked, "customers")
    assert not checked.storageLevel.useMemory and not checked.storageLevel.useDisk
    kept = spark.createDataFrame([row], CUSTOMERS).cache()
    gx_spark.validate_frame(kept, "customers")
    assert kept.storageLevel.useMemory
    kept.unpersist()


@pytest.fixture(scope="module")
def validated(ingested, spark):
    settings, _, _, manifest = ingested
    result = validate.run(settings, spark, ingest_run=manifest["run_id"])
    return settings, manifest, result


def test_an_ingest_run_passes_its_gate_and_gets_a_report_page(validated):
    settings, ingest_manifest, result = validated
    checked = json.loads(open(result["manifest"], encoding="utf-8").read())
    assert checked["status"] == "succeeded"
    assert checked["outputs"]["ingest_run"] == ingest_manifest["run_id"]
    accepted = sum(v["accepted"] for t in ingest_manifest["outputs"]["tables"].values() for v in t.values())
    assert checked["outputs"]["rows_checked"] == accepted
    assert set(checked["outputs"]["tables"]) == set(ingest_manifest["outputs"]["tables"])
    page = open(result["report"], encoding="utf-8").read()
    for table in ingest_manifest["outputs"]["tables"]:
        assert f"<td>{table}</td>" in page
    assert "NOT BALANCED" not in page and "FAILED" not in page
    assert f"{accepted:,}" in page
    assert ingest_manifest["run_id"] in open(result["index"], encoding="utf-8").read()


def test_reports_and_manifests_show_no_link_key(validated, spark):
    settings, ingest_manifest, result = validated
    keys = {r.link_key for r in spark.read.parquet(str(settings.lake.bronze_table("customers")))
            .select("link_key").distinct().collect()}
    texts = [open(result["report"], encoding="utf-8").read(), open(result["manifest"], encoding="utf-8").read(),
             json.dumps(ingest_manifest, ensure_ascii=False)]
    for text in texts:
        tokens = set(re.findall(r"[A-Za-z0-9_-]{43}", text))
        assert not tokens & keys


def test_a_bronze_partition_edited_after_ingest_fails_the_gate(validated, spark, tmp_path):
    settings, ingest_manifest, _ = validated
    lake = settings.replace(data_root=tmp_path / "lake").lake
    table = lake.bronze_table("customers")
    frame = spark.read.parquet(str(settings.lake.bronze_table("customers")))
    edited = frame.withColumn("gender", F.when(F.col("birth_year") % 2 == 0, F.lit("?"))
                              .otherwise(F.col("gender")))
    dts = [date.fromisoformat(d) for d in ingest_manifest["outputs"]["tables"]["customers"]]
    storage.replace_partitions(edited, table, dts, "edit")
    manifest = dict(ingest_manifest, outputs=dict(ingest_manifest["outputs"],
                                                  tables={"customers": ingest_manifest["outputs"]["tables"]["customers"]}))
    (result,) = SparkEngine(spark).validate(validate.written(lake, manifest))
    failed = [o for o in result.outcomes if not o.success]
    assert [o.rule for o in failed] == ["gender.in_set"]
    assert failed[0].unexpected == frame.where(F.col("birth_year") % 2 == 0).count()


def test_the_embedded_engine_runs_the_same_suite_inside_duckdb(tmp_path, duckdb_engine):
    """Great Expectations' SQL data source over the run's partitions: a key repeated within a
    delivery breaks uniqueness, the same key in two deliveries does not."""
    june, july = date(2026, 6, 1), date(2026, 7, 1)
    rows_table(duckdb_engine, "rows", "link_key string, key_version int, birth_year int, gender string, "
               "region_code string, customer_since date, dt date", [
                   (LK, 1, 1990, "F", "11", date(2020, 1, 15), june),
                   (LK, 1, 1990, "F", "11", date(2020, 1, 15), june),
                   (LK2, 1, 1980, "X", "11", date(2020, 1, 15), june),
                   ("short", 1, 1850, "M", "11", date(2020, 1, 15), june),
                   (LK2, 1, 1980, "M", "11", date(2020, 1, 15), july)])
    lake = Settings(data_root=tmp_path).lake
    storage.publish([duckdb_engine.stage("SELECT * FROM rows", lake.bronze_table("customers"), [june, july], "t")])
    manifest = {"outputs": {"tables": {"customers": {"2026-06-01": {"accepted": 4, "quarantined": 0},
                                                     "2026-07-01": {"accepted": 1, "quarantined": 0}}}}}
    (result,) = duckdb_engine.validate(validate.written(lake, manifest))
    # a second run in the same process (an Airflow worker runs many) opens the checks afresh
    assert duckdb_engine.validate(validate.written(lake, manifest)) == [result]
    # checked a delivery date at a time (what a run too big for memory gets), the verdicts and counts are the same
    assert duckdb_engine.validate(validate.written(lake, manifest), rows_at_once=1) == [result]
    assert not list(Path(duckdb_engine.config["temp_directory"]).glob("validation-*"))
    failed = {o.rule: (o.unexpected, o.checked) for o in result.outcomes if not o.success}
    assert set(failed) == {"natural_key.unique", "gender.in_set", "link_key.format", "birth_year.range"}
    assert failed["gender.in_set"] == (1, 5) and failed["birth_year.range"] == (1, 5)
    assert failed["natural_key.unique"] == (2, 5) and result.rows == 5
    assert [o.rule for o in result.outcomes][:3] == ["schema.columns", "link_key.not_null", "link_key.format"]
