"""Ingest: typed bronze, quarantine with reasons, reconciliation against planted defects, reruns."""
from __future__ import annotations

import json
import shutil
from datetime import UTC, date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from jobs import ingest
from jobs.ingest import sql as ingest_sql
from jobs.ingest.job import rank
from mydata import storage
from mydata.config import Settings
from schemas.bronze import TABLES
from tests.on_spark import read_quarantine

LK = "A" * 43
LK2 = "B" * 43


def lines_table(engine, rows, name="raw_lines") -> str:
    """(value, dt) pairs registered as ingest's raw lines (numbered from 0); returns the name."""
    engine.arrow(name, pa.table({
        "value": [v for v, _ in rows], "bad_bytes": [False] * len(rows),
        "file_path": [f"/lake/landing/x/dt={dt}/part-0" for _, dt in rows], "line_no": list(range(len(rows))),
        "dt": [date.fromisoformat(dt) for _, dt in rows]}))
    return name


def split_rows(engine, spec, candidates: str, parsed: str | None = None) -> tuple[list[dict], list[dict]]:
    """(accepted rows, quarantine rows) of candidate rows (of the parsed lines ``parsed``), as ingest splits them."""
    rank(engine, spec, candidates, "ranked")
    return (engine.rows(ingest_sql.accepted_rows(engine.dialect, spec, "ranked")),
            engine.rows(ingest_sql.quarantined_rows(engine.dialect, spec, "ranked", parsed)))


def test_customer_rows_are_typed_or_quarantined_with_the_rule_and_a_reason(duckdb_engine):
    header = "link_key,key_version,birth_year,gender,region_code,customer_since"
    lines = lines_table(duckdb_engine, [
        (header, "2026-06-01"),
        (f"{LK},1,1990,F,11,20200115", "2026-06-01"),
        (f"{LK2},1,19x0,M,11,20200115", "2026-06-01"),
        (f"{LK2},1,1980,X,99,20200115", "2026-06-01"),
        (f"{LK2},1,1980,M,11", "2026-06-01"),
        (",1,1980,M,11,20200115", "2026-06-01"),
        (f"{LK},1,1990,F,11,20200115", "2026-06-01"),
    ])
    spec = TABLES["customers"]
    rows, quarantined = split_rows(duckdb_engine, spec, ingest_sql.csv_rows(duckdb_engine.dialect, spec, lines))
    assert [(r["link_key"], r["birth_year"], r["gender"], r["customer_since"]) for r in rows] == \
        [(LK, 1990, "F", date(2020, 1, 15))]
    found = sorted((q["rule"], q["reason"]) for q in quarantined)
    assert found == sorted([
        ("birth_year.format", "birth_year=19x0 is not a year"),
        ("gender.in_set", "gender=X is not a known code; region_code=99 is not a known code"),
        ("csv_parse", "row does not have the 6 fields of the header"),
        ("link_key.not_null", "link_key is missing"),
        ("natural_key.unique", "natural key (link_key) already accepted in this delivery at line 1 of part-0"),
    ])


def envelope(api="bank.deposit.transactions", tran="0200000000M00000000000001", rsp="00000", items=None,
             count=None, link_key=LK):
    items = items if items is not None else [
        {"trans_dtime": "20261002121530", "trans_no": "1", "trans_type": "01", "trans_class": "입금",
         "currency_code": "KRW", "trans_amt": "2500000.000", "balance_amt": "3120000.000",
         "paid_in_cnt": 0, "trans_memo": "급여"}]
    response = {"rsp_code": rsp, "rsp_msg": "정상처리"}
    if rsp == "00000":
        response.update({"trans_cnt": len(items) if count is None else count, "trans_list": items})
    record = {"link_key": link_key, "key_version": 1, "org_code": "0200000000", "api": api,
              "x_api_tran_id": tran, "collected_at": "20261101093015",
              "request": {"account_num": "Aref", "from_dtime": "20261001000000", "to_dtime": "20261031235959"},
              "response": response}
    return json.dumps(record, ensure_ascii=False)


def parsed_lines(engine, raw: str, earlier: list[tuple[str, date]] | None) -> list[dict]:
    """Lines parsed and marked as ingest does, against earlier deliveries' collections."""
    if earlier is not None:
        engine.arrow("delivered", pa.table({"x_api_tran_id": [t for t, _ in earlier], "dt": [d for _, d in earlier]}))
    return marked_lines(engine, raw, "delivered" if earlier is not None else None, [date(2026, 11, 1)])


