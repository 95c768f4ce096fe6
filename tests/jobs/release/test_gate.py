"""The release gate: generalise, suppress, publish only at k; otherwise publish nothing."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from features.definitions import FEATURES
from features.release import LEVELS, RELEASED_QUASI_IDENTIFIERS, Level
from jobs import features, release
from jobs.release import gate
from models.registry import snapshot_hash
from models.snapshots import feature_dtypes, load_snapshot
from schemas.dialects import DUCKDB
from tests.tables import rows_table

SCHEMA = "pseudonym string, age int, gender string, region_code string, bank_inflow_3m_avg double"


COLUMNS = ["pseudonym", "age", "gender", "region_code", "bank_inflow_3m_avg"]


def generalised(engine, level: Level) -> list[dict]:
    return engine.rows(gate.generalise_sql(DUCKDB, "candidates", COLUMNS, level) + " ORDER BY pseudonym")


def test_generalising_replaces_raw_quasi_identifiers(duckdb_engine):
    rows_table(duckdb_engine, "candidates", SCHEMA, [("P1", 34, "F", "26", 1.0), ("P2", None, None, "99", 2.0)])
    rows = {r["pseudonym"]: r for r in generalised(duckdb_engine, Level(10, "area", True))}
    assert (rows["P1"]["age_band"], rows["P1"]["gender"], rows["P1"]["region"]) == ("30-39", "F", "yeongnam")
    assert (rows["P2"]["age_band"], rows["P2"]["gender"], rows["P2"]["region"]) == ("*", "*", "*")
    assert list(generalised(duckdb_engine, LEVELS[0])[0]) == ["pseudonym", *RELEASED_QUASI_IDENTIFIERS,
                                                               "bank_inflow_3m_avg"]
    widest = generalised(duckdb_engine, Level(20, "none", False))
    assert {(r["age_band"], r["gender"], r["region"]) for r in widest} == {("20-39", "*", "*"), ("*", "*", "*")}


def test_the_gate_counts_small_groups_and_suppresses_them(duckdb_engine):
    # six women of 30-34 in Seoul, two men of 36 and 41 in Busan
    rows_table(duckdb_engine, "candidates", SCHEMA, [(f"W{i}", 31 + i % 3, "F", "11", float(i)) for i in range(6)]
               + [("M1", 36, "M", "26", 1.0), ("M2", 41, "M", "26", 2.0)])
    level = LEVELS[0]
    duckdb_engine.view("generalised", gate.generalise_sql(DUCKDB, "candidates", COLUMNS, level))
    outcome = gate.assess(duckdb_engine, "generalised", level, k=5)
    assert (outcome.groups, outcome.small_groups, outcome.suppressed, outcome.subjects) == (3, 2, 2, 8)
    assert outcome.sizes == {"1": 2, "5-9": 1} and outcome.smallest == 1
    released = ["pseudonym", *RELEASED_QUASI_IDENTIFIERS, "bank_inflow_3m_avg"]
    duckdb_engine.table("kept", gate.suppress_sql("generalised", released, 5))
    assert sorted(r["pseudonym"] for r in duckdb_engine.rows("SELECT pseudonym FROM kept")) == [f"W{i}" for i in range(6)]
    row = duckdb_engine.rows(gate.l_diversity_sql(DUCKDB, "kept", "bank_inflow_3m_avg", [1.5, 3.5]))[0]
    assert (row["min_l"], row["below_2"]) == (3, 0)
    # quantile cuts of 0..5 in five bands: every woman's band differs from her neighbours'
    assert gate.l_diversity(duckdb_engine, "kept", "bank_inflow_3m_avg")["min_l"] == 5


@pytest.fixture
def candidate(fused, tmp_path):
    settings, results = fused
    shutil.copytree(settings.data_root, tmp_path / "lake")
    settings = settings.replace(data_root=tmp_path / "lake", purpose="marketing", as_of=results["marketing"]["as_of"])
    features.run(settings)
    return settings


@pytest.mark.slow
def test_a_release_meets_k_and_loads_in_one_call(candidate):
    result = release.run(candidate)
    published = pq.read_table(result["snapshot"]).to_pandas()
    assert published.groupby(list(RELEASED_QUASI_IDENTIFIERS)).size().min() >= 5
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
def test_a_rerun_of_the_same_inputs_writes_the_same_bytes_and_the_registry_the_same_snapshot_hash(candidate):
    first = release.run(candidate)
    hashed, candidate_bytes = snapshot_hash(Path(first["snapshot"])), _bytes(candidate.lake.silver)
    assert hashed == snapshot_hash(Path(first["snapshot"]))  # nothing random in the hash itself
    features.run(candidate)
    again = release.run(candidate)
    assert again["snapshot"] == first["snapshot"] and snapshot_hash(Path(again["snapshot"])) == hashed
    assert _bytes(candidate.lake.silver) == candidate_bytes


def _bytes(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


@pytest.mark.slow
def test_a_release_that_cannot_reach_k_publishes_nothing(candidate):
    with pytest.raises(release.ReleaseBlocked, match="nothing published"):
        release.run(candidate.replace(k_anonymity=10_000))
    assert not candidate.lake.published_features("marketing").exists()
    report = release.report_path(candidate.lake, "marketing", candidate.as_of).read_text(encoding="utf-8")
    assert "BLOCKED" in report


def _later_candidate(settings, days: int, **blanked) -> object:
    """The candidate copied to a later as-of date with some features set to one value for everyone."""
    from datetime import timedelta

    import pyarrow as pa

    later = settings.as_of + timedelta(days=days)
    source = settings.lake.feature_candidates("marketing") / f"as_of={settings.as_of}"
    table = pq.read_table(source)
    table = table.drop_columns(["as_of"]) if "as_of" in table.column_names else table
    for name, value in blanked.items():
        column = table.schema.field(name)
        table = table.set_column(table.column_names.index(name), column,
                                 pa.array([value] * table.num_rows, column.type))
    target = settings.lake.feature_candidates("marketing") / f"as_of={later}"
    target.mkdir(parents=True)
    pq.write_table(table, target / "part-00000.parquet")
    return settings.replace(as_of=later)


@pytest.mark.slow
def test_feature_health_names_blank_features_and_a_feature_gone_blank_fails_the_release(candidate):
    first = release.run(candidate)
    health = json.loads(open(first["manifest"]).read())["outputs"]["feature_health"]
    assert set(health) == {f.name for f in FEATURES if not f.quasi_identifier}
    assert health["card_spend_1m"]["status"] == "ok" and 0 <= health["card_spend_1m"]["zero_share"] < 1
    # a holder stops delivering card approvals: card_spend_1m and telecom_lines are blank in the next candidate
    later = _later_candidate(candidate, 7, card_spend_1m=None, telecom_lines=1)
    with pytest.raises(release.FeaturesWentBlank, match=r"card_spend_1m \(all null\), telecom_lines \(constant\)"):
        release.run(later)
    assert not (candidate.lake.published_features("marketing") / f"as_of={later.as_of}").exists()
    report = release.report_path(candidate.lake, "marketing", later.as_of).read_text(encoding="utf-8")
    assert "WENT BLANK" in report and "card_spend_1m" in report
    allowed = release.run(later.replace(allow_blank_features=True))
    assert allowed["blank_features"] == {"card_spend_1m": "all null", "telecom_lines": "constant"}
    catalog = open(allowed["catalog"], encoding="utf-8").read()
    assert "Blank (constant or all null) in this snapshot: card_spend_1m, telecom_lines" in catalog
    from jobs import status
    said = status.run(later).attention
    assert any("card_spend_1m (all null), telecom_lines (constant)" in line for line in said)
    front = (candidate.lake.reports / "index.html").read_text(encoding="utf-8")
    assert "2 BLANK FEATURE(S): card_spend_1m, telecom_lines" in front
