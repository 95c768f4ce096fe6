"""The drift check: PSI between the snapshot a model was trained on (or a baseline) and a newer one.

Reads gold/features and the model registry; writes ``reports/drift/`` and its manifest. The
measure itself is ``models.drift``.
"""
from __future__ import annotations

import pandas as pd

from jobs.stage import StageResult, stage_run
from models.drift import drift
from mydata.config import Settings
from render.drift import report_path, write_report

JOB = "drift"


def run(settings: Settings, baseline: str | None = None, version: str | None = None) -> StageResult:
    """PSI between the snapshot the model (current, or ``version``) was trained on, or ``baseline``,
    and the snapshot as of ``settings.as_of`` (default: the newest); segments from the model."""
    from models import registry
    from models.snapshots import load_snapshot, snapshot_folder

    lake, purpose = settings.lake, settings.purpose
    model = registry.get(lake, purpose, version)
    baseline = baseline or model.metadata["as_of"]
    as_of = snapshot_folder(purpose, settings.as_of, lake.root).name.split("=", 1)[1]
    with stage_run(settings, JOB, purpose=purpose, baseline=baseline, as_of=as_of, model=model.version) as run:
        pipeline, features = model.load(), model.metadata["features"]
        expected, actual = load_snapshot(purpose, baseline, lake.root), load_snapshot(purpose, as_of, lake.root)
        expected_segments = pd.Series(pipeline.predict(expected[features]))
        actual_segments = pd.Series(pipeline.predict(actual[features]))
        result = drift(expected, actual, features, expected_segments, actual_segments, settings.drift_threshold)
        labels = {s["segment"]: s["label"] for s in model.metadata.get("profile", {}).get("segments", [])}
        facts = {"purpose": purpose, "baseline": baseline, "as of": as_of, "model": model.version,
                 "subjects": f"{len(expected):,} → {len(actual):,}"}
        report = write_report(report_path(lake, purpose, baseline, as_of), result, facts,
                              expected_segments.value_counts(normalize=True).sort_index(),
                              actual_segments.value_counts(normalize=True).sort_index(), labels)
        run.manifest.inputs = {"baseline": baseline, "as_of": as_of, "model": model.version}
        run.manifest.outputs = {"retrain": result.retrain, "drifted": result.drifted, "threshold": result.threshold,
                                "segments_psi": result.segments,
                                "max_feature_psi": max(result.features.values(), default=0.0), "report": str(report)}
    return run.result()
