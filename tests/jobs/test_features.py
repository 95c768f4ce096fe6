"""Features compiled from their declarations: windows, point-in-time correctness, every expression valid."""
from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from features.definitions import FEATURES, QUASI_IDENTIFIERS, SOURCES, Feature
from features.sql import features_sql, historical_sql, months_before
from jobs import features
from schemas.bronze import STATE, TABLES
from schemas.silver import silver_columns
from tests.on_spark import as_engine
from tests.tables import differing_cells, rows_table

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
BANK, TELECOM, TELECOM_2 = "0200000000", "T100000001", "T100000002"


def build(engine, tables: dict[str, str], as_of: date = AS_OF) -> dict[str, dict]:
    """The compiled features over registered tables, by pseudonym."""
    return {r["pseudonym"]: r for r in engine.rows(features_sql(engine.dialect, tables, as_of))}


def silver_schema(name: str) -> str:
    spec = TABLES[name]
    item = ["item string"] if spec.timing == STATE else []
    return ", ".join(["pseudonym string", *[f"{c} {spec.column(c).spark_type}" for c in silver_columns(spec, "marketing")],
                      *item, "delivered date"])


def silver(engine, name: str, rows: list[dict], delivered: date = AS_OF) -> str:
    """Rows of the silver table ``name`` given by the columns that matter; the rest null, ``delivered``
    the as-of date unless a row says otherwise."""
    columns = [c.split(" ")[0] for c in silver_schema(name).split(", ")]
    return rows_table(engine, f"silver_{name}", silver_schema(name),
                      [tuple({"delivered": delivered, **row}.get(c) for c in columns) for row in rows])


def subjects(engine, *pseudonyms: str) -> str:
    return rows_table(engine, "silver_subjects", SUBJECTS, [(p, 1990, "F", "11", date(2020, 8, 1)) for p in pseudonyms])


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


def test_every_table_is_declared_an_event_or_a_state_table_and_features_follow():
    assert {name: TABLES[name].timing for name in SOURCES if name != "subjects"} == {
        "bank_transactions": "event", "bank_balances": "state", "bank_accounts": "state", "loans": "state",
        "card_approvals": "event", "card_bills": "event", "telecom_contracts": "state", "telecom_bills": "event",
        "telecom_payments": "event", "telecom_micropayments": "event", "telecom_usage": "event"}
    for feature in FEATURES:
        assert (feature.window is not None) == (feature.timing == "event"), feature.name
        assert feature.missing_rule, feature.name
    with pytest.raises(ValueError, match="only event tables have windows"):
        Feature(name="x", description="x", source="bank_accounts", agg="count", window=1)
    with pytest.raises(ValueError, match="has a window of months"):
        Feature(name="x", description="x", source="card_approvals", agg="count")


def test_windows_sum_only_their_months_and_a_subject_without_records_gets_zero(duckdb_engine):
    txn = {"org_code": BANK, "trans_type": "01", "balance_amt": Decimal("100")}
    tables = {"subjects": subjects(duckdb_engine, "P1", "P2"), "bank_transactions": silver(duckdb_engine, "bank_transactions", [
        {**txn, "pseudonym": "P1", "trans_dtime": kst(2026, 7, 25, 9), "trans_amt": Decimal("3000000")},   # in 1m and 3m
        {**txn, "pseudonym": "P1", "trans_dtime": kst(2026, 6, 10, 9), "trans_amt": Decimal("100")},       # 3m only
        {**txn, "pseudonym": "P1", "trans_dtime": kst(2026, 5, 10, 9), "trans_amt": Decimal("600000")},    # 3m only
        {**txn, "pseudonym": "P1", "trans_dtime": kst(2026, 4, 30, 23), "trans_amt": Decimal("999")},      # outside every window
        {**txn, "pseudonym": "P1", "trans_dtime": kst(2026, 7, 31, 23, 59), "trans_type": "02", "trans_amt": Decimal("500000")},
        {**txn, "pseudonym": "P2", "trans_dtime": kst(2026, 7, 2), "trans_type": "02", "trans_amt": Decimal("1")}])}
    subjects_table = duckdb_engine.rows(f"SELECT count(*) AS n FROM {tables['subjects']}")[0]["n"]
    assert subjects_table == 2
    row = build(duckdb_engine, tables)
    assert row["P1"]["bank_inflow_1m"] == 3_000_000 and row["P1"]["bank_inflow_3m_avg"] == 3_600_100 / 3
    assert row["P1"]["bank_large_inflow_3m_avg"] == 1_000_000 and row["P1"]["bank_outflow_1m"] == 500_000
    assert row["P1"]["bank_txn_count_3m"] == 4 and row["P1"]["age"] == 36
    assert row["P1"]["customer_tenure_months"] == 72
    assert math.isclose(row["P1"]["bank_savings_rate_3m"], (3_600_100 / 3 - 500_000 / 3) / (3_600_100 / 3))
    # P2's bank delivered the window: no inflow is 0, and a ratio over a zero inflow is null
    assert row["P2"]["bank_inflow_1m"] == 0 and row["P2"]["bank_txn_count_3m"] == 1
    assert row["P2"]["bank_balance_mean_3m"] == 100 and row["P2"]["bank_savings_rate_3m"] is None


