"""The release gate: generalise, suppress, publish only at k; otherwise publish nothing."""
from __future__ import annotations

import json
import shutil

import pytest
from pyspark.sql import functions as F

from features.definitions import FEATURES
from features.release import LEVELS, RELEASED_QUASI_IDENTIFIERS, Level
from jobs import features, privacy
from models.snapshots import feature_dtypes, load_snapshot

SCHEMA = "pseudonym string, age int, gender string, region_code string, bank_inflow_3m_avg double"


def test_generalising_replaces_raw_quasi_identifiers(spark):
    frame = spark.createDataFrame([("P1", 34, "F", "26", 1.0), ("P2", None, None, "99", 2.0)], SCHEMA)
    rows = {r.pseudonym: r for r in privacy.generalise(frame, Level(10, "area", True)).collect()}
    assert (rows["P1"].age_band, rows["P1"].gender, rows["P1"].region) == ("30-39", "F", "yeongnam")
    assert (rows["P2"].age_band, rows["P2"].gender, rows["P2"].region) == ("*", "*", "*")
    assert "age" not in privacy.generalise(frame, LEVELS[0]).columns
    widest = privacy.generalise(frame, Level(20, "none", False)).collect()
    assert {(r.age_band, r.gender, r.region) for r in widest} == {("20-39", "*", "*"), ("*", "*", "*")}


def test_the_gate_counts_small_groups_and_suppresses_them(spark):
    # six women of 30-34 in Seoul, two men of 36 and 41 in Busan
    rows = [(f"W{i}", 31 + i % 3, "F", "11", float(i)) for i in range(6)] + \
           [("M1", 36, "M", "26", 1.0), ("M2", 41, "M", "26", 2.0)]
    frame = spark.createDataFrame(rows, SCHEMA)
    level = LEVELS[0]
    outcome = privacy.assess(privacy.generalise(frame, level), level, k=5)
    assert (outcome.groups, outcome.small_groups, outcome.suppressed, outcome.subjects) == (3, 2, 2, 8)
    assert outcome.sizes == {"1": 2, "5-9": 1}
    kept = privacy.suppress(privacy.generalise(frame, level), 5)
    assert sorted(r.pseudonym for r in kept.collect()) == [f"W{i}" for i in range(6)]
    diversity = privacy.l_diversity(kept, "bank_inflow_3m_avg", [1.5, 3.5])
    assert diversity["min_l"] == 3 and diversity["groups_below_2"] == 0


@pytest.fixture
def candidate(fused, spark, tmp_path):
    settings, results = fused
    shutil.copytree(settings.data_root, tmp_path / "lake")
    settings = settings.replace(data_root=tmp_path / "lake", purpose="marketing", as_of=results["marketing"]["as_of"])
    features.run(settings, spark)
    return settings


@pytest.mark.slow
def test_a_release_meets_k_and_loads_in_one_call(candidate, spark):
    result = privacy.run(candidate, spark)
    published = spark.read.parquet(result["snapshot"])
    sizes = published.groupBy(*RELEASED_QUASI_IDENTIFIERS).count()
    assert sizes.agg(F.min("count")).first()[0] >= 5
    assert not {"age", "region_code", "birth_year"} & set(published.columns)
    manifest = json.loads(open(result["manifest"]).read())
    assert manifest["outputs"]["suppressed_share"] <= 0.05
    assert result["published"] + result["suppressed"] == manifest["inputs"]["subjects"]
    report = open(result["report"], encoding="utf-8").read()
    assert "PUBLISHED" in report and "l-diversity" in report and result["level"] in report
    catalog = open(result["catalog"], encoding="utf-8").read()
    assert all(f.name in catalog for f in FEATURES)
    frame = load_snapshot("marketing", data_root=candidate.data_root)
    assert len(frame) == result["published"]
    assert {c: str(t) for c, t in frame.dtypes.items()} == feature_dtypes()


@pytest.mark.slow
def test_a_release_that_cannot_reach_k_publishes_nothing(candidate, spark):
    with pytest.raises(privacy.ReleaseBlocked, match="nothing published"):
        privacy.run(candidate.replace(k_anonymity=10_000), spark)
    assert not privacy.gold_table(candidate.lake, "marketing").exists()
    report = privacy.report_path(candidate.lake, "marketing", candidate.as_of).read_text(encoding="utf-8")
    assert "BLOCKED" in report