def marked_lines(engine, raw: str, delivered: str | None, dts: list[date], earlier: str | None = None) -> list[dict]:
    """Lines parsed, their duplicates found and marked, as ingest does (the view ``parsed``)."""
    d = engine.dialect
    engine.table("unmarked", ingest_sql.parse_mydata(d, "bank", raw))
    engine.table("duplicates", ingest_sql.duplicate_lines(d, "unmarked", delivered, dts, earlier))
    engine.view("parsed", ingest_sql.mark_duplicates(d, "unmarked", "duplicates"))
    return engine.rows("SELECT * FROM parsed")


def test_mydata_lines_get_one_outcome_each(duckdb_engine):
    raw = lines_table(duckdb_engine, [
        (envelope(), "2026-11-01"),
        (envelope()[:50], "2026-11-01"),
        (envelope(api="bank.unknown", tran="T2"), "2026-11-01"),
        (envelope(rsp="40101", tran="T3"), "2026-11-01"),
        (envelope(), "2026-11-01"),
        (envelope(count=5, tran="T4"), "2026-11-01"),
        (envelope(tran="T5", link_key="short"), "2026-11-01"),
    ])
    lines = parsed_lines(duckdb_engine, raw, [("T9", date(2026, 10, 1))])
    outcome = {r["line_no"]: (r["status"], r["line_rule"]["rule"] if r["line_rule"] else None) for r in lines}
    assert outcome == {0: ("ok", None), 1: ("rejected", "json_parse"), 2: ("rejected", "api.in_set"),
                       3: ("failed", None), 4: ("duplicate", None), 5: ("rejected", "count_mismatch"),
                       6: ("rejected", "link_key.format")}


@pytest.mark.parametrize("engine_name", ["duckdb", "spark"])
def test_a_line_whose_objects_or_lists_have_another_type_is_unreadable_on_both_engines(request, engine_name):
    """A string where an object or a list belongs (the response, the list, one of its items) makes
    the line unreadable; an object where a string belongs is kept as its JSON text, and a null is
    a null wherever it is (a list's item too: its row then lacks what it requires)."""
    import json as js

    from tests.on_spark import as_engine

    def edited(tran: str, change) -> str:
        record = js.loads(envelope(tran=tran))
        change(record)
        return js.dumps(record, ensure_ascii=False)
    engine = request.getfixturevalue("duckdb_engine") if engine_name == "duckdb" \
        else as_engine(request.getfixturevalue("spark"))
    try:
        raw = lines_table(engine, [
            (edited("T1", lambda r: r.update(response="none")), "2026-11-01"),
            (edited("T2", lambda r: r["response"].update(trans_list="none")), "2026-11-01"),
            (edited("T3", lambda r: r["response"]["trans_list"].append("none")), "2026-11-01"),
            (edited("T4", lambda r: r["response"]["trans_list"][0].update(trans_memo={"a": 1})), "2026-11-01"),
            (edited("T5", lambda r: r.update(request=None)), "2026-11-01"),
            (edited("T6", lambda r: r["response"].update(trans_list=[None], trans_cnt=1)), "2026-11-01"),
            (edited("T7", lambda r: r.update(request="none")), "2026-11-01"),
            (edited("T8", lambda r: r.update(response=[r["response"]])), "2026-11-01"),
            # a key may be spelled with escapes: the line is still read by what it says
            (edited("T9", lambda r: r.update(response="none")).replace('"response"', '"\\u0072esponse"'),
             "2026-11-01"),
            (edited("T10", lambda r: r.update(request={})), "2026-11-01"),
        ])
        lines = parsed_lines(engine, raw, None)
    finally:
        engine.close()
    outcome = {r["x_api_tran_id"]: r["line_rule"]["rule"] if r["line_rule"] else r["status"] for r in lines}
    assert outcome == {"T1": "json_parse", "T2": "json_parse", "T3": "json_parse", "T4": "ok",
                       "T5": "ok", "T6": "ok", "T7": "json_parse", "T8": "json_parse",
                       "T9": "json_parse", "T10": "ok"}


def test_an_id_read_earlier_in_the_run_makes_a_duplicate_though_its_date_is_being_replaced(duckdb_engine):
    """The embedded engine reads a run a delivery date at a time: what an earlier date of the run
    held counts, while the index's own rows for the run's dates (being replaced) do not."""
    raw = lines_table(duckdb_engine, [(envelope(tran="T9"), "2026-11-01"), (envelope(tran="T8"), "2026-11-01")])
    duckdb_engine.arrow("delivered", pa.table({"x_api_tran_id": ["T8"], "dt": [date(2026, 10, 1)]}))
    duckdb_engine.arrow("earlier", pa.table({"x_api_tran_id": ["T9"], "dt": [date(2026, 10, 1)]}))
    lines = marked_lines(duckdb_engine, raw, "delivered", [date(2026, 10, 1), date(2026, 11, 1)], "earlier")
    assert sorted((r["x_api_tran_id"], r["status"]) for r in lines) == [("T8", "ok"), ("T9", "duplicate")]