# -- the definition of "as of D" on deliveries shaped like real ones (issue: features true on real deliveries) --

def _accounts(pseudonym: str, collected: datetime, *accounts: tuple[str, bool], delivered: date = AS_OF) -> list[dict]:
    return [{"pseudonym": pseudonym, "org_code": BANK, "collected_at": collected, "item": f"{pseudonym}-{num}",
             "is_minus": minus, "account_type": "1001", "account_status": "01", "delivered": delivered}
            for num, minus in accounts]


def _balance(pseudonym: str, collected: datetime, num: str, balance: str, delivered: date = AS_OF) -> dict:
    return {"pseudonym": pseudonym, "org_code": BANK, "collected_at": collected, "item": f"{pseudonym}-{num}",
            "balance_amt": Decimal(balance), "withdrawable_amt": Decimal(balance), "offered_rate": Decimal("2.5"),
            "delivered": delivered}


def test_state_features_count_a_collection_made_on_the_delivery_day(engine):
    """One delivery dated the as-of date, collected that morning: its state is the state as of that date."""
    morning = kst(2026, 8, 1, 9, 30)
    tables = {"subjects": subjects(engine, "P1"),
              "bank_accounts": silver(engine, "bank_accounts", _accounts("P1", morning, ("A", False), ("B", True))),
              "bank_balances": silver(engine, "bank_balances", [_balance("P1", morning, "A", "3000"),
                                                                _balance("P1", morning, "B", "-500")]),
              "telecom_contracts": silver(engine, "telecom_contracts", [
                  {"pseudonym": "P1", "org_code": TELECOM, "collected_at": morning, "item": "L1", "type": "01",
                   "status": "01"}])}
    row = build(engine, tables)["P1"]
    assert (row["bank_accounts"], row["bank_overdraft_accounts"], row["telecom_lines"]) == (2, 1, 1)
    assert (row["bank_balance_level"], row["bank_withdrawable"], row["bank_rate_mean"]) == (2500, 2500, 2.5)


def test_two_collections_in_one_month_give_the_latest_state_not_a_sum(engine):
    """Weekly scheduled transmission: the state is each item's newest collection; an account the
    newest collection no longer lists (closed) is gone; a late delivery of an older collection changes nothing."""
    week1, week2 = kst(2026, 7, 18, 4), kst(2026, 7, 25, 4)
    accounts = [*_accounts("P1", week1, ("A", False), ("B", False), ("C", True), delivered=date(2026, 7, 18)),
                *_accounts("P1", week2, ("A", False), ("B", False), delivered=date(2026, 7, 25)),
                *_accounts("P1", kst(2026, 7, 11, 4), ("A", False), ("Z", True), delivered=date(2026, 7, 30))]  # late
    balances = [_balance("P1", week1, "A", "100", date(2026, 7, 18)), _balance("P1", week2, "A", "300", date(2026, 7, 25)),
                _balance("P1", week2 + timedelta(seconds=5), "B", "50", date(2026, 7, 25))]
    tables = {"subjects": subjects(engine, "P1"), "bank_accounts": silver(engine, "bank_accounts", accounts),
              "bank_balances": silver(engine, "bank_balances", balances)}
    row = build(engine, tables)["P1"]
    assert (row["bank_accounts"], row["bank_overdraft_accounts"], row["bank_balance_level"]) == (2, 0, 350)


