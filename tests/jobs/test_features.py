"""Features compiled from their declarations: windows, point-in-time correctness, every expression valid."""
from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from features.definitions import FEATURES, QUASI_IDENTIFIERS, SOURCES
from features.sql import features_sql, months_before
from jobs import features
from mydata.engines import as_engine
from schemas.bronze import TABLES
from schemas.silver import silver_columns
from tests.tables import rows_table

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


SUBJECTS = "pseudonym string, birth_year int, gender string, region_code string, customer_since date"


def build(engine, tables: dict[str, str], as_of: date = AS_OF) -> dict[str, dict]:
    """The compiled features over registered tables, by pseudonym."""
    return {r["pseudonym"]: r for r in engine.rows(features_sql(engine.dialect, tables, as_of))}


def silver_schema(name: str) -> str:
    spec = TABLES[name]
    return ", ".join(["pseudonym string", *[f"{c} {spec.column(c).spark_type}" for c in silver_columns(spec, "marketing")],
                      "delivered date"])


@pytest.mark.parametrize("engine_name", ["duckdb", "spark"])
def test_every_declaration_compiles_against_the_silver_schemas(request, engine_name):
    """Each expression, filter and time column resolves on empty silver tables of the real schemas,
    on both engines, and every feature has its declared type."""
    engine = request.getfixturevalue("duckdb_engine") if engine_name == "duckdb" \
        else as_engine(request.getfixturevalue("spark"))
    try:
        tables = {name: rows_table(engine, f"silver_{name}", SUBJECTS if name == "subjects" else silver_schema(name), [])
                  for name in SOURCES}
        engine.view("candidate", features_sql(engine.dialect, tables, AS_OF))
        columns = engine.columns("candidate")
        typed = engine.rows("SELECT " + ", ".join(f"typeof({f.name}) AS {f.name}" for f in FEATURES)
                            + f" FROM (SELECT * FROM candidate UNION ALL SELECT {', '.join(['NULL'] * len(columns))}) c "
                            "LIMIT 1")[0]
    finally:
        engine.close()
    assert columns == ["pseudonym", *[f.name for f in FEATURES]]
    words = {"duckdb": {"double": "DOUBLE", "int": "INTEGER", "string": "VARCHAR"},
             "spark": {"double": "double", "int": "int", "string": "string"}}[engine_name]
    assert typed == {f.name: words[f.dtype] for f in FEATURES}


def test_windows_sum_only_their_months_and_a_subject_without_records_gets_zero(duckdb_engine):
    subjects = rows_table(duckdb_engine, "subjects", SUBJECTS,
                          [("P1", 1990, "F", "11", date(2020, 8, 1)), ("P2", 1960, "M", "26", None)])
    txns = rows_table(duckdb_engine, "txns", "pseudonym string, trans_dtime timestamp, trans_type string, "
                      "trans_amt decimal(18,3), balance_amt decimal(18,3)", [
                          ("P1", kst(2026, 7, 25, 9), "01", Decimal("3000000"), Decimal("100")),   # in 1m and 3m
                          ("P1", kst(2026, 5, 10, 9), "01", Decimal("600000"), Decimal("300")),    # 3m only
                          ("P1", kst(2026, 4, 30, 23), "01", Decimal("999"), Decimal("200")),      # outside every window
                          ("P1", kst(2026, 7, 31, 23, 59), "02", Decimal("500000"), Decimal("50"))])
    row = build(duckdb_engine, {"subjects": subjects, "bank_transactions": txns})
    assert row["P1"]["bank_inflow_1m"] == 3_000_000 and row["P1"]["bank_inflow_3m_avg"] == 1_200_000
    assert row["P1"]["bank_large_inflow_3m_avg"] == 1_000_000 and row["P1"]["bank_outflow_1m"] == 500_000
    assert row["P1"]["bank_txn_count_3m"] == 3 and row["P1"]["age"] == 36
    assert row["P1"]["customer_tenure_months"] == 72
    assert math.isclose(row["P1"]["bank_savings_rate_3m"], (1_200_000 - 500_000 / 3) / 1_200_000)
    assert row["P2"]["bank_inflow_1m"] == 0 and row["P2"]["bank_txn_count_3m"] == 0
    assert row["P2"]["bank_balance_mean_3m"] is None and row["P2"]["bank_savings_rate_3m"] is None


@pytest.mark.parametrize(("since", "months"), [
    (date(2020, 8, 1), 72), (date(2020, 8, 2), 71), (date(2026, 7, 31), 0), (date(2026, 2, 28), 5),
    (date(2020, 1, 31), 78),  # the 31st to the 1st: one day short of a whole month
])
def test_tenure_counts_whole_months_as_spark_months_between_does(duckdb_engine, since, months):
    subjects = rows_table(duckdb_engine, "subjects", SUBJECTS, [("P1", 1990, "F", "11", since)])
    assert build(duckdb_engine, {"subjects": subjects})["P1"]["customer_tenure_months"] == months


def test_the_window_start_is_spark_add_months():
    assert months_before(date(2026, 3, 31), 1) == date(2026, 2, 28)
    assert months_before(date(2024, 3, 31), 1) == date(2024, 2, 29)
    assert months_before(date(2026, 1, 15), 3) == date(2025, 10, 15)
    assert months_before(date(2026, 8, 1), 6) == date(2026, 2, 1)


