"""Features compiled from their declarations: windows, point-in-time correctness, every expression valid."""
from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from pyspark.sql import functions as F

from features.definitions import FEATURES, QUASI_IDENTIFIERS, SOURCES
from jobs import features
from jobs.fuse import silver_table
from schemas.bronze import TABLES
from schemas.silver import silver_columns

KST = ZoneInfo("Asia/Seoul")
AS_OF = date(2026, 8, 1)


def kst(*args) -> datetime:
    return datetime(*args, tzinfo=KST)


def test_the_declarations_cover_what_the_issue_asks():
    assert len(FEATURES) >= 40
    assert set(QUASI_IDENTIFIERS) == {"age", "gender", "region_code"}
    for feature in FEATURES:
        assert feature.description and feature.dtype in ("double", "int", "string"), feature.name
        assert feature.window in (None, 1, 3, 6), feature.name
    by_source = {s: sum(f.source.startswith(s) for f in FEATURES) for s in ("bank", "loans", "card", "telecom")}
    assert by_source["bank"] + by_source["loans"] >= 10 and by_source["card"] >= 10 and by_source["telecom"] >= 10
    assert sum(f.source == "derived" for f in FEATURES) >= 5


def test_every_declaration_compiles_against_the_silver_schemas(spark):
    """Each expression, filter and time column resolves on empty silver tables of the real schemas."""
    tables = {}
    for name in SOURCES:
        if name == "subjects":
            schema = "pseudonym string, birth_year int, gender string, region_code string, customer_since date"
        else:
            spec = TABLES[name]
            schema = ", ".join(["pseudonym string", *[f"{c} {spec.column(c).spark_type}"
                                                      for c in silver_columns(spec, "marketing")], "delivered date"])
        tables[name] = spark.createDataFrame([], schema)
    result = features.build_features(tables, AS_OF)
    assert result.columns == ["pseudonym", *[f.name for f in FEATURES]]
    assert {f.name: str(t.simpleString()) for f, t in zip(FEATURES, [s.dataType for s in result.schema][1:])} == \
        {f.name: {"double": "double", "int": "int", "string": "string"}[f.dtype] for f in FEATURES}


def test_windows_sum_only_their_months_and_a_subject_without_records_gets_zero(spark):
    subjects = spark.createDataFrame([("P1", 1990, "F", "11", date(2020, 8, 1)), ("P2", 1960, "M", "26", None)],
                                     "pseudonym string, birth_year int, gender string, region_code string, "
                                     "customer_since date")
    txns = spark.createDataFrame([
        ("P1", kst(2026, 7, 25, 9), "01", Decimal("3000000"), Decimal("100")),   # in 1m and 3m
        ("P1", kst(2026, 5, 10, 9), "01", Decimal("600000"), Decimal("300")),    # 3m only
        ("P1", kst(2026, 4, 30, 23), "01", Decimal("999"), Decimal("200")),      # outside every window
        ("P1", kst(2026, 7, 31, 23, 59), "02", Decimal("500000"), Decimal("50")),
    ], "pseudonym string, trans_dtime timestamp, trans_type string, trans_amt decimal(18,3), "
       "balance_amt decimal(18,3)")
    row = {r.pseudonym: r for r in features.build_features({"subjects": subjects, "bank_transactions": txns}, AS_OF)
           .collect()}
    assert row["P1"].bank_inflow_1m == 3_000_000 and row["P1"].bank_inflow_3m_avg == 1_200_000
    assert row["P1"].bank_large_inflow_3m_avg == 1_000_000 and row["P1"].bank_outflow_1m == 500_000
    assert row["P1"].bank_txn_count_3m == 3 and row["P1"].age == 36 and row["P1"].customer_tenure_months == 72
    assert math.isclose(row["P1"].bank_savings_rate_3m, (1_200_000 - 500_000 / 3) / 1_200_000)
    assert row["P2"].bank_inflow_1m == 0 and row["P2"].bank_txn_count_3m == 0
    assert row["P2"].bank_balance_mean_3m is None and row["P2"].bank_savings_rate_3m is None


def test_latest_takes_the_newest_record_and_the_largest_of_equally_new_ones_whatever_the_partitioning(spark):
    from features.definitions import BY_NAME

    usage = spark.createDataFrame([
        ("P1", date(2026, 6, 1), "premium", 80000), ("P1", date(2026, 7, 1), "budget", 29000),
        ("P1", date(2026, 7, 1), "mid", 49000),  # a second line, same month
        ("P2", date(2026, 7, 1), "mid", 49000), ("P2", date(2026, 8, 1), "premium", 99000),  # on the as-of date
    ], "pseudonym string, usage_month date, device_tier string, plan_fee int")
    latest = [features.aggregate(BY_NAME[name], AS_OF) for name in ("telecom_device_tier", "telecom_plan_fee")]
    results = set()
    for partitions in (1, 3, 5):
        rows = (usage.repartition(partitions).withColumn("_t", F.col("usage_month"))
                .groupBy("pseudonym").agg(*latest).orderBy("pseudonym").collect())
        results.add(tuple((r.telecom_device_tier, r.telecom_plan_fee) for r in rows))
    assert results == {((2, 49000), (2, 49000))}