def test_a_table_a_holder_never_delivered_is_null_not_zero(engine):
    """Operator T1 delivers payments, T2 none: T2's subscriber's payments are missing, T1's subscriber
    without payments paid nothing; bills in one month of three average over that month."""
    bill = {"charge_month": date(2026, 7, 1), "charge_date": date(2026, 7, 25), "charge_amt": Decimal("66000")}
    tables = {"subjects": subjects(engine, "P1", "P2", "P3"),
              "telecom_bills": silver(engine, "telecom_bills", [{**bill, "pseudonym": "P1", "org_code": TELECOM},
                                                                {**bill, "pseudonym": "P2", "org_code": TELECOM_2},
                                                                {**bill, "pseudonym": "P3", "org_code": TELECOM}]),
              "telecom_payments": silver(engine, "telecom_payments", [
                  {"pseudonym": "P3", "org_code": TELECOM, "trans_month": date(2026, 7, 1), "paid_amt": Decimal("66000")}])}
    row = build(engine, tables)
    assert [row[p]["telecom_paid_6m"] for p in ("P1", "P2", "P3")] == [0, None, 66000]
    assert [row[p]["telecom_unpaid_share_6m"] for p in ("P1", "P2", "P3")] == [1.0, None, 0.0]
    assert row["P1"]["telecom_arpu_3m"] == 66000  # one month delivered of the three: its average
    # a table nobody delivered: every feature of it is null, and so is every ratio using one
    del tables["telecom_payments"]
    row = build(engine, tables)
    assert {row[p]["telecom_paid_6m"] for p in row} == {None} and {row[p]["telecom_unpaid_share_6m"] for p in row} == {None}
    assert row["P1"]["telecom_micropay_3m"] is None and row["P1"]["card_spend_1m"] is None
    assert row["P1"]["bank_accounts"] is None and row["P1"]["telecom_lines"] is None


def test_a_delivery_dated_after_the_as_of_date_changes_nothing(engine):
    """A late delivery of an earlier month (dated after D) never reaches a snapshot as of D."""
    approval = {"org_code": "D100000001", "status": "01", "pay_type": "01", "approved_amt": Decimal("10000")}
    on_time = [{**approval, "pseudonym": "P1", "approved_dtime": kst(2026, 7, 3, 12)}]
    late = [{**approval, "pseudonym": "P1", "approved_dtime": kst(2026, 7, 20, 12), "delivered": date(2026, 8, 5)},
            {**approval, "pseudonym": "P2", "approved_dtime": kst(2026, 6, 20, 12), "delivered": date(2026, 8, 5)}]
    base = {"subjects": subjects(engine, "P1", "P2")}
    before = build(engine, {**base, "card_approvals": silver(engine, "card_approvals", on_time)})
    after = build(engine, {**base, "card_approvals": silver(engine, "card_approvals", on_time + late)})
    # P2's card holder is not known as of D at all: missing, not zero
    assert before == after and after["P1"]["card_spend_1m"] == 10000 and after["P2"]["card_spend_1m"] is None
    later = build(engine, {**base, "card_approvals": silver(engine, "card_approvals", on_time + late)}, date(2026, 8, 5))
    assert later["P1"]["card_spend_1m"] == 10000 and later["P1"]["card_txn_count_3m"] == 2


def test_the_training_frame_gives_each_row_the_features_of_its_own_date_without_leakage(engine):
    """Spine rows (P1, Jul 1) and (P1, Aug 1): each equals the snapshot as of its date, and nothing
    delivered after a row's date reaches it."""
    approval = {"org_code": "D100000001", "status": "01", "pay_type": "01", "pseudonym": "P1"}
    rows = [{**approval, "approved_dtime": kst(2026, 6, 3, 12), "approved_amt": Decimal("100"), "delivered": date(2026, 7, 1)},
            {**approval, "approved_dtime": kst(2026, 6, 28, 12), "approved_amt": Decimal("20"), "delivered": date(2026, 7, 2)},
            {**approval, "approved_dtime": kst(2026, 7, 9, 12), "approved_amt": Decimal("3"), "delivered": date(2026, 8, 1)}]
    tables = {"subjects": subjects(engine, "P1"), "card_approvals": silver(engine, "card_approvals", rows),
              "bank_accounts": silver(engine, "bank_accounts", [
                  *_accounts("P1", kst(2026, 7, 1, 3), ("A", False), delivered=date(2026, 7, 1)),
                  *_accounts("P1", kst(2026, 8, 1, 3), ("A", False), ("B", True), delivered=date(2026, 8, 1))])}
    spine = rows_table(engine, "spine", "pseudonym string, as_of date", [("P1", date(2026, 7, 1)), ("P1", date(2026, 8, 1))])
    frame = {r["as_of"]: r for r in engine.rows(historical_sql(engine.dialect, tables, spine))}
    assert frame[date(2026, 7, 1)]["card_spend_1m"] == 100  # the 20 came on Jul 2: not known on Jul 1
    # on Aug 1: July's 3 in the last month; June and July delivered of the 3 months: (100 + 20 + 3) / 2
    assert frame[date(2026, 8, 1)]["card_spend_1m"] == 3 and frame[date(2026, 8, 1)]["card_spend_3m_avg"] == 61.5
    assert (frame[date(2026, 7, 1)]["bank_accounts"], frame[date(2026, 8, 1)]["bank_accounts"]) == (1, 2)
    for day, row in frame.items():
        snapshot = build(engine, tables, day)["P1"]
        assert {k: v for k, v in row.items() if k != "as_of"} == snapshot, day


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
    tables = {"subjects": subjects(duckdb_engine, "P1", "P2")}
    silver(duckdb_engine, "telecom_usage", [
        {"pseudonym": p, "usage_month": month, "device_tier": tier, "plan_fee": fee} for p, month, tier, fee in (
            ("P1", date(2026, 6, 1), "premium", 80000), ("P1", date(2026, 7, 1), "budget", 29000),
            ("P1", date(2026, 7, 1), "mid", 49000),  # a second line, same month
            ("P2", date(2026, 7, 1), "mid", 49000), ("P2", date(2026, 8, 1), "premium", 99000))])  # on the as-of date
    duckdb_engine.view("usage_shuffled", "SELECT * FROM silver_telecom_usage ORDER BY random()")
    for table in ("silver_telecom_usage", "usage_shuffled"):
        row = build(duckdb_engine, {**tables, "telecom_usage": table})
        assert [(row[p]["telecom_device_tier"], row[p]["telecom_plan_fee"]) for p in ("P1", "P2")] == \
            [(2, 49000), (2, 49000)]


