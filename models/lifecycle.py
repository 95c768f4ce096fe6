"""Train on a published snapshot and register the model with its lineage, profile and report.

Ground truth (pseudonym -> reference label) is handed in by the caller; nothing here looks for one.
The ``segment`` stage (``jobs/segment.py``) runs this and decides when to.
"""
from __future__ import annotations

from collections.abc import Mapping

from sklearn.metrics import adjusted_rand_score

from models.pipeline import ModelSpec
from models.train import train
from render.model import write_report


def train_and_register(lake, purpose: str, as_of=None, options: ModelSpec = ModelSpec(),
                       truth: Mapping[str, str] | None = None):
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
    model = train(frame, options)
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
