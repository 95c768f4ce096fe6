"""Withdrawal purge: a subject who withdraws leaves every derived table of the purpose in one run."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pyspark.sql import functions as F

from jobs import consent, purge, status
from mydata import storage
from mydata.engines import open_engine
from mydata.keys import KeyStore, purpose_pseudonym
from tests.on_spark import read_ledger, verify_ledger

KST = ZoneInfo("Asia/Seoul")
@pytest.mark.slow
def test_a_withdrawn_subject_is_purged_from_every_derived_table(lake_copy, spark, deliver_withdrawal):
    settings, results = lake_copy
    lake = settings.lake
    as_of = results["marketing"]["as_of"]
    subjects = spark.read.parquet(str(lake.silver_table("subjects", "marketing")))
    transactions = spark.read.parquet(str(lake.silver_table("bank_transactions", "marketing")))
    # a fused subject with transactions; its link key found the way a reviewer would: from the ledger
    keystore = KeyStore.open(settings)
    secret = keystore.purpose_secret("marketing")
    by_pseudonym = {purpose_pseudonym(secret, r.link_key): r.link_key for r in
                    read_ledger(spark, lake).select("link_key").distinct().collect()}
    target = transactions.groupBy("pseudonym").count().orderBy(F.desc("count"), "pseudonym").first()
    pseudonym, link_key = target["pseudonym"], by_pseudonym[target["pseudonym"]]
    # a later stage's table (segment assignments) is purged as it appears, without being listed
    gold = lake.gold / "segments" / "purpose=marketing"
    storage.replace_partitions(subjects.select("pseudonym", F.lit(3).alias("segment"), "as_of"),
                               gold, [subjects.first()["as_of"]], "test-gold", key="as_of")
    before = {t: spark.read.parquet(str(p)).count() for t, p in purge.derived_partitions(lake, "marketing")}

    head = verify_ledger(spark, lake).head
    moment = datetime.fromisoformat(as_of).replace(tzinfo=KST) + timedelta(days=2, hours=9)
    deliver_withdrawal(spark, settings, link_key, head.hash, moment, ["card"])  # one source is enough
    consent.run(settings, spark)
    pending = status.run(settings, moment=moment + timedelta(hours=1))  # `mydata status` sees it waiting
    assert pending.withdrawals["not_purged"] == 1 and "gold/segments" in pending.withdrawals["tables"]
    assert pending.attention == [f"1 withdrawn subject(s) still in {', '.join(pending.withdrawals['tables'])} "
                                 f"({pending.withdrawals['rows']} rows): run `mydata --purpose marketing purge`"]
    result = purge.run(settings, spark, moment=moment + timedelta(hours=1))

    assert result["pseudonyms_purged"] == 1
    after = {t: spark.read.parquet(str(p)).count() for t, p in purge.derived_partitions(lake, "marketing")}
    removed = {t: before[t] - after[t] for t in before}
    assert removed["silver/subjects"] == 1 and removed["gold/segments"] == 1
    assert removed["silver/bank_transactions"] == target["count"]
    assert sum(removed.values()) == result["rows_removed_total"]
    for table, partition in purge.derived_partitions(lake, "marketing"):
        assert spark.read.parquet(str(partition)).where(F.col("pseudonym") == pseudonym).count() == 0, table
    # the audit names the pseudonym and the counts, never the link key
    audit = purge.read_audit(lake)[-1]
    assert audit["pseudonyms"] == [pseudonym] and sum(audit["rows_removed"].values()) == sum(removed.values())
    assert link_key not in lake.purge_audit.read_text() and link_key not in open(result["manifest"]).read()
    # other purposes keep their own, differently keyed rows: the withdrawal was for marketing only
    assert spark.read.parquet(str(lake.silver_table("subjects", "analytics"))).count() > 0
    assert status.run(settings, moment=moment + timedelta(hours=1)).withdrawals["not_purged"] == 0
    assert pending.withdrawals["rows"] == sum(removed.values())

    again = purge.run(settings, spark, moment=moment + timedelta(hours=2))
    assert again["rows_removed_total"] == 0 and len(purge.read_audit(lake)) == 1


@pytest.mark.slow
def test_consent_review_shows_runs_purges_and_a_subject(lake_copy, spark):
    from jobs import consent_review

    settings, results = lake_copy
    as_of = datetime.fromisoformat(results["marketing"]["as_of"]).date()
    engine = open_engine(settings)
    result = consent_review.write_report(settings, engine, as_of)
    text = open(result["report"], encoding="utf-8").read()
    assert result["ledger_ok"] and result["fusion_runs"] == 2
    assert sum(result["valid"]["marketing"].values()) > 0
    for heading in ("Consent by purpose and source", "Grants and withdrawals over time", "Consents ending soon",
                    "Fusion runs and the consent they relied on", "Purges"):
        assert heading in text
    snapshot = json.loads(open(results["marketing"]["manifest"]).read())["inputs"]["consent_snapshot"]["id"]
    assert snapshot in text
    link_keys = {r.link_key for r in read_ledger(spark, settings.lake).select("link_key").distinct().collect()}
    assert not any(lk in text for lk in link_keys)

    one = sorted(link_keys)[0]
    status = consent_review.subject_status(engine, settings.lake, one, as_of)
    engine.close()
    assert status.events and [e["seq"] for e in status.events] == sorted(e["seq"] for e in status.events)
    assert {s["state"] for s in status.states} <= {"valid", "withdrawn", "expired"}