@pytest.mark.parametrize("engine_name", ["duckdb", "spark"])
def test_a_line_of_json_that_is_not_an_object_is_unreadable_on_both_engines(request, engine_name):
    from tests.on_spark import as_engine

    engine = request.getfixturevalue("duckdb_engine") if engine_name == "duckdb" \
        else as_engine(request.getfixturevalue("spark"))
    try:
        raw = lines_table(engine, [(line, "2026-11-01") for line in ("[1, 2]", '"text"', "42", "null", "{}")])
        lines = parsed_lines(engine, raw, None)
    finally:
        engine.close()
    assert {r["line_no"]: r["line_rule"]["rule"] for r in lines} == {
        0: "json_parse", 1: "json_parse", 2: "json_parse", 3: "json_parse", 4: "api.in_set"}


def test_a_response_delivered_again_later_is_a_duplicate(duckdb_engine):
    raw = lines_table(duckdb_engine, [(envelope(tran="T9"), "2026-11-01"), (envelope(tran="T8"), "2026-11-01")])
    # T9 came in two earlier deliveries (still one line here); T8 only in a later one (not a repeat)
    lines = parsed_lines(duckdb_engine, raw, [("T9", date(2026, 9, 1)), ("T9", date(2026, 10, 1)),
                                              ("T8", date(2026, 12, 1))])
    assert sorted((r["x_api_tran_id"], r["status"]) for r in lines) == [("T8", "ok"), ("T9", "duplicate")]