def test_latest_takes_the_newest_record_and_the_largest_of_equally_new_ones(duckdb_engine):
    subjects = rows_table(duckdb_engine, "subjects", SUBJECTS,
                          [(p, 1990, "F", "11", date(2020, 8, 1)) for p in ("P1", "P2")])
    columns = silver_columns(TABLES["telecom_usage"], "marketing")
    rows_table(duckdb_engine, "usage", silver_schema("telecom_usage"), [
        (p, *[{"usage_month": month, "device_tier": tier, "plan_fee": fee}.get(c) for c in columns], date(2026, 8, 1))
        for p, month, tier, fee in (
            ("P1", date(2026, 6, 1), "premium", 80000), ("P1", date(2026, 7, 1), "budget", 29000),
            ("P1", date(2026, 7, 1), "mid", 49000),  # a second line, same month
            ("P2", date(2026, 7, 1), "mid", 49000), ("P2", date(2026, 8, 1), "premium", 99000))])  # on the as-of date
    duckdb_engine.view("usage_shuffled", "SELECT * FROM usage ORDER BY random()")
    for table in ("usage", "usage_shuffled"):
        row = build(duckdb_engine, {"subjects": subjects, "telecom_usage": table})
        assert [(row[p]["telecom_device_tier"], row[p]["telecom_plan_fee"]) for p in ("P1", "P2")] == \
            [(2, 49000), (2, 49000)]


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
def test_records_on_or_after_the_as_of_date_change_nothing(fused, duckdb_engine):
    settings, results = fused
    as_of = date.fromisoformat(results["marketing"]["as_of"])
    tables = features.register_silver(duckdb_engine, settings.lake, "marketing", as_of)
    baseline = build(duckdb_engine, tables, as_of)
    planted = dict(tables)
    for name, table in tables.items():
        column = SOURCES[name].time_column
        if column is not None:
            kind = dict(duckdb_engine.rows(f"SELECT typeof({column}) AS t FROM {table} LIMIT 1")[0])["t"]
            late = " UNION ALL ".join(f"(SELECT * REPLACE (CAST(DATE '{moment}' AS {kind}) AS {column}) FROM {table} LIMIT 200)"
                                      for moment in (as_of, as_of + timedelta(days=40)))
            planted[name] = f"planted_{name}"
            duckdb_engine.view(planted[name], f"SELECT * FROM {table} UNION ALL {late}")
    assert not _same(baseline, build(duckdb_engine, planted, as_of))
    # and the check can fail: the same records one second earlier do change features
    duckdb_engine.view("early", f"SELECT * FROM {tables['bank_transactions']} UNION ALL (SELECT * REPLACE "
                                f"(TIMESTAMPTZ '{as_of} 00:00:00' - INTERVAL 1 SECOND AS trans_dtime) "
                                f"FROM {tables['bank_transactions']} WHERE trans_type = '01' LIMIT 20)")
    early = build(duckdb_engine, {**tables, "bank_transactions": "early"}, as_of)
    assert "bank_inflow_1m" in {d.split(".")[1] for d in _same(baseline, early)}


@pytest.mark.slow
def test_the_features_job_writes_one_candidate_row_per_fused_subject(fused, tmp_path):
    import shutil

    import pyarrow.parquet as pq
    settings, results = fused
    root = tmp_path / "lake"
    shutil.copytree(settings.data_root, root)
    settings = settings.replace(data_root=root, purpose="marketing", as_of=results["marketing"]["as_of"])
    result = features.run(settings)
    assert result["subjects"] == results["marketing"]["subjects_fused"] and result["features"] == len(FEATURES)
    written = pq.read_table(result["candidate"]).column("pseudonym").to_pylist()
    assert len(set(written)) == len(written) == result["subjects"]
    # the silver rows the run read are the rows each silver table holds
    observed = json.loads(open(result["manifest"]).read())["inputs"]["silver"]
    assert observed == {name: pq.read_table(settings.lake.silver_table(name, "marketing") / f"as_of={settings.as_of}")
                        .num_rows for name in observed}
    assert set(observed) == {name for name in SOURCES if name != "features"} and min(observed.values()) > 0


def test_usage_an_operator_does_not_measure_stays_missing_and_no_usage_is_zero(duckdb_engine):
    """An operator without data volume, night share or app sessions: those features are null for
    its subscribers (missing, not zero), while a subject without any usage record gets the fill."""
    subjects = rows_table(duckdb_engine, "subjects", SUBJECTS,
                          [(p, 1990, "F", "11", date(2020, 8, 1)) for p in ("P1", "P2", "P3")])
    columns = silver_columns(TABLES["telecom_usage"], "marketing")
    measured = {"usage_month": date(2026, 7, 1), "voice_min": 300, "sms_cnt": 10, "plan_fee": 69000,
                "tenure_months": 27}
    old = {**measured, "usage_month": date(2026, 1, 1)}  # outside every window
    usage = rows_table(duckdb_engine, "usage", silver_schema("telecom_usage"),
                       [("P1", *[measured.get(c) for c in columns], date(2026, 8, 1)),
                        ("P3", *[old.get(c) for c in columns], date(2026, 8, 1))])
    row = build(duckdb_engine, {"subjects": subjects, "telecom_usage": usage})
    for name in ("telecom_data_mb_3m_avg", "telecom_night_ratio_3m", "telecom_finance_app_3m_avg",
                 "telecom_device_tier"):
        assert row["P1"][name] is None, name
    assert row["P1"]["telecom_voice_min_3m_avg"] == 100 and row["P1"]["telecom_plan_fee"] == 69000
    assert row["P2"]["telecom_data_mb_3m_avg"] == 0 and row["P3"]["telecom_data_mb_3m_avg"] == 0
    assert row["P2"]["telecom_voice_min_3m_avg"] == 0 and row["P3"]["telecom_voice_min_3m_avg"] == 0
