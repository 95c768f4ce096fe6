"""The model lifecycle: train on a published snapshot and register, or refresh when drift says so.

Ground truth (for generated data, the generator's latent types) is a file the caller hands in (the
CLI's ``--truth``, the DAG's ``truth`` param); nothing here looks for one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from sklearn.metrics import adjusted_rand_score

from models.train import DEFAULT_KS, train
from mydata.lock import writes_lake
from render.model import report_path, write_report


def train_and_register(lake, purpose: str, as_of=None, algorithm: str = "kmeans", ks=DEFAULT_KS, seed: int = 0,
                       pca_components: int | None = None, truth: Mapping[str, str] | None = None):
    """Train on a published snapshot, register the model with its lineage and profile, write its
    report; returns (the registered version, the trained model).

    ``truth`` (pseudonym -> latent type, for generated data only) adds the adjusted Rand index
    against the generator's customer types to the metrics.
    """
    from models import profile, registry
    from models.snapshots import load_snapshot, snapshot_folder
    from mydata.manifest import latest_matching

    folder = snapshot_folder(purpose, as_of, lake.root)
    as_of = folder.name.split("=", 1)[1]
    frame = load_snapshot(purpose, as_of, lake.root).sort_values("pseudonym").reset_index(drop=True)
    model = train(frame, algorithm, ks, seed, pca_components)
    fused = latest_matching(lake, "fuse", purpose=purpose, as_of=as_of)
    metrics = dict(model.metrics)
    if truth:
        known = [(truth[p], label) for p, label in zip(frame["pseudonym"], model.labels) if p in truth]
        if known:
            metrics["ari_vs_latent_types"] = float(adjusted_rand_score(*zip(*known)))
            metrics["subjects_with_truth"] = len(known)
    metadata = {
        "snapshot": str(folder), "snapshot_hash": registry.snapshot_hash(folder), "as_of": as_of,
        "features": model.features,
        "features_left_out": model.left_out,
        "consent_snapshot": fused["inputs"]["consent_snapshot"]["id"] if fused else None,
        "parameters": {**model.spec.as_dict(), "ks": list(model.selection.ks)},
        "metrics": metrics,
        "selection": {"rule": model.selection.rule,
                      **{name: {str(k): v for k, v in getattr(model.selection, name).items()}
                         for name in ("silhouette", "bic", "inertia")}},
        "profile": profile.profile(model.pipeline, frame, model.labels, model.features, model.scaled),
    }
    version = registry.register(lake, purpose, model.pipeline, metadata)
    write_report(lake, version.metadata)
    return version, model


@writes_lake("segment")
def run(settings, algorithm: str = "kmeans", ks=DEFAULT_KS, seed: int = 0, pca_components: int | None = None,
        k: int | None = None, promote: bool = False, truth: Path | str | None = None) -> dict:
    """Train on the snapshot as of ``settings.as_of`` (default: the newest) and register; with
    ``truth`` (a reference-labels file, ``models.reference``), score against it."""
    from models import registry
    from models.reference import reference_labels
    from mydata.keys import KeyStore
    from mydata.manifest import RunManifest

    lake, purpose = settings.lake, settings.purpose
    labels = reference_labels(Path(truth), KeyStore.open(settings).purpose_secret(purpose)) if truth else None
    manifest = RunManifest.start("train", purpose=purpose, as_of=settings.as_of and settings.as_of.isoformat(),
                                 algorithm=algorithm, seed=seed, k=k, ks=list(ks) if k is None else [k])
    version, _ = train_and_register(lake, purpose, settings.as_of, algorithm, ks if k is None else [k], seed,
                                    pca_components, labels)
    if promote:
        registry.promote(lake, purpose, version.version)
    report = report_path(lake, purpose, version.version)
    manifest.inputs = {"snapshot": version.metadata["snapshot"], "snapshot_hash": version.metadata["snapshot_hash"],
                       "consent_snapshot": version.metadata["consent_snapshot"]}
    manifest.outputs = {"version": version.version, "promoted": promote, "metrics": version.metadata["metrics"],
                        "segments": version.metadata["profile"]["segments"], "report": str(report)}
    path = manifest.finish(lake)
    return {"manifest": str(path), **manifest.outputs}


@writes_lake("segment")
def refresh(settings, truth: Path | str | None = None, retrain: bool = False) -> dict:
    """Train (and promote) when asked (``retrain``), when no model is current, or when the snapshot
    as of ``settings.as_of`` drifted past ``settings.drift_threshold`` from the current model's;
    otherwise keep the current model. This is what the DAGs call."""
    from models import drift, registry

    current = registry.current_version(settings.lake, settings.purpose)
    checked = None
    if current is not None and not retrain:
        checked = drift.run(settings)
        if not checked["retrain"]:
            return {"trained": False, "version": current, "reason": "no drift past the threshold", "drift": checked}
    result = run(settings, promote=True, truth=truth)
    reason = ("requested" if retrain else "no current model" if checked is None
              else f"drift: {', '.join(checked['drifted'])}")
    return {"trained": True, "reason": reason, "drift": checked, **result}