def test_transactions_are_exploded_typed_and_bad_items_quarantined_alone(duckdb_engine):
    good = {"trans_dtime": "20261002121530", "trans_no": "1", "trans_type": "01", "trans_class": "입금",
            "currency_code": "KRW", "trans_amt": "2500000.000", "balance_amt": "3120000.000",
            "paid_in_cnt": 0, "trans_memo": "급여"}
    bad = dict(good, trans_no="2", trans_amt="-5.000", trans_dtime="20260231093000")
    engine, d, spec = duckdb_engine, duckdb_engine.dialect, TABLES["bank_transactions"]
    raw = lines_table(engine, [(envelope(items=[good, bad]), "2026-11-01")])
    marked_lines(engine, raw, None, [])
    row, q = split_rows(engine, spec, ingest_sql.mydata_rows(d, spec, "parsed"), "parsed")
    assert len(row) == 1 and row[0]["trans_no"] == "1" and row[0]["item_no"] == 0
    assert str(row[0]["trans_amt"]) == "2500000.000"
    assert row[0]["trans_dtime"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") == "2026-10-02 03:15:30"
    assert engine.rows("SELECT typeof(trans_amt) AS t FROM ranked LIMIT 1") == [{"t": "DECIMAL(18,3)"}]
    assert [(r["rule"], r["item_no"]) for r in q] == [("trans_dtime.format", 1)]
    assert "trans_amt=-5.000 is not a non-negative decimal" in q[0]["reason"]
    assert json.loads(q[0]["record"])["trans_no"] == "2"


# -- end to end over generated deliveries -----------------------------------------------------------

def test_every_record_is_accounted_for_and_matches_the_planted_defects(ingested, spark):
    settings, summary, _, manifest = ingested
    recon = manifest["outputs"]["reconciliation"]
    assert manifest["status"] == "succeeded"
    assert all(e["balanced"] for by_dt in recon.values() for e in by_dt.values())
    quarantine = read_quarantine(spark, settings.lake)
    for source, planted in summary.defects.items():
        total = {k: sum(e.get(k, 0) for e in recon[source].values())
                 for k in ("records_read", "duplicates", "failed_collections", "lines_quarantined",
                           "rows_quarantined")}
        assert total["records_read"] == summary.records[source]
        if source in ("bank", "card", "telecom"):
            assert total["duplicates"] == planted.get("duplicate_delivery", 0)
            assert total["failed_collections"] == planted.get("failed_collection", 0)
            unreadable = planted.get("malformed_json", 0) + planted.get("missing_link_key", 0)
            tables = [t.name for t in TABLES.values() if t.source == source]
            spoilt_lines = (quarantine.where(F.col("table").isin(*tables))
                            .select("file_path", "line_no").distinct().count())
            # a spoilt request of a response with no items has no row to quarantine: its line is
            assert total["lines_quarantined"] >= unreadable
            assert total["lines_quarantined"] + spoilt_lines == unreadable + sum(
                planted.get(k, 0) for k in ("bad_amount", "bad_date", "unknown_code"))
        else:
            assert total["rows_quarantined"] == sum(planted.values())
    assert summary.records["consent"] == sum(e["records_read"] for e in recon["consent"].values())


def test_quarantine_rows_carry_table_rule_reason_and_the_original_record(ingested, spark):
    settings = ingested[0]
    quarantine = read_quarantine(spark, settings.lake)
    assert quarantine.where(F.col("rule").isNull() | (F.length("reason") == 0)
                            | F.col("record").isNull() | F.col("file_path").isNull()).count() == 0
    assert {r.table for r in quarantine.select("table").distinct().collect()} >= {
        "bank_lines", "bank_transactions", "telecom_usage", "customers"}


def test_bronze_tables_are_typed_and_partitioned_by_delivery_date(ingested, spark):
    settings, summary = ingested[0], ingested[1]
    for name in ("bank_transactions", "card_approvals", "telecom_usage", "customers", "consent_events"):
        table = spark.read.parquet(str(settings.lake.bronze_table(name)))
        assert sorted(str(r.dt) for r in table.select("dt").distinct().collect()) == summary.deliveries
    types = dict(spark.read.parquet(str(settings.lake.bronze_table("bank_transactions"))).dtypes)
    assert types["trans_dtime"] == "timestamp" and types["trans_amt"] == "decimal(18,3)"
    usage = dict(spark.read.parquet(str(settings.lake.bronze_table("telecom_usage"))).dtypes)
    assert usage["usage_month"] == "date" and usage["night_data_ratio"] == "double"


def test_a_delivery_without_success_marker_is_not_read_and_says_why(tmp_path, small_landing, spark):
    settings, summary = small_landing
    root = tmp_path / "lake"
    dt = summary.deliveries[0]
    shutil.copytree(settings.lake.landing / "bank" / f"dt={dt}", root / "landing" / "bank" / f"dt={dt}")
    (root / "landing" / "bank" / f"dt={dt}" / "_SUCCESS").unlink()
    with pytest.raises(ingest.NoDeliveryError, match=f"waiting for _SUCCESS: bank dt={dt}"):
        ingest.run(Settings(data_root=root, delivery_date=dt), spark)


def test_recover_restores_a_partition_left_in_trash_by_an_interrupted_swap(tmp_path):
    table = tmp_path / "t"
    (table / "_trash" / "run1" / "dt=2026-06-01").mkdir(parents=True)
    (table / "_trash" / "run1" / "dt=2026-06-01" / "part.parquet").write_text("old")
    (table / "_staging" / "run1" / "dt=2026-06-01").mkdir(parents=True)
    done = storage.recover(table)
    assert (table / "dt=2026-06-01" / "part.parquet").read_text() == "old"
    assert not (table / "_trash" / "run1").exists() and not (table / "_staging" / "run1").exists()
    assert len(done) == 2


def _partition_files(table, dt):
    folder = table / f"dt={dt}"
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_a_run_killed_mid_write_leaves_the_previous_partition_intact_and_a_rerun_replaces_it(ingested, spark):
    """Kill a real ingest process (and its Spark JVM) once it is writing; the old partition stays.
    Rerunning the date then cleans up, and replaces its partitions without duplicating a row."""
    import os
    import signal
    import subprocess
    import sys
    import time

    settings, summary = ingested[0], ingested[1]
    dt = summary.deliveries[0]
    tables = [settings.lake.bronze_table(t) for t in ("bank_transactions", "card_approvals", "customers")]
    every = sorted(p.parent for zone in (settings.lake.bronze, settings.lake.quarantine) for p in zone.rglob(f"dt={dt}"))
    before = {t: _partition_files(t, dt) for t in every}
    rows_before = {t.name: pq.read_table(t / f"dt={dt}").num_rows for t in tables}
    env = {**os.environ, **settings.replace(delivery_date=dt).as_env()}
    process = subprocess.Popen([sys.executable, "-m", "jobs.ingest"], env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not any((t / "_staging").exists() for t in tables) and time.monotonic() < deadline:
            assert process.poll() is None, "ingest ended before it started writing"
            time.sleep(0.05)
        assert any((t / "_staging").exists() for t in tables), "ingest never started writing"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    # every table as it was: the run publishes its partitions together, only once all are written
    assert {t: _partition_files(t, dt) for t in every} == before
    totals = {name: spark.read.parquet(str(settings.lake.bronze_table(name))).count()
              for name in ("bank_transactions", "telecom_usage", "consent_events")}
    again = ingest.run(settings.replace(delivery_date=date.fromisoformat(dt)), spark)
    assert not list(settings.lake.bronze.rglob("_staging")) and not list(settings.lake.bronze.rglob("_trash"))
    assert {t.name: pq.read_table(t / f"dt={dt}").num_rows for t in tables} == rows_before
    assert {name: spark.read.parquet(str(settings.lake.bronze_table(name))).count() for name in totals} == totals
    manifest = json.loads(open(again["manifest"], encoding="utf-8").read())
    assert list(manifest["outputs"]["reconciliation"]["bank"]) == [dt]
