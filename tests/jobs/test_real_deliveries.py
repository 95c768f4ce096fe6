"""Ingest on small hand-made deliveries shaped like real holders': unknown holders, fields a holder
lacks, negative card bills, re-deliveries, bad bytes, huge fields, split files, a source gone bad,
and a run that fails or is cut short."""
from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path
from unittest.mock import patch

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from jobs import ingest
from jobs.ingest import sql as ingest_sql
from jobs.ingest.job import rank, ranking_parts
from mydata import storage
from mydata.config import Settings
from mydata.engines import open_engine
from mydata.holders import Holder, HolderRegistry
from schemas.bronze import TABLES
from schemas.landing import CSV_SOURCES

DT = "2026-11-01"
LK = "A" * 43
LK2 = "B" * 43
CARD_ORG, BANK_ORG, TELECOM_ORG = "D100000001", "0200000000", "T100000001"
USAGE_HEADER = ",".join(CSV_SOURCES["telecom_usage"])


def deliver(root: Path, source: str, lines: list, name: str = "part-0.jsonl", dt: str = DT) -> Path:
    """One delivery folder with ``_SUCCESS``: lines as text (or bytes, written as they are)."""
    folder = root / "landing" / source / f"dt={dt}"
    folder.mkdir(parents=True, exist_ok=True)
    data = b"".join((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n" for line in lines)
    (folder / name).write_bytes(data)
    (folder / "_SUCCESS").touch()
    return folder / name


def register(root: Path, *holders: tuple[str, str]) -> None:
    registry = HolderRegistry.open(Settings(data_root=root), env={})
    for source, org in holders:
        registry.add(Holder(source, org, f"holder {org}", date(2026, 1, 1)))


def response(api: str, org: str, tran: str, body: dict, request: dict | None = None,
             collected: str = "20261101093015", link_key: str = LK) -> str:
    return json.dumps({"link_key": link_key, "key_version": 1, "org_code": org, "api": api,
                       "x_api_tran_id": tran, "collected_at": collected, "request": request or {},
                       "response": {"rsp_code": "00000", "rsp_msg": "정상처리", **body}}, ensure_ascii=False)


def bills(org: str, tran: str, *amounts: str, link_key: str = LK) -> str:
    items = [{"seqno": str(i + 1), "charge_amt": amount, "charge_day": "15", "charge_month": "202610",
              "paid_out_date": "20261015"} for i, amount in enumerate(amounts)]
    return response("card.bills", org, tran, {"bill_cnt": len(items), "bill_list": items}, link_key=link_key)


def approval(tran: str, collected: str, approved_num: str = "A1", **fields) -> str:
    item = {"approved_num": approved_num, "status": "01", "pay_type": "01", "approved_dtime": "20261010120000",
            "merchant_name": "스타벅스", "approved_amt": "5000.000", "total_install_cnt": 0, **fields}
    item = {k: v for k, v in item.items() if v is not None}
    return response("card.approvals", CARD_ORG, tran, {"approved_cnt": 1, "approved_list": [item]},
                    {"card_id": "C1", "from_date": "20261001", "to_date": "20261031"}, collected)


def bronze(root: Path, table: str) -> list[dict]:
    folder = root / "bronze" / table
    return pq.read_table(folder).to_pylist() if storage.has_data(folder) else []


def quarantine(root: Path, table: str) -> list[dict]:
    folder = root / "quarantine" / table
    return pq.read_table(folder).to_pylist() if storage.has_data(folder) else []


def manifest_of(root: Path) -> dict:
    return json.loads(max((root / "manifests" / "ingest").glob("*.json"), key=lambda p: p.stat().st_mtime)
                      .read_text(encoding="utf-8"))


# -- holders are configuration ----------------------------------------------------------------------

def test_a_delivery_from_an_unregistered_holder_fails_naming_it_and_the_command(tmp_path, spark):
    deliver(tmp_path, "card", [bills("D999999999", "T1", "1000.000"), bills("D999999999", "T2", "2000.000", link_key=LK2)])
    register(tmp_path, ("card", CARD_ORG))
    with pytest.raises(ingest.IngestFailed) as failed:
        ingest.run(Settings(data_root=tmp_path), spark)
    message = str(failed.value)
    assert "card delivery dt=2026-11-01: org_code D999999999 is not a registered card holder (2 lines" in message
    assert "mydata holders add --source card --org-code D999999999" in message
    assert bronze(tmp_path, "card_bills") == [] and quarantine(tmp_path, "card_lines") == []
    manifest = manifest_of(tmp_path)
    assert manifest["status"] == "failed" and "D999999999" in manifest["error"]
    register(tmp_path, ("card", "D999999999"))
    result = ingest.run(Settings(data_root=tmp_path), spark)
    assert result["rows_accepted"] == 2 and manifest_of(tmp_path)["status"] == "succeeded"


def test_every_unregistered_holder_of_a_run_is_named_at_once_with_its_since(tmp_path, capsys):
    """Two unknown card holders over two dates and an unknown bank: one failure names all three, each
    with the command that registers it from its earliest delivery; no source's progress claims a publish."""
    from mydata import progress

    deliver(tmp_path, "card", [bills("D999999999", "T1", "1000.000")], dt="2026-10-01")
    deliver(tmp_path, "card", [bills("D999999999", "T2", "1000.000"), bills("D888888888", "T3", "5.000")])
    deliver(tmp_path, "bank", [response("bank.accounts", "0990000000", "B1", {"account_cnt": 0, "account_list": []})])
    register(tmp_path, ("card", CARD_ORG))
    import io
    stream = io.StringIO()
    with progress.shown_by(progress.for_stream(stream)), pytest.raises(ingest.IngestFailed) as failed:
        ingest.run(Settings(data_root=tmp_path))
    message = str(failed.value)
    assert "\n" not in message and message.startswith("3 unregistered holder(s), nothing of this run was ingested")
    for source, org, since in (("card", "D999999999", "2026-10-01"), ("card", "D888888888", "2026-11-01"),
                               ("bank", "0990000000", "2026-11-01")):
        assert f"mydata holders add --source {source} --org-code {org} --name NAME --since {since}" in message
    assert "card deliveries dt=2026-10-01..2026-11-01 (2 dates): org_code D999999999" in message
    lines = stream.getvalue().splitlines()
    assert any(line.startswith("ingest publish: FAILED after") for line in lines), lines
    assert not any(" rows in " in line for line in lines if line.startswith("ingest card")), lines


def test_a_holder_registered_later_than_the_delivery_is_refused_for_it(tmp_path, spark):
    deliver(tmp_path, "card", [bills(CARD_ORG, "T1", "1000.000")])
    HolderRegistry.open(Settings(data_root=tmp_path), env={}).add(Holder("card", CARD_ORG, "신한카드", date(2026, 12, 1)))
    with pytest.raises(ingest.IngestFailed, match="is registered for card only since 2026-12-01"):
        ingest.run(Settings(data_root=tmp_path), spark)


def test_the_registry_from_the_environment_is_read_only_and_a_bad_one_is_named(tmp_path):
    from mydata.config import ConfigError

    env = {"MYDATA_HOLDERS": json.dumps([{"source": "card", "org_code": CARD_ORG, "name": "x", "since": "2026-01-01"}])}
    registry = HolderRegistry.open(Settings(data_root=tmp_path), env=env)
    assert registry.get("card", CARD_ORG).since == date(2026, 1, 1)
    with pytest.raises(ConfigError, match="read-only"):
        registry.add(Holder("bank", BANK_ORG, "우리은행", date(2026, 1, 1)))
    with pytest.raises(ConfigError, match="an org_code is 10 letters or digits"):
        Holder("card", "D1", "short", date(2026, 1, 1))
    with pytest.raises(ConfigError, match="MYDATA_HOLDERS is not a JSON list"):
        HolderRegistry.open(Settings(data_root=tmp_path), env={"MYDATA_HOLDERS": "{nope"})


# -- what real holders deliver ---------------------------------------------------------------------

def test_negative_card_bills_are_accepted_and_negative_telecom_bills_are_not(tmp_path, spark):
    deliver(tmp_path, "card", [bills(CARD_ORG, "T1", "-12500.000", "30000.000")])
    telecom_bill = response("telecom.bills", TELECOM_ORG, "T2", {"bill_cnt": 1, "bill_list": [
        {"mgmt_id": "M1", "charge_amt": "-100.000", "charge_date": "20261025"}]}, {"charge_month": "202610"})
    deliver(tmp_path, "telecom", [telecom_bill])
    register(tmp_path, ("card", CARD_ORG), ("telecom", TELECOM_ORG))
    ingest.run(Settings(data_root=tmp_path, max_quarantine_rate=1), spark)
    assert sorted(str(r["charge_amt"]) for r in bronze(tmp_path, "card_bills")) == ["-12500.000", "30000.000"]
    [refused] = quarantine(tmp_path, "telecom_bills")
    assert refused["rule"] == "charge_amt.format"
    assert refused["reason"] == "charge_amt=-100.000 is not a non-negative decimal"


def test_usage_without_the_columns_an_operator_lacks_is_kept_with_nulls(tmp_path, spark):
    rows = [USAGE_HEADER,
            f"{LK},1,M1,202610,5G 스탠다드,69000,5G,320,41,,,0,,,,27",   # no data, app sessions, tier, grade
            f"{LK2},1,M2,202610,,,,,,,,,,,,",                             # only what is required
            f"{LK2},1,,202610,,,,,,,,,,,,"]                               # no line: quarantined
    deliver(tmp_path, "telecom_usage", rows, name="usage.csv")
    ingest.run(Settings(data_root=tmp_path, max_quarantine_rate=1), spark)
    kept = {r["mgmt_id"]: r for r in bronze(tmp_path, "telecom_usage")}
    assert kept["M1"]["voice_min"] == 320 and kept["M1"]["plan_name"] == "5G 스탠다드"
    assert all(kept["M1"][c] is None for c in ("data_mb", "night_data_ratio", "finance_app_sessions",
                                               "device_tier", "membership_grade"))
    assert kept["M2"]["plan_name"] is None and kept["M2"]["tenure_months"] is None
    [refused] = quarantine(tmp_path, "telecom_usage")
    assert (refused["rule"], refused["reason"]) == ("mgmt_id.not_null", "mgmt_id is missing")


def test_optional_item_fields_may_be_absent_and_a_cancellation_needs_its_time(tmp_path, spark):
    deliver(tmp_path, "card", [
        approval("T1", "20261101090000", "A1", merchant_name=None),
        approval("T2", "20261101090000", "A2", merchant_name=""),
        approval("T3", "20261101090000", "A3", status="02"),
        approval("T4", "20261101090000", "A4", status="02", cancel_dtime="20261011100000")])
    register(tmp_path, ("card", CARD_ORG))
    ingest.run(Settings(data_root=tmp_path, max_quarantine_rate=1), spark)
    kept = {r["approved_num"]: r for r in bronze(tmp_path, "card_approvals")}
    assert sorted(kept) == ["A1", "A2", "A4"]
    assert kept["A1"]["merchant_name"] is None and kept["A2"]["merchant_name"] is None
    [refused] = quarantine(tmp_path, "card_approvals")
    assert (refused["rule"], refused["reason"]) == ("cancel_dtime.not_null",
                                                    "cancel_dtime is missing although status=02")


def test_the_first_collection_wins_and_a_re_delivery_names_it(tmp_path, spark):
    # the re-delivery (new x_api_tran_id, collected later) comes first in the file
    deliver(tmp_path, "card", [approval("T-LATER", "20261102090000"), approval("T-FIRST", "20261101090000")])
    register(tmp_path, ("card", CARD_ORG))
    ingest.run(Settings(data_root=tmp_path, max_quarantine_rate=1), spark)
    [kept] = bronze(tmp_path, "card_approvals")
    assert kept["x_api_tran_id"] == "T-FIRST"
    [refused] = quarantine(tmp_path, "card_approvals")
    assert refused["rule"] == "natural_key.unique" and refused["line_no"] == 1
    assert refused["reason"].endswith("already accepted in this delivery from x_api_tran_id=T-FIRST")


def test_bad_bytes_and_overlong_fields_are_quarantined_with_a_reason(tmp_path, spark):
    memo = "x" * 5_000_000  # a 5 MB memo
    item = {"trans_dtime": "20261002121530", "trans_no": "1", "trans_type": "01", "currency_code": "KRW",
            "trans_amt": "1000.000", "balance_amt": "5000.000", "paid_in_cnt": 0, "trans_memo": memo}
    request = {"account_num": "R1", "from_dtime": "20261001000000", "to_dtime": "20261031235959"}
    long_line = response("bank.deposit.transactions", BANK_ORG, "T1", {"trans_cnt": 1, "trans_list": [item]}, request)
    broken = response("bank.deposit.transactions", BANK_ORG, "T2",
                      {"trans_cnt": 1, "trans_list": [dict(item, trans_memo="급여", trans_no="2")]},
                      request).encode("utf-8").replace("급여".encode(), b"\xff\xfe")
    deliver(tmp_path, "bank", [long_line, broken])
    deliver(tmp_path, "customer", ["link_key,key_version,birth_year,gender,region_code,customer_since",
                                   f"{LK},1,1990,F,11,20200115".encode() + b"\xc3"], name="c.csv")
    register(tmp_path, ("bank", BANK_ORG))
    ingest.run(Settings(data_root=tmp_path, max_quarantine_rate=1), spark)
    [too_long] = quarantine(tmp_path, "bank_transactions")
    assert too_long["rule"] == "trans_memo.length"
    assert too_long["reason"] == "trans_memo is 5,000,000 characters long, more than 200"
    [not_utf8] = quarantine(tmp_path, "bank_lines")
    assert (not_utf8["rule"], not_utf8["reason"], not_utf8["line_no"]) == (
        "encoding.utf8", "the line is not valid UTF-8", 2)
    [customer] = quarantine(tmp_path, "customers")
    assert customer["rule"] == "encoding.utf8" and bronze(tmp_path, "customers") == []


@pytest.mark.parametrize("engine_name", ["duckdb", "spark"])
def test_line_numbers_are_true_line_numbers_whatever_the_engine_splits(tmp_path, spark, engine_name):
    header = "link_key,key_version,birth_year,gender,region_code,customer_since"
    rows = [header] + [f"{LK[:-6]}{i:06d},1,1990,F,11,20200115" if i % 97 else f"{LK[:-6]}{i:06d},1,19x0,F,11,20200115"
                       for i in range(1, 3000)]
    path = deliver(tmp_path, "customer", rows, name="c.csv")
    engine = open_engine(Settings(data_root=tmp_path, engine=engine_name, duckdb_threads=2), spark)
    spec = TABLES["customers"]
    # Spark reads about ten blocks of this file; DuckDB's reader a block of at most this many bytes
    spark.conf.set("spark.sql.files.maxPartitionBytes", "16k")
    try:
        with patch("mydata.engines.duckdb.BLOCK_BYTES", 16 << 10):
            engine.lines("c_lines", [path])
        numbered = {r["line_no"]: r["value"] for r in engine.rows("SELECT line_no, value FROM c_lines")}
        rank(engine, spec, ingest_sql.csv_rows(engine.dialect, spec, "c_lines"), "c_ranked")
        spoilt = sorted(r["line_no"] for r in engine.rows(ingest_sql.quarantined_rows(engine.dialect, spec, "c_ranked")))
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
        engine.drop("c_lines", *ranking_parts("c_ranked"))
        engine.close()
    assert numbered == {i + 1: row for i, row in enumerate(rows)}
    assert spoilt == [i + 1 for i in range(1, 3000) if i % 97 == 0]


@pytest.mark.parametrize("engine_name", ["duckdb", "spark"])
def test_a_blank_line_is_one_of_spaces_only_whatever_the_engine(tmp_path, spark, engine_name):
    header, row = "link_key,key_version,birth_year,gender,region_code,customer_since", f"{LK},1,1990,F,11,20200115"
    path = deliver(tmp_path, "customer", [header, row, "", "   ", "\t", "\u00a0", "\u3000", row], name="c.csv")
    engine = open_engine(Settings(data_root=tmp_path, engine=engine_name, duckdb_threads=2), spark)
    try:
        engine.lines("c_lines", [path])
        numbered = {r["line_no"]: r["value"] for r in engine.rows("SELECT line_no, value FROM c_lines")}
    finally:
        engine.drop("c_lines")
        engine.close()
    assert numbered == {1: header, 2: row, 5: "\t", 6: "\u00a0", 7: "\u3000", 8: row}


@pytest.mark.parametrize("engine_name", ["duckdb", "spark"])
def test_a_field_of_unicode_spaces_is_not_missing_whatever_the_engine(tmp_path, spark, engine_name):
    """Only U+0020 makes a field blank, as Spark's trim sees it; DuckDB's trim strips U+00A0 too."""
    header = "link_key,key_version,birth_year,gender,region_code,customer_since"
    path = deliver(tmp_path, "customer", [header, f"{LK},1,1990,\u00a0,11,20200115", f"{LK2},1,1990, ,11,20200115"],
                   name="c.csv")
    engine = open_engine(Settings(data_root=tmp_path, engine=engine_name, duckdb_threads=2), spark)
    spec = TABLES["customers"]
    try:
        engine.lines("c_lines", [path])
        rank(engine, spec, ingest_sql.csv_rows(engine.dialect, spec, "c_lines"), "c_ranked")
        found = sorted((r["line_no"], r["rule"]) for r in engine.rows(ingest_sql.quarantined_rows(engine.dialect, spec, "c_ranked")))
    finally:
        engine.drop("c_lines", *ranking_parts("c_ranked"))
        engine.close()
    assert found == [(2, "gender.in_set"), (3, "gender.not_null")]


# -- a source that goes bad fails the run, and the run lands whole or not at all ----------------------

def test_a_table_above_the_quarantine_threshold_fails_ingest_and_publishes_nothing(tmp_path, spark):
    good = [bills(CARD_ORG, f"T{i}", "1000.000", link_key=f"{LK[:-3]}{i:03d}") for i in range(40)]
    bad = [bills(CARD_ORG, f"X{i}", "12,000", link_key=f"{LK2[:-3]}{i:03d}") for i in range(3)]
    deliver(tmp_path, "card", good + bad)
    register(tmp_path, ("card", CARD_ORG))
    with pytest.raises(ingest.IngestFailed) as failed:
        ingest.run(Settings(data_root=tmp_path), spark)
    assert ("quarantine gate: card_bills dt=2026-11-01: 7.0% of 43 rows quarantined (threshold 2.0%); "
            "top rules: charge_amt.format 3; e.g. charge_amt=12,000 is not a decimal") in str(failed.value)
    assert bronze(tmp_path, "card_bills") == [] and not list(tmp_path.glob("bronze/*/_staging/*"))
    manifest = manifest_of(tmp_path)
    assert manifest["status"] == "failed" and manifest["outputs"]["gate_failures"]
    page = Path(manifest["outputs"]["report"]).read_text(encoding="utf-8")
    assert "Quarantine gate" in page and "ABOVE" in page
    assert ingest.run(Settings(data_root=tmp_path, max_quarantine_rate=0.1), spark)["rows_accepted"] == 40


def test_a_run_killed_while_publishing_is_finished_by_the_next_one(tmp_path):
    """Two tables staged; the kill came after the journal and the first table's swap."""
    tables = [tmp_path / "bronze" / name for name in ("a", "b")]
    writes = []
    for table in tables:
        (table / "dt=2026-11-01").mkdir(parents=True)
        (table / "dt=2026-11-01" / "part.parquet").write_text("old")
        staged = table / "_staging" / "run1.x" / "dt=2026-11-01"
        staged.mkdir(parents=True)
        (staged / "part.parquet").write_text("new")
        writes.append(storage.Staged(staged.parent, ((staged, table / "dt=2026-11-01"),), "run1"))
    journal = tmp_path / "_journal"
    journal.mkdir()
    (journal / "run1.json").write_text(json.dumps([[str(w.moves[0][0]), str(w.moves[0][1]), True] for w in writes]))
    storage._swap([(*writes[0].moves[0], True)], "run1")  # the first table swapped, then the kill
    assert [(t / "dt=2026-11-01" / "part.parquet").read_text() for t in tables] == ["new", "old"]
    done = storage.roll_forward(journal)
    assert [(t / "dt=2026-11-01" / "part.parquet").read_text() for t in tables] == ["new", "new"]
    assert done == ["finished publishing interrupted run run1 (2 partitions)"]
    assert not list(journal.iterdir()) and not any((t / "_staging").exists() or (t / "_trash").exists() for t in tables)


# -- input rows = accepted + quarantined, whatever the usage extract holds ---------------------------

_cells = st.one_of(st.sampled_from(["", "0", "12", "-7", "1.5", "n/a", "5G", "premium", "VIP", "202610", "x" * 250]),
                   st.text(alphabet="ab,9", max_size=6))


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.sampled_from([LK, LK2, "", "short"]), st.lists(_cells, min_size=15, max_size=15)),
                     min_size=1, max_size=12))
