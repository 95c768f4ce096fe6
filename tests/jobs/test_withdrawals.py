"""Withdrawals honoured, measured: hours to purge, who waits, and no use after a withdrawal."""
from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from jobs import consent, consent_review, fuse, purge, status, withdrawals
from mydata.engines import open_engine
from mydata.keys import KeyStore, purpose_pseudonym
from mydata.manifest import latest_matching
from tests.on_spark import read_ledger, verify_ledger

KST = ZoneInfo("Asia/Seoul")


def test_the_sla_is_hours_from_withdrawal_to_the_last_purge_that_removed_the_subject():
    audit = [{"purpose": "marketing", "at": "2026-11-02T01:00:00+09:00",
              "withdrawn_at": {"p1": "2026-11-01T00:00:00+09:00", "p2": "2026-11-01T23:00:00+09:00"}},
             {"purpose": "analytics", "at": "2026-11-09T00:00:00+09:00", "withdrawn_at": {"p3": "2026-11-01T00:00:00+09:00"}},
             {"purpose": "marketing", "at": "2026-11-03T00:00:00+09:00",  # p1 was found again: the later purge counts
              "withdrawn_at": {"p1": "2026-11-01T00:00:00+09:00", "p4": "2026-11-02T20:00:00+09:00"}}]
    assert withdrawals.purge_delays(audit, "marketing") == [2.0, 4.0, 48.0]
    found = withdrawals.sla(audit, "marketing", ["2026-11-03T06:00:00+09:00"],
                            datetime(2026, 11, 3, 12, tzinfo=KST))
    assert found == {"purged": 3, "median_hours": 4.0, "p95_hours": 48.0, "max_hours": 48.0,
                     "pending": 1, "longest_pending_hours": 6.0}


@pytest.mark.slow
def test_purges_are_timed_and_no_fusion_run_uses_a_withdrawn_subject(lake_copy, spark, deliver_withdrawal):
    settings, results = lake_copy
    lake, as_of = settings.lake, results["marketing"]["as_of"]
    keystore = KeyStore.open(settings)
    secret = keystore.purpose_secret("marketing")
    by_pseudonym = {purpose_pseudonym(secret, r.link_key): r.link_key
                    for r in read_ledger(spark, lake).select("link_key").distinct().collect()}
    pseudonym = spark.read.parquet(str(lake.silver_table("subjects", "marketing"))).orderBy("pseudonym").first()[0]
    moment = datetime.fromisoformat(as_of).replace(tzinfo=KST) + timedelta(days=2)
    deliver_withdrawal(spark, settings, by_pseudonym[pseudonym], verify_ledger(spark, lake).head.hash,
                       moment, ["bank"])
    consent.run(settings, spark)
    waiting = status.run(settings, moment=moment + timedelta(hours=5)).withdrawals
    assert waiting["sla"]["pending"] == 1 and waiting["sla"]["longest_pending_hours"] == 5.0

    purge.run(settings, spark, moment=moment + timedelta(hours=6))
    found = status.run(settings, moment=moment + timedelta(hours=7))
    assert found.withdrawals["sla"] == {"purged": 1, "median_hours": 6.0, "p95_hours": 6.0, "max_hours": 6.0,
                                        "pending": 0, "longest_pending_hours": None}
    assert found.withdrawals["used_after_withdrawal"] == [] and found.healthy, found.attention

    later = (datetime.fromisoformat(as_of) + timedelta(days=5)).date()
    fuse.run(settings.replace(as_of=later), spark)  # a run after the withdrawal leaves the subject out
    engine = open_engine(settings)
    try:
        assert withdrawals.uses_after_withdrawal(engine, lake, keystore, "marketing") == []
        # a record of use that says otherwise (a bug, or a rewritten lake) is named
        run = latest_matching(lake, "fuse", purpose="marketing")
        members = next((lake.fusion_members("marketing") / f"run={run['run_id']}").rglob("*.parquet"))
        table = pq.read_table(members)
        pq.write_table(pa.concat_tables([table, pa.table({"pseudonym": [pseudonym]}).cast(table.schema)]), members)
        found = withdrawals.uses_after_withdrawal(engine, lake, keystore, "marketing")
    finally:
        engine.close()
    assert [(f["run_id"], f["event_id"], f["in_snapshot"]) for f in found] == [(run["run_id"], "c-withdraw-1", True)]
    attention = status.run(settings, moment=moment + timedelta(days=4)).attention
    assert any(line.startswith(f"fusion run {run['run_id']} (as of {later}) used a subject who withdrew at ")
               for line in attention), attention
    assert spark.read.parquet(str(lake.silver_table("subjects", "marketing"))).where(
        F.col("pseudonym") == pseudonym).count() == 0
    reviewed = consent_review.run(settings.replace(as_of=later))  # the reviewer's page says it too
    page = Path(reviewed["report"]).read_text(encoding="utf-8")
    assert "Withdrawals honoured" in page and f"fusion run {run['run_id']} (as of {later}) used a subject" in page
    assert reviewed["withdrawals"]["marketing"]["uses_after_withdrawal"] == 1
    # a run that kept no record of use (fused before records were kept) is said to be unchecked
    assert withdrawals.unrecorded_runs(lake, "marketing") == []
    shutil.rmtree(lake.fusion_members("marketing") / f"run={run['run_id']}")
    assert withdrawals.unrecorded_runs(lake, "marketing") == [run["run_id"]]
    assert status.run(settings, moment=moment + timedelta(days=4)).withdrawals["unrecorded_fusion_runs"] == 1
