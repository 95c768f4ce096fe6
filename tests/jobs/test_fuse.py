"""Consent-based fusion: who is fused and why not, what silver holds, and what it never holds."""
from __future__ import annotations

import json
from datetime import date

import pyarrow.parquet as pq
import pytest

from jobs import fuse
from mydata import storage
from mydata.devtools.synth import subject_ci
from mydata.keys import KeyStore, link_key, purpose_pseudonym
from schemas.bronze import TABLES
from schemas.dialects import DUCKDB
from schemas.silver import silver_columns
from tests.on_spark import verify_ledger
from tests.tables import rows_table

STATES = "link_key string, key_version int, source string, state string, end_date date"
IDENTITY = "link_key string, key_version int"


def test_linkage_gives_each_subject_one_outcome(duckdb_engine):
    until = date(2027, 1, 1)
    rows_table(duckdb_engine, "states", STATES, [
        *[("fused", 1, s, "valid", until) for s in ("bank", "card", "telecom")],
        *[("no-telecom-data", 1, s, "valid", until) for s in ("bank", "card", "telecom")],
        ("withdrew-card", 1, "bank", "valid", until), ("withdrew-card", 1, "card", "withdrawn", until),
        ("withdrew-card", 1, "telecom", "valid", until),
        *[("expired", 1, s, "expired", until) for s in ("bank", "card", "telecom")],
        ("bank-only", 1, "bank", "valid", until),
    ])
    data = [(k, 1, s) for k in ("fused", "withdrew-card", "expired", "bank-only", "never-asked")
            for s in ("bank", "card", "telecom")]
    rows_table(duckdb_engine, "presence", f"{IDENTITY}, source string",
               data + [("no-telecom-data", 1, "bank"), ("no-telecom-data", 1, "card"), ("rekeyed", 2, "telecom")])
    rows_table(duckdb_engine, "customers", IDENTITY, [("customer-only", 1)])
    sql = fuse.linkage_sql(DUCKDB, "states", "presence", "customers", [1])
    got = {(r["link_key"], r["outcome"], r["missing"]) for r in duckdb_engine.rows(sql)}
    assert got == {("fused", "fused", ""), ("no-telecom-data", "source_missing", "telecom"),
                   ("withdrew-card", "withdrawn", ""), ("expired", "expired", ""),
                   ("bank-only", "no_consent", ""), ("never-asked", "no_consent", ""),
                   ("rekeyed", "key_version_mismatch", "bank,card"),
                   ("customer-only", "no_consent", "bank,card,telecom")}


def test_silver_rows_are_re_keyed_and_lose_what_the_purpose_may_not_use(duckdb_engine):
    spec = TABLES["bank_transactions"]
    columns = silver_columns(spec, "marketing")
    assert "trans_memo" not in columns and "account_num" not in columns and "trans_no" not in columns
    assert "trans_memo" in silver_columns(spec, "credit_scoring")
    rows_table(duckdb_engine, "records", f"{IDENTITY}, account_num string, trans_amt int, trans_memo string, dt date",
               [("K1", 1, "A-1", 9, "급여", date(2026, 11, 1)), ("K2", 1, "A-2", 7, "x", date(2026, 11, 1)),
                ("K1", 1, "A-1", 5, "later", date(2026, 11, 2))])
    rows_table(duckdb_engine, "fused", f"{IDENTITY}, pseudonym string", [("K1", 1, "P1")])
    rows = duckdb_engine.rows(fuse.silver_sql(DUCKDB, "records", "fused", ["trans_amt"], date(2026, 11, 1)))
    assert rows == [{"pseudonym": "P1", "trans_amt": 9, "delivered": date(2026, 11, 1), "as_of": date(2026, 11, 1)}]


# -- end to end over generated data ------------------------------------------------------------------