def _rows(frame) -> dict[str, dict]:
    return {r["pseudonym"]: r.asDict() for r in frame.collect()}


def _same(a: dict[str, dict], b: dict[str, dict]) -> list[str]:
    diff = []
    for key in a.keys() | b.keys():
        for column, value in a.get(key, {}).items():
            other = b.get(key, {}).get(column)
            if isinstance(value, float) and isinstance(other, float):
                if not math.isclose(value, other, rel_tol=1e-9, abs_tol=1e-9):
                    diff.append(f"{key}.{column}")
            elif value != other:
                diff.append(f"{key}.{column}")
    return diff


@pytest.mark.slow
def test_records_on_or_after_the_as_of_date_change_nothing(fused, spark):
    settings, results = fused
    as_of = date.fromisoformat(results["marketing"]["as_of"])
    tables = features.read_silver(spark, settings.lake, "marketing", as_of)
    baseline = _rows(features.build_features(tables, as_of))
    planted = {}
    for name, frame in tables.items():
        column = SOURCES[name].time_column
        if column is None:
            planted[name] = frame
            continue
        kind = dict(frame.dtypes)[column]
        late = [F.lit(as_of).cast(kind), F.lit(as_of + timedelta(days=40)).cast(kind)]
        copies = [frame.limit(200).withColumn(column, moment) for moment in late]
        planted[name] = frame.unionByName(copies[0]).unionByName(copies[1])
    assert not _same(baseline, _rows(features.build_features(planted, as_of)))
    # and the check can fail: the same records one second earlier do change features
    early = dict(tables)
    early["bank_transactions"] = tables["bank_transactions"].unionByName(
        tables["bank_transactions"].where("trans_type = '01'").limit(20)
        .withColumn("trans_dtime", F.to_timestamp(F.lit(f"{as_of.isoformat()} 00:00:00")) - F.expr("INTERVAL 1 SECOND")))
    assert "bank_inflow_1m" in {d.split(".")[1] for d in _same(baseline, _rows(features.build_features(early, as_of)))}


@pytest.mark.slow
def test_the_features_job_writes_one_candidate_row_per_fused_subject(fused, spark, tmp_path):
    import shutil
    settings, results = fused
    root = tmp_path / "lake"
    shutil.copytree(settings.data_root, root)
    settings = settings.replace(data_root=root, purpose="marketing", as_of=results["marketing"]["as_of"])
    result = features.run(settings, spark)
    assert result["subjects"] == results["marketing"]["subjects_fused"] and result["features"] == len(FEATURES)
    written = spark.read.parquet(str(silver_table(settings.lake, features.CANDIDATES, "marketing")))
    assert written.select("pseudonym").distinct().count() == written.count() == result["subjects"]
    # the silver rows the run observed while writing are the rows each silver table holds
    observed = json.loads(open(result["manifest"]).read())["inputs"]["silver"]
    assert observed == {name: spark.read.parquet(str(silver_table(settings.lake, name, "marketing") /
                                                     f"as_of={settings.as_of}")).count() for name in observed}
    assert set(observed) == {name for name in SOURCES if name != "features"} and min(observed.values()) > 0


def test_usage_an_operator_does_not_measure_stays_missing_and_no_usage_is_zero(spark):
    """An operator without data volume, night share or app sessions: those features are null for
    its subscribers (missing, not zero), while a subject without any usage record gets the fill."""
    subjects = spark.createDataFrame([(p, 1990, "F", "11", date(2020, 8, 1)) for p in ("P1", "P2", "P3")],
                                     "pseudonym string, birth_year int, gender string, region_code string, "
                                     "customer_since date")
    spec = TABLES["telecom_usage"]
    columns = silver_columns(spec, "marketing")
    schema = ", ".join(["pseudonym string", *[f"{c} {spec.column(c).spark_type}" for c in columns], "delivered date"])
    measured = {"usage_month": date(2026, 7, 1), "voice_min": 300, "sms_cnt": 10, "plan_fee": 69000,
                "tenure_months": 27}
    old = {**measured, "usage_month": date(2026, 1, 1)}  # outside every window
    usage = spark.createDataFrame([("P1", *[measured.get(c) for c in columns], date(2026, 8, 1)),
                                   ("P3", *[old.get(c) for c in columns], date(2026, 8, 1))], schema)
    row = {r.pseudonym: r for r in features.build_features({"subjects": subjects, "telecom_usage": usage}, AS_OF)
           .collect()}
    for name in ("telecom_data_mb_3m_avg", "telecom_night_ratio_3m", "telecom_finance_app_3m_avg",
                 "telecom_device_tier"):
        assert row["P1"][name] is None, name
    assert row["P1"].telecom_voice_min_3m_avg == 100 and row["P1"].telecom_plan_fee == 69000
    assert row["P2"].telecom_data_mb_3m_avg == 0 and row["P3"].telecom_data_mb_3m_avg == 0
    assert row["P2"].telecom_voice_min_3m_avg == 0 and row["P3"].telecom_voice_min_3m_avg == 0
