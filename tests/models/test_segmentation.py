"""Segmentation: k chosen from the data, seeded, registered with lineage, scored in Spark."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from jobs.score import SCHEMA, labelled_sql, predictor
from models import registry
from models.pipeline import ModelSpec, build_pipeline, model_features
from models.profile import standardised
from models.snapshots import feature_dtypes
from models.train import train
from mydata.lake import Lake
from schemas.dialects import DUCKDB
from tests.on_spark import as_engine
from tests.tables import rows_table


def test_training_finds_the_kinds_and_is_reproducible(blobs):
    frame, truth = blobs()
    model = train(frame, ModelSpec(ks=range(2, 7), seed=5))
    assert model.spec.k == 3 and model.selection.rule == "highest silhouette"
    assert adjusted_rand_score(truth, model.labels) > 0.95  # frame is already in pseudonym order
    assert model.stability > 0.9 and set(model.selection.silhouette) == set(range(2, 7))
    again = train(frame.sample(frac=1, random_state=1), ModelSpec(ks=range(2, 7), seed=5))  # row order changes nothing
    assert (again.labels == model.labels).all()
    mixture = train(frame, ModelSpec(algorithm="gmm", ks=range(2, 6), seed=5))
    assert mixture.selection.rule == "lowest BIC" and set(mixture.selection.bic) == set(range(2, 6))


@pytest.mark.parametrize("pca_components", [None, 4])
def test_the_labels_are_what_the_stored_pipeline_predicts(blobs, pca_components):
    """Training transforms every subject once and shares it: the labels it reports and the scale the
    profile describes must be exactly what the pipeline it hands to the registry gives."""
    frame, _ = blobs()
    model = train(frame, ModelSpec(ks=[3], seed=5, pca_components=pca_components))
    assert (model.pipeline.predict(frame[model_features()]) == model.labels).all()
    pd.testing.assert_frame_equal(model.scaled, standardised(model.pipeline, frame, model.features))


def test_a_bad_model_spec_is_refused():
    with pytest.raises(ValueError, match="algorithm"):
        ModelSpec(algorithm="dbscan")
    with pytest.raises(ValueError, match="k must be"):
        ModelSpec(algorithm="kmeans", k=1)


def test_the_registry_versions_promotes_and_compares(tmp_path, blobs):
    lake = Lake(tmp_path)
    frame, _ = blobs(40)
    first = registry.register(lake, "marketing", build_pipeline(ModelSpec(k=3)).fit(frame[model_features()]),
                              {"parameters": {"k": 3}, "metrics": {"silhouette": 0.5}, "features": model_features(),
                               "snapshot": "a", "snapshot_hash": "h1", "consent_snapshot": "s1"})
    second = registry.register(lake, "marketing", build_pipeline(ModelSpec(k=4)).fit(frame[model_features()]),
                               {"parameters": {"k": 4}, "metrics": {"silhouette": 0.4}, "features": model_features()[1:],
                                "snapshot": "a", "snapshot_hash": "h1", "consent_snapshot": "s1"})
    assert [v.version for v in registry.versions(lake, "marketing")] == ["v0001", "v0002"]
    with pytest.raises(registry.RegistryError, match="no model promoted"):
        registry.get(lake, "marketing")
    registry.promote(lake, "marketing", "1")
    assert registry.get(lake, "marketing").version == "v0001" == registry.current_version(lake, "marketing")
    assert "scikit-learn" in first.metadata["libraries"] and first.metadata["created_at"]
    diff = registry.compare(first, second)
    assert diff["parameters"] == {"k": (3, 4)} and diff["metrics"] == {"silhouette": (0.5, 0.4)}
    assert diff["features"]["only_in_v0001"] == [model_features()[0]] and not diff["inputs"]
    assert (registry.get(lake, "marketing", "v0002").load().predict(frame[model_features()]) >= 0).all()
    with pytest.raises(registry.RegistryError, match="no model v0009"):
        registry.get(lake, "marketing", "9")


@pytest.mark.parametrize("engine_name", ["duckdb", "spark"])
def test_scoring_on_either_engine_equals_the_pipeline(request, engine_name, blobs):
    import pyarrow as pa

    frame, _ = blobs(50)
    pipeline = build_pipeline(ModelSpec(k=3, seed=1)).fit(frame[model_features()])
    engine = request.getfixturevalue("duckdb_engine") if engine_name == "duckdb" \
        else as_engine(request.getfixturevalue("spark"))
    try:
        engine.arrow("snapshot", pa.Table.from_pandas(frame.astype({c: "float64" for c in model_features()}),
                                                      preserve_index=False))
        columns = ", ".join(["pseudonym", *model_features()])
        engine.map_batches("segments", f"SELECT {columns} FROM snapshot", predictor(pipeline, model_features()), SCHEMA)
        scored = {r["pseudonym"]: r["segment"] for r in engine.rows("SELECT * FROM segments")}
    finally:
        engine.close()
    expected = dict(zip(frame["pseudonym"], pipeline.predict(frame[model_features()])))
    assert scored == expected and len(scored) == len(frame)
    assert set(feature_dtypes()) >= set(model_features())


def test_scored_segments_carry_the_profile_labels(duckdb_engine):
    rows_table(duckdb_engine, "segments", "pseudonym string, segment int", [("P1", 0), ("P2", 2), ("P3", 1)])
    metadata = {"profile": {"segments": [{"segment": 0, "label": "high card golf"},
                                         {"segment": 1, "label": "low telecom data mb's"}]}}
    rows = duckdb_engine.rows(labelled_sql(DUCKDB, "segments", metadata, "v0003", "2026-08-01"))
    assert {r["pseudonym"]: r["segment_label"] for r in rows} == \
        {"P1": "high card golf", "P2": None, "P3": "low telecom data mb's"}
    assert {(r["model_version"], str(r["as_of"])) for r in rows} == {("v0003", "2026-08-01")}


def test_reference_labels_are_handed_in_and_training_goes_on_without_them(tmp_path, blobs, publish_snapshot):
    """The caller hands in reference labels (link_key, latent_type), read by purpose pseudonym: the
    ARI is scored against them; without them (a user's own landing) there is no ARI, and a file
    that is not there is said, not skipped."""
    from jobs import segment
    from models.reference import BadReferenceLabels
    from mydata.config import Settings
    from mydata.keys import KeyStore, purpose_pseudonym

    settings = Settings(data_root=tmp_path)
    secret = KeyStore.open(settings).purpose_secret("marketing")
    frame, types = blobs(rows_per_type=40)
    link_keys = [f"LK{i:041d}" for i in range(len(frame))]
    frame["pseudonym"] = [purpose_pseudonym(secret, k) for k in link_keys]
    publish_snapshot(tmp_path, frame)
    labels = tmp_path / "labels.csv"
    labels.write_text("link_key,latent_type\n" + "".join(f"{k},t{t}\n" for k, t in zip(link_keys, types)))

    scored = segment.run(settings, ModelSpec(ks=range(3, 4)), truth=labels)
    assert scored["metrics"]["ari_vs_latent_types"] > 0.95 and scored["metrics"]["subjects_with_truth"] == len(frame)
    plain = segment.run(settings, ModelSpec(ks=range(3, 4)))
    assert "ari_vs_latent_types" not in plain["metrics"] and plain["metrics"]["k"] == 3
    with pytest.raises(BadReferenceLabels, match="no reference labels"):
        segment.run(settings, ModelSpec(ks=range(3, 4)), truth=tmp_path / "none.csv")


def test_a_feature_no_holder_measured_does_not_stop_training(blobs):
    frame, truth = blobs()
    for name in ("telecom_data_mb_3m_avg", "telecom_night_ratio_3m", "telecom_finance_app_3m_avg"):
        frame[name] = np.nan  # an operator without data volume, night share or app sessions
    model = train(frame, ModelSpec(ks=range(2, 5), seed=5))
    assert model.spec.k == 3 and adjusted_rand_score(truth, model.labels) > 0.95
    assert np.isfinite(model.scaled.to_numpy()).all()


def test_training_leaves_out_a_constant_or_empty_feature_and_the_profile_says_why(blobs, publish_snapshot, tmp_path):
    from models.lifecycle import train_and_register

    frame, truth = blobs()
    frame["bank_accounts"], frame["loan_rate_mean"] = 0, np.nan
    model = train(frame, ModelSpec(ks=[3], seed=5))
    assert model.left_out == {"bank_accounts": "constant", "loan_rate_mean": "all null"}
    assert not {"bank_accounts", "loan_rate_mean"} & set(model.features) and model.metrics["features_left_out"] == 2
    assert adjusted_rand_score(truth, model.labels) > 0.95
    publish_snapshot(tmp_path, frame)
    version, _ = train_and_register(Lake(tmp_path), "marketing", "2026-10-01", ModelSpec(ks=[3]))
    assert version.metadata["features_left_out"] == {"bank_accounts": "constant", "loan_rate_mean": "all null"}
    page = (tmp_path / "reports").rglob("*.html")
    profile = next(p for p in page if version.version in p.name).read_text(encoding="utf-8")
    assert "Features left out" in profile and "bank_accounts" in profile and "all null in the training snapshot" in profile
    heat = profile.split("How each segment differs")[1].split("Means")[0]
    assert "bank_accounts" not in heat and "Bank accounts" not in heat
