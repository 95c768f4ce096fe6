"""A subject's full trace: consent over time, rows held, the runs that used them, what was derived,
what was purged, and a plain verdict; neither the link key nor a pseudonym reaches the outputs."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pyspark.sql import functions as F

from cli import main
from jobs import consent, purge, subject_trace
from mydata.config import Settings
from mydata.keys import KeyStore, purpose_pseudonym
from mydata.manifest import latest_matching
from tests.on_spark import read_ledger, verify_ledger

KST = ZoneInfo("Asia/Seoul")


def test_validity_over_time_follows_the_events_per_purpose_and_source():
    at = lambda day: datetime(2026, 6, day, tzinfo=KST)  # noqa: E731
    events = [{"event_id": "g", "event_type": "grant", "event_time": at(1), "purpose": "marketing",
               "sources": ["bank", "card"], "end_date": datetime(2026, 6, 10).date()},
              {"event_id": "w", "event_type": "withdraw", "event_time": at(20), "purpose": "marketing",
               "sources": ["card"], "end_date": datetime(2026, 6, 20).date()}]
    periods = [(p["source"], p["state"], p["since"].day, p["until"] and p["until"].day, p["event_id"])
               for p in subject_trace.validity_timeline(events)]
    assert periods == [("bank", "valid", 1, 10, "g"), ("bank", "expired", 10, None, "g"),
                       ("card", "valid", 1, 10, "g"), ("card", "expired", 10, 20, "g"),
                       ("card", "withdrawn", 20, None, "w")]


def _no_identifiers(result: dict, link_key: str, pseudonym: str) -> None:
    for path in (result["report"], result["json"], result["manifest"]):
        text = Path(path).read_text(encoding="utf-8")
        assert link_key not in text and pseudonym not in text, path


@pytest.mark.slow
def test_a_subject_is_traced_used_withdrawn_and_purged(lake_copy, spark, deliver_withdrawal, capsys):
    settings, results = lake_copy
    lake, as_of = settings.lake, results["marketing"]["as_of"]
    secret = KeyStore.open(settings).purpose_secret("marketing")
    by_pseudonym = {purpose_pseudonym(secret, r.link_key): r.link_key
                    for r in read_ledger(spark, lake).select("link_key").distinct().collect()}
    pseudonym = spark.read.parquet(str(lake.silver_table("subjects", "marketing"))).orderBy("pseudonym").first()[0]
    link_key = by_pseudonym[pseudonym]

    used = subject_trace.run(settings.replace(as_of=as_of), link_key, ["marketing"])  # consent as fusion saw it
    assert used["in_derived_tables"] and used["why"] == "marketing: valid consent for bank, card, telecom"
    document = json.loads(Path(used["json"]).read_text(encoding="utf-8"))
    held = {(h["zone"], h["tbl"]): h["n"] for h in document["held"]}
    bronze = spark.read.parquet(str(lake.bronze_table("bank_transactions"))).where(F.col("link_key") == link_key)
    assert held[("bronze", "bank_transactions")] == bronze.count() > 0
    assert held[("bronze", "consent_events")] == len(document["consent"]["events"]) > 0
    fused = latest_matching(lake, "fuse", purpose="marketing")
    assert [r["run_id"] for r in document["fusion_runs"]] == [fused["run_id"]]
    assert {("silver", "subjects", f"as_of={as_of}", 1)} <= {(d["zone"], d["table"], d["partition"], d["rows"])
                                                             for d in document["derived"]}
    assert document["pseudonyms"] == [{"purpose": "marketing", "key_versions": [1]}]
    _no_identifiers(used, link_key, pseudonym)

    moment = datetime.fromisoformat(as_of).replace(tzinfo=KST) + timedelta(days=2)
    deliver_withdrawal(spark, settings, link_key, verify_ledger(spark, lake).head.hash, moment, ["card"])
    consent.run(settings, spark)
    # as the CLI runs it, with a link key that may start with '-'
    assert main(["--data-root", str(lake.root), "--purpose", "marketing", "subject", "trace", link_key]) == 0
    out = capsys.readouterr().out
    said = f"IN DERIVED TABLES: marketing: a purge is pending (consent withdrawn for card on {moment.date()})"
    assert out.startswith(said), out
    purge.run(settings, spark, moment=moment + timedelta(hours=1))
    purged = subject_trace.run(settings, link_key, ["marketing"])
    assert not purged["in_derived_tables"] and purged["why"].startswith("purged: marketing on ")
    assert purged["why"].endswith(f"(withdrew on {moment.date()})"), purged["why"]
    assert purged["purges"] == 1 and purged["fusion_runs"] == 1 and purged["derived"] == 0
    _no_identifiers(purged, link_key, pseudonym)
    assert "Subject trace" in Path(purged["report"]).read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_trace_on_spark_holds_what_the_trace_on_duckdb_holds(lake_copy, spark):
    """Once, the trace read bronze through a method only the embedded engine had: Spark failed."""
    settings, results = lake_copy
    lake, as_of = settings.lake, results["marketing"]["as_of"]
    secret = KeyStore.open(settings).purpose_secret("marketing")
    pseudonym = spark.read.parquet(str(lake.silver_table("subjects", "marketing"))).orderBy("pseudonym").first()[0]
    link_key = next(r.link_key for r in read_ledger(spark, lake).select("link_key").distinct().collect()
                    if purpose_pseudonym(secret, r.link_key) == pseudonym)
    traced = {}
    for engine in ("duckdb", "spark"):
        result = subject_trace.run(settings.replace(as_of=as_of, engine=engine), link_key, ["marketing"],
                                   spark if engine == "spark" else None)
        document = json.loads(Path(result["json"]).read_text(encoding="utf-8"))
        traced[engine] = (result["why"], sorted((h["zone"], h["tbl"], h["n"], str(h["first"]), str(h["last"]),
                                                 h["deliveries"]) for h in document["held"]),
                          [r["run_id"] for r in document["fusion_runs"]], document["derived"])
    assert traced["spark"] == traced["duckdb"]
    assert any(zone == "bronze" and n > 0 for zone, _, n, *_ in traced["spark"][1])


def test_a_subject_the_lake_never_saw_is_traced_as_holding_nothing(tmp_path, capsys):
    # a link key may start with '-' (1 in 64 do): it is taken as the key, not as an option
    assert main(["--data-root", str(tmp_path), "subject", "trace", "-" + "A" * 42]) == 0
    assert capsys.readouterr().out.startswith("the lake has never seen this link key: no consent event, no record, "
                                              "no derived row\n")
    traced = latest_matching(Settings(data_root=tmp_path).lake, "subject_trace")
    assert traced["outputs"]["held"] == traced["outputs"]["fusion_runs"] == traced["outputs"]["derived"] == 0
    front = (tmp_path / "reports" / "index.html").read_text(encoding="utf-8")  # in the compliance group
    assert "Subject traces (right of access)" in front and f'href="subjects/{traced["run_id"]}.html"' in front
    assert "in no derived table: in no derived table" not in front and "never seen this link key" in front
