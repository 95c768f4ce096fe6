"""The engines agree past ingest: consent, fusion, features, the release gate, scoring and the purge
write the same silver and gold on DuckDB and on Spark, cell for cell, and their manifests count the
same. Each engine reads the other's lake: the bronze both start from was written by DuckDB, and the
ledger and silver Spark fuses and scores were partly written by DuckDB in the cross-engine test.
"""
from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest

from jobs import consent, features, fuse, purge, release, score
from models import registry
from models.lifecycle import train_and_register
from models.pipeline import ModelSpec
from mydata.config import Settings
from mydata.keys import KeyStore, purpose_pseudonym
from tests.parity.test_ingest_parity import differences

DOWNSTREAM = ("silver", "gold")
REL_TOL = 1e-9  # sums of doubles depend on their order, which differs between engines
KST = ZoneInfo("Asia/Seoul")


def counts(result: dict, *keys: str) -> dict:
    """What a stage's manifest counted: the outputs named, the run's own paths left out."""
    outputs = json.loads(Path(result["manifest"]).read_text(encoding="utf-8"))["outputs"]
    return {k: outputs[k] for k in keys}


def downstream(settings: Settings, spark, deliver_withdrawal, model_from: Path | None = None) -> dict[str, dict]:
    """Consent, fusion, features, release, scoring (with the model trained on ``model_from``'s
    snapshot, or trained here) and the purge, on ``settings.engine``: what each manifest counted."""
    consent.run(settings, spark)
    counted = {"fuse": counts(fuse.run(settings, spark), "linkage", "source_missing", "tables", "key_versions"),
               "features": counts(features.run(settings, spark), "subjects", "features")}
    counted["privacy"] = counts(release.run(settings, spark), "levels", "published", "suppressed", "after_sizes",
                                "l_diversity", "smallest_group", "feature_health", "blank_features")
    if model_from is None:
        version, _ = train_and_register(settings.lake, settings.purpose, settings.as_of, ModelSpec(ks=(3, 4)))
        registry.promote(settings.lake, settings.purpose, version.version)
    else:
        shutil.copytree(model_from / "models", settings.lake.models)
    counted["score"] = counts(score.run(settings, spark), "rows", "sizes")
    # the first fused subject (by pseudonym) withdraws from card two days later; the purge removes it
    secret = KeyStore.open(settings).purpose_secret(settings.purpose)
    fused = pq.read_table(settings.lake.silver_table("subjects", settings.purpose)).column("pseudonym").to_pylist()
    ledger = pq.read_table(settings.lake.ledger).to_pylist()
    link_key = next(lk for p in sorted(fused) for lk in {e["link_key"] for e in ledger}
                    if purpose_pseudonym(secret, lk) == p)
    moment = datetime.combine(settings.as_of, datetime.min.time(), KST) + timedelta(days=2, hours=9)
    head = max(ledger, key=lambda e: e["seq"])["hash"]
    deliver_withdrawal(spark, settings, link_key, head, moment, ["card"])
    consent.run(settings, spark)
    counted["purge"] = counts(purge.run(settings, spark, moment=moment + timedelta(hours=1)),
                              "rows_removed", "rows_removed_total", "pseudonyms_purged")
    return counted


@pytest.mark.slow
def test_every_stage_after_ingest_is_the_same_on_both_engines(ingested, tmp_path, spark, deliver_withdrawal):
    settings, summary, _, _ = ingested
    as_of = date.fromisoformat(summary.deliveries[-1])
    lakes = {}
    for engine in ("duckdb", "spark"):
        shutil.copytree(settings.data_root, tmp_path / engine)
        lakes[engine] = settings.replace(data_root=tmp_path / engine, engine=engine, purpose="marketing", as_of=as_of)
    on_duckdb = downstream(lakes["duckdb"], spark, deliver_withdrawal)
    on_spark = downstream(lakes["spark"], spark, deliver_withdrawal, model_from=tmp_path / "duckdb")
    assert on_duckdb == on_spark
    # the Spark session outlives the jobs: each dropped what it registered and cached
    assert not {t.name for t in spark.catalog.listTables()} & {"fused", "linked", "consent_states", "candidates",
                                                               "published", "segments", "purged_pseudonyms"}
    assert on_duckdb["purge"]["pseudonyms_purged"] == 1 and on_duckdb["purge"]["rows_removed_total"] > 1
    assert differences(tmp_path / "duckdb", tmp_path / "spark", DOWNSTREAM, rel_tol=REL_TOL) == []
    ledgers = [sorted((tmp_path / e / "consent" / "ledger").rglob("*.parquet")) for e in ("duckdb", "spark")]
    assert ledgers[0] and all(ledgers)


def test_the_comparison_holds_doubles_to_the_tolerance_and_no_further(tmp_path):
    import pyarrow as pa

    def lake(name: str, value: float) -> Path:
        folder = tmp_path / name / "gold" / "features" / "purpose=marketing" / "as_of=2026-08-01"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"pseudonym": ["P1", "P2"], "x": [1 / 3, value]}), folder / "part-0.parquet")
        return tmp_path / name

    base, near, far = lake("base", 2.0), lake("near", 2.0 * (1 + 1e-12)), lake("far", 2.0 * (1 + 1e-6))
    assert differences(base, near, DOWNSTREAM, rel_tol=REL_TOL) == []
    assert differences(base, near, DOWNSTREAM)  # exactly, they differ
    (problem,) = differences(base, far, DOWNSTREAM, rel_tol=REL_TOL)
    assert problem.startswith(f"gold/features: x differs: 2.0 in the first lake, {2.0 * (1 + 1e-6)!r} in the second")


@pytest.mark.slow
def test_the_engines_agree_on_deliveries_shaped_like_real_holders(make_landing, tmp_path, spark):
    """Collections on the delivery date, weekly refreshes, an operator without payments, late card
    records and negative bills: fusion and features agree on both engines, cell for cell (the main
    parity test above holds the release and its feature health to the same)."""
    from jobs import ingest
    from mydata.devtools.synth.generator import REAL_SHAPES

    settings, summary = make_landing(tmp_path / "landing", subjects=120, months=2, seed=9, defect_rate=0.0,
                                     key_mismatch_rate=0.0, workers=1, **REAL_SHAPES)
    ingest.run(settings)
    as_of = date.fromisoformat(summary.deliveries[-1])
    counted = {}
    for engine in ("duckdb", "spark"):
        shutil.copytree(settings.data_root, tmp_path / engine)
        lake = settings.replace(data_root=tmp_path / engine, engine=engine, purpose="marketing", as_of=as_of)
        consent.run(lake, spark)
        counted[engine] = {"fuse": counts(fuse.run(lake, spark), "linkage", "tables"),
                           "features": counts(features.run(lake, spark), "subjects")}
    assert counted["duckdb"] == counted["spark"]
    candidate = pq.read_table(tmp_path / "duckdb" / "silver" / "features").to_pylist()
    assert all(r["bank_accounts"] for r in candidate)  # state as of the delivery date, for everyone
    assert 0 < sum(r["telecom_paid_6m"] is None for r in candidate) < len(candidate)  # the silent operator's
    assert differences(tmp_path / "duckdb", tmp_path / "spark", DOWNSTREAM, rel_tol=REL_TOL) == []