def landing_consent(settings) -> list[dict]:
    return [json.loads(line) for path in sorted(settings.lake.landing.glob("consent/dt=*/*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines()]


def valid_everywhere(events: list[dict], purpose: str, moment: str) -> set[str]:
    """The rule, independently: per link key and source, the latest event at or before the moment."""
    latest: dict[tuple[str, str], dict] = {}
    for e in events:  # chain order
        if e["purpose"] == purpose and e["event_time"] <= moment:
            for s in e["sources"]:
                if (e["link_key"], s) not in latest or e["event_time"] >= latest[(e["link_key"], s)]["event_time"]:
                    latest[(e["link_key"], s)] = e
    ok = {k for k, e in latest.items() if e["event_type"] != "withdraw" and moment[:8] < e["end_date"]}
    return {lk for lk in {k for k, _ in ok} if all((lk, s) in ok for s in ("bank", "card", "telecom"))}


def silver_strings(settings) -> set[str]:
    """Every string value in every silver and gold Parquet file."""
    values: set[str] = set()
    for zone in (settings.lake.silver, settings.lake.gold):
        for path in zone.rglob("*.parquet"):
            table = pq.read_table(path)
            for column in table.column_names:
                if str(table.schema.field(column).type) in ("string", "large_string"):
                    values.update(v for v in table.column(column).to_pylist() if v is not None)
    return values


@pytest.mark.slow
def test_fusion_keeps_only_subjects_consented_for_every_source(fused, spark):
    settings, results = fused
    as_of = date.fromisoformat(results["marketing"]["as_of"])
    keystore = KeyStore.open(settings)
    allowed = valid_everywhere(landing_consent(settings), "marketing", as_of.strftime("%Y%m%d") + "000000")
    allowed_pseudonyms = {purpose_pseudonym(keystore.purpose_secret("marketing"), lk) for lk in allowed}
    counted = json.loads(open(results["marketing"]["manifest"]).read())["outputs"]["tables"]
    for table in [*fuse.fused_tables(), "subjects"]:
        folder = settings.lake.silver_table(table, "marketing") / f"as_of={as_of}"
        silver = spark.read.parquet(str(folder))
        seen = {r.pseudonym for r in silver.select("pseudonym").distinct().collect()}
        assert seen and seen <= allowed_pseudonyms, table
        # the counts the write observed are the rows it wrote, and the bronze rows up to the as-of date
        bronze = spark.read.parquet(str(settings.lake.bronze_table(table if table != "subjects" else "customers")))
        assert counted[table]["silver_rows"] == silver.count(), table
        assert counted[table]["bronze_rows"] == bronze.where(f"dt <= DATE'{as_of}'").count(), table
    linkage = results["marketing"]["linkage"]
    subjects = spark.read.parquet(str(settings.lake.silver_table("subjects", "marketing")))
    assert subjects.count() == linkage["fused"] > 0
    assert linkage["withdrawn"] > 0 and linkage["expired"] + linkage["no_consent"] > 0
    # the generator re-keyed 2% of subjects' telecom records with link key version 2
    truth = (settings.lake.truth / "subjects.csv").read_text().splitlines()[1:]
    rekeyed = sum(1 for line in truth if line.endswith(",2") and line.split(",")[4] == "1")
    assert linkage["key_version_mismatch"] == rekeyed > 0


@pytest.mark.slow
def test_pseudonyms_differ_between_purposes(fused, spark):
    settings, results = fused
    marketing, analytics = (
        {r.pseudonym for r in spark.read.parquet(str(settings.lake.silver_table("subjects", p)))
         .select("pseudonym").collect()} for p in ("marketing", "analytics"))
    assert marketing and analytics and not marketing & analytics
    keystore = KeyStore.open(settings)
    moment = results["marketing"]["as_of"].replace("-", "") + "000000"
    both = valid_everywhere(landing_consent(settings), "marketing", moment) & \
        valid_everywhere(landing_consent(settings), "analytics", moment)
    assert both
    for lk in sorted(both)[:20]:
        assert purpose_pseudonym(keystore.purpose_secret("marketing"), lk) != \
            purpose_pseudonym(keystore.purpose_secret("analytics"), lk)


@pytest.mark.slow
def test_no_link_key_ci_or_secret_leaves_bronze(fused, spark):
    settings, results = fused
    link_keys = {r.link_key for r in storage.read_table(spark, settings.lake.bronze_table("consent_events"))
                 .select("link_key").distinct().collect()}
    link_keys |= {r.link_key for r in storage.read_table(spark, settings.lake.bronze_table("customers"))
                  .select("link_key").distinct().collect()}
    cis = {subject_ci(11, i) for i in range(300)}  # small_landing's seed and subjects
    assert not silver_strings(settings) & (link_keys | cis)
    keystore = json.loads((settings.lake.keys / "keystore.json").read_text())
    secrets = [v for kind in ("link", "purpose") for versions in keystore[kind].values()
               for v in (versions.values() if isinstance(versions, dict) else [versions])]
    texts = [p.read_text(encoding="utf-8") for zone in (settings.lake.reports, settings.lake.manifests)
             for p in zone.rglob("*") if p.is_file()]
    assert texts and secrets
    secret = KeyStore.open(settings).link_secret(1)
    assert sum(link_key(secret, ci) in link_keys for ci in cis) > 250  # these are the subjects' CIs
    for text in texts:
        assert not any(lk in text for lk in link_keys) and not any(ci in text for ci in cis)
        assert not any(secret in text for secret in secrets)
    report = (settings.lake.reports / "fusion").glob("*.html")
    assert any("Subjects by outcome" in p.read_text() for p in report)


@pytest.mark.slow
def test_a_fusion_run_names_the_consent_snapshot_it_used(fused, spark):
    settings, results = fused
    manifest = json.loads(open(results["marketing"]["manifest"]).read())
    snapshot = manifest["inputs"]["consent_snapshot"]
    head = verify_ledger(spark, settings.lake).head
    assert snapshot["ledger_head"] == head.as_dict()
    assert snapshot["id"] == fuse.snapshot_id("marketing", date.fromisoformat(results["marketing"]["as_of"]), head)


def test_fusing_nobody_fails_with_the_linkage_and_features_says_so(fused, spark, copy_landing):
    from jobs import features

    settings = copy_landing(fused[0])
    early = settings.replace(purpose="marketing", as_of=date(2026, 1, 1))  # before any consent was given
    with pytest.raises(fuse.FusedNobody) as nobody:
        fuse.run(early, spark)
    assert "fused no subject of the" in str(nobody.value) and "no consent" in str(nobody.value)
    assert "silver was left as it was" in str(nobody.value)
    manifest = json.loads(max((settings.lake.manifests / "fuse").glob("*.json"), key=lambda p: p.stat().st_mtime)
                          .read_text())
    assert manifest["status"] == "failed" and manifest["outputs"]["subjects_fused"] == 0
    assert not (settings.lake.silver / "subjects" / "purpose=marketing" / "as_of=2026-01-01").exists()
    with pytest.raises(FileNotFoundError) as ran_and_failed:
        features.run(early, spark)
    assert f"the last fuse run ({manifest['run_id']}) failed: fused no subject" in str(ran_and_failed.value)
    with pytest.raises(FileNotFoundError, match="fuse has not run for it; run `mydata fuse --as-of 2026-02-01`"):
        features.run(early.replace(as_of=date(2026, 2, 1)), spark)
