"""Real data end to end: the PKDD'99 Czech bank records, converted to the landing contract and
ingested. Every one of the 49,102 transactions must be accepted or quarantined with a reason."""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs import ingest
from mydata.config import PROJECT_ROOT, Settings
from mydata.devtools.synth.generator import subject_ci
from tests.on_spark import read_quarantine

BERKA = PROJECT_ROOT.parent / "shared" / "data" / "berka_pkdd99"
CONVERTER = PROJECT_ROOT / "examples" / "berka_to_landing.py"


def raw_transactions() -> list[dict[str, str]]:
    with open(BERKA / "trans.first49102rows.asc", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


@pytest.fixture(scope="module")
def berka_lake(tmp_path_factory, spark):
    root = tmp_path_factory.mktemp("berka") / "lake"
    done = subprocess.run([sys.executable, str(CONVERTER), "--berka", str(BERKA), "--data-root", str(root),
                           "--seed", "5"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    settings = Settings(data_root=root)
    result = ingest.run(settings, spark)
    return settings, json.loads(Path(result["manifest"]).read_text(encoding="utf-8"))


@pytest.mark.slow
def test_every_transaction_is_accepted_or_quarantined_with_a_reason(berka_lake, spark):
    settings, manifest = berka_lake
    raw = raw_transactions()
    assert len(raw) == 49_102
    undocumented = [r for r in raw if r["type"] not in ("PRIJEM", "VYDAJ")]
    assert {r["type"] for r in undocumented} == {"VYBER"}

    counts = manifest["outputs"]["tables"]["bank_transactions"]
    accepted = sum(v["accepted"] for v in counts.values())
    quarantined = sum(v["quarantined"] for v in counts.values())
    assert (accepted, quarantined) == (len(raw) - len(undocumented), len(undocumented))
    assert manifest["quarantined"]["bank_transactions"] == {"trans_type.in_set": len(undocumented)}
    assert all(e["balanced"] for by_dt in manifest["outputs"]["reconciliation"].values() for e in by_dt.values())

    bronze = spark.read.parquet(str(settings.lake.bronze_table("bank_transactions")))
    held = read_quarantine(spark, settings.lake).where(F.col("table") == "bank_transactions")
    reasons = {r.reason for r in held.select("reason").distinct().collect()}
    assert reasons == {"trans_type=VYBER is not a known code"}
    # by id: each transaction is in exactly one place
    kept = {r.trans_no for r in bronze.select("trans_no").collect()}
    parked = {json.loads(r.record)["trans_no"] for r in held.select("record").collect()}
    assert not kept & parked
    assert kept | parked == {r["trans_id"] for r in raw}


@pytest.mark.slow
def test_amounts_stay_in_czk_and_overdrafts_are_kept(berka_lake, spark):
    settings, _ = berka_lake
    raw = [r for r in raw_transactions() if r["type"] in ("PRIJEM", "VYDAJ")]
    bronze = spark.read.parquet(str(settings.lake.bronze_table("bank_transactions")))
    totals = bronze.agg(F.sum("trans_amt").alias("amount"), F.sum(F.when(F.col("balance_amt") < 0, 1)).alias("overdrawn"),
                        F.collect_set("currency_code").alias("currencies"),
                        F.sum(F.when(F.col("trans_type") == "01", 1)).alias("credits")).first()
    assert totals.currencies == ["CZK"]
    assert Decimal(totals.amount) == sum(Decimal(r["amount"]) for r in raw)
    assert totals.overdrawn == sum(1 for r in raw if Decimal(r["balance"]) < 0) > 0
    assert totals.credits == sum(1 for r in raw if r["type"] == "PRIJEM")


@pytest.mark.slow
def test_clients_become_customers_by_link_key_and_no_ci_reaches_the_lake(berka_lake, spark):
    settings, manifest = berka_lake
    customers = spark.read.parquet(str(settings.lake.bronze_table("customers")))
    deliveries = len(manifest["outputs"]["tables"]["customers"])
    assert customers.count() == 5_369 * deliveries
    assert manifest["quarantined"].get("customers") is None
    women = customers.where(F.col("gender") == "F").select("link_key").distinct().count()
    with open(BERKA / "client.asc", encoding="utf-8", newline="") as handle:
        clients = list(csv.DictReader(handle, delimiter=";"))
    assert women == sum(1 for c in clients if int(c["birth_number"][2:4]) > 50)
    cis = {subject_ci(5, int(c["client_id"])) for c in clients}
    for path in settings.lake.root.rglob("*"):
        if path.is_file() and path.suffix in (".jsonl", ".csv", ".json"):
            found = set(re.findall(r"[A-Za-z0-9+/]{86}==", path.read_text(encoding="utf-8")))
            assert not found & cis, path