def test_every_usage_row_is_accepted_or_quarantined_once(duckdb_engine, rows):
    lines = [USAGE_HEADER, *(",".join([link_key, *cells]) for link_key, cells in rows)]
    engine, d, spec = duckdb_engine, duckdb_engine.dialect, TABLES["telecom_usage"]
    engine.arrow("u_lines", pa.table({"value": lines, "bad_bytes": [False] * len(lines),
                                      "file_path": [f"/lake/landing/telecom_usage/dt={DT}/u.csv"] * len(lines),
                                      "line_no": list(range(1, len(lines) + 1)), "dt": [date(2026, 11, 1)] * len(lines)}))
    rank(engine, spec, ingest_sql.csv_rows(d, spec, "u_lines"), "u_ranked")
    accepted = engine.rows(f"SELECT count(*) AS n FROM ({ingest_sql.accepted_rows(d, spec, 'u_ranked')}) a")[0]["n"]
    quarantined = engine.rows(ingest_sql.quarantined_rows(d, spec, "u_ranked"))
    assert accepted + len(quarantined) == len(rows)
    assert not [q for q in quarantined if not q["rule"] or not q["reason"]]


@pytest.mark.parametrize("source", ["card", "telecom_usage"])  # streamed into the parse, and kept
def test_a_truncated_gzip_fails_ingest_naming_the_file(tmp_path, source):
    lines = [bills(CARD_ORG, f"T{i}", "1000.000") for i in range(2000)] if source == "card" else \
        [USAGE_HEADER] + [f"{LK},{i}" for i in range(20000)]
    whole = gzip.compress("".join(line + "\n" for line in lines).encode("utf-8"))
    path = deliver(tmp_path, source, [], name="part-0.jsonl.gz" if source == "card" else "part-0.csv.gz")
    path.write_bytes(whole[:len(whole) // 2])
    register(tmp_path, ("card", CARD_ORG))
    with pytest.raises(ingest.IngestFailed, match=rf"{source}: landing file .*part-0\.\w+\.gz cannot be read to its "
                                                  r"end \(Compressed file ended .*\); nothing of this run was published"):
        ingest.run(Settings(data_root=tmp_path))
    assert manifest_of(tmp_path)["status"] == "failed" and bronze(tmp_path, "card_bills") == []


def test_a_holder_whose_collections_all_fail_fails_the_gate(tmp_path, spark):
    failed = json.dumps({"link_key": LK, "key_version": 1, "org_code": CARD_ORG, "api": "card.bills",
                         "x_api_tran_id": "T{}", "collected_at": "20261101093015", "request": {},
                         "response": {"rsp_code": "40101", "rsp_msg": "인증 실패: 접근토큰 만료"}})
    deliver(tmp_path, "card", [failed.replace("T{}", f"T{i}") for i in range(5)])
    register(tmp_path, ("card", CARD_ORG))
    with pytest.raises(ingest.IngestFailed, match="card_lines dt=2026-11-01: 100.0% of 5 lines rejected or failed .*"
                                                  "top rules: failed_collection 5; e.g. rsp_code is not 00000"):
        ingest.run(Settings(data_root=tmp_path), spark)