@pytest.mark.slow
def test_records_on_or_after_the_as_of_date_change_nothing(fused, duckdb_engine):
    """Events on or after the as-of date, and states of deliveries dated after it, change nothing."""
    settings, results = fused
    as_of = date.fromisoformat(results["marketing"]["as_of"])
    tables = features.register_silver(duckdb_engine, settings.lake, "marketing", as_of)
    baseline = build(duckdb_engine, tables, as_of)
    planted = dict(tables)
    for name, table in tables.items():
        source = SOURCES[name]
        if source.timing is None:
            continue
        column = source.time_column
        kind = dict(duckdb_engine.rows(f"SELECT typeof({column}) AS t FROM {table} LIMIT 1")[0])["t"]
        if source.timing == "event":
            late = " UNION ALL ".join(f"(SELECT * REPLACE (CAST(DATE '{moment}' AS {kind}) AS {column}) FROM {table} LIMIT 200)"
                                      for moment in (as_of, as_of + timedelta(days=40)))
        else:  # a newer collection, delivered the day after
            late = (f"(SELECT * REPLACE (CAST(DATE '{as_of + timedelta(days=1)}' AS {kind}) AS {column}, "
                    f"DATE '{as_of + timedelta(days=1)}' AS delivered) FROM {table} LIMIT 200)")
        planted[name] = f"planted_{name}"
        duckdb_engine.view(planted[name], f"SELECT * FROM {table} UNION ALL {late}")
    assert not differing_cells(baseline, build(duckdb_engine, planted, as_of))
    # and the check can fail: the same records one second earlier do change features
    duckdb_engine.view("early", f"SELECT * FROM {tables['bank_transactions']} UNION ALL (SELECT * REPLACE "
                                f"(TIMESTAMPTZ '{as_of} 00:00:00' - INTERVAL 1 SECOND AS trans_dtime) "
                                f"FROM {tables['bank_transactions']} WHERE trans_type = '01' LIMIT 20)")
    early = build(duckdb_engine, {**tables, "bank_transactions": "early"}, as_of)
    assert "bank_inflow_1m" in {d.split(".")[1] for d in differing_cells(baseline, early)}


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
    measured = {"usage_month": date(2026, 7, 1), "voice_min": 300, "sms_cnt": 10, "plan_fee": 69000,
                "tenure_months": 27}
    old = {**measured, "usage_month": date(2026, 1, 1)}  # outside every window
    tables = {"subjects": subjects(duckdb_engine, "P1", "P2", "P3"),
              "telecom_usage": silver(duckdb_engine, "telecom_usage", [{"pseudonym": "P1", **measured},
                                                                       {"pseudonym": "P3", **old}])}
    row = build(duckdb_engine, tables)
    for name in ("telecom_data_mb_3m_avg", "telecom_night_ratio_3m", "telecom_finance_app_3m_avg",
                 "telecom_device_tier"):
        assert row["P1"][name] is None, name
    # one month of three delivered: the monthly averages are that month's
    assert row["P1"]["telecom_voice_min_3m_avg"] == 300 and row["P1"]["telecom_plan_fee"] == 69000
    assert row["P2"]["telecom_voice_min_3m_avg"] == 0 and row["P3"]["telecom_voice_min_3m_avg"] == 0
