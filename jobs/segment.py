"""The segment stage: train and register a segmentation model, or refresh when drift says so.

Reads gold/features (a published snapshot) and writes the model registry, its report and the run's
manifest. Ground truth is a reference-labels file the caller hands in (the CLI's ``--truth``, the
DAG's ``truth`` param); nothing here looks for one.
"""
from __future__ import annotations

from pathlib import Path

from jobs import drift
from jobs.stage import StageResult, stage_run
from models import registry
from models.lifecycle import train_and_register
from models.pipeline import ModelSpec
from models.reference import reference_labels
from mydata.keys import KeyStore
from mydata.lock import writes_lake
from render.model import report_path

JOB = "train"


@writes_lake("segment")
def run(settings, options: ModelSpec = ModelSpec(), promote: bool = False,
        truth: Path | str | None = None) -> StageResult:
    """Train on the snapshot as of ``settings.as_of`` (default: the newest) and register; with
    ``truth`` (a reference-labels file, ``models.reference``), score against it."""
    lake, purpose = settings.lake, settings.purpose
    labels = reference_labels(Path(truth), KeyStore.open(settings).purpose_secret(purpose)) if truth else None
    with stage_run(settings, JOB, purpose=purpose, as_of=settings.as_of and settings.as_of.isoformat(),
                   algorithm=options.algorithm, seed=options.seed, k=options.k,
                   ks=list(options.candidates)) as run:
        version, _ = train_and_register(lake, purpose, settings.as_of, options, labels)
        if promote:
            registry.promote(lake, purpose, version.version)
        run.manifest.inputs = {"snapshot": version.metadata["snapshot"],
                               "snapshot_hash": version.metadata["snapshot_hash"],
                               "consent_snapshot": version.metadata["consent_snapshot"]}
        run.manifest.outputs = {"version": version.version, "promoted": promote, "metrics": version.metadata["metrics"],
                                "segments": version.metadata["profile"]["segments"],
                                "report": str(report_path(lake, purpose, version.version))}
    return run.result()


@writes_lake("segment")
def refresh(settings, truth: Path | str | None = None, retrain: bool = False) -> dict:
    """Train (and promote) when asked (``retrain``), when no model is current, or when the snapshot
    as of ``settings.as_of`` drifted past ``settings.drift_threshold`` from the current model's;
    otherwise keep the current model. This is what the DAGs call."""
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
