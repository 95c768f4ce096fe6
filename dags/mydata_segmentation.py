"""Segmentation: retrain when drift says so (or on request), register, promote, score."""
from __future__ import annotations

from datetime import datetime

from airflow.sdk import Asset, dag

from mydata.orchestration import DEFAULT_ARGS, GOLD_FEATURES, GOLD_SEGMENTS, job_task

DOC = """
### mydata_segmentation (when a feature snapshot is published, or on request)

1. **train_if_due**: compares the newest snapshot (as of param `as_of`, else the newest) with the
   current model's by PSI (`MYDATA_DRIFT_THRESHOLD`); trains, evaluates (silhouette, bootstrap
   stability), registers and promotes a new version when no model is current, when drift passes
   the threshold, or when param `retrain` is true. Otherwise keeps the current model; the drift
   report under `reports/drift/` says why. Profiles under `reports/models/`.
2. **score**: the current model assigns every published subject a segment on the engine:
   `gold/segments/purpose=<p>/as_of=<d>/`.

Trigger by hand with `{"retrain": true}` to train regardless of drift.
"""


@dag(
    dag_id="mydata_segmentation",
    schedule=[Asset(GOLD_FEATURES)],
    start_date=datetime(2026, 5, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC,
    params={"purpose": "marketing", "as_of": "", "retrain": False, "truth": False},
    tags=["mydata", "models"],
    default_args=DEFAULT_ARGS,
)
def mydata_segmentation():
    (job_task("train_if_due", "models.lifecycle", as_of=True, spark=False, function="refresh",
              from_params=("retrain", "truth"))
     >> job_task("score", "jobs.score", as_of=True, outlets=[Asset(GOLD_SEGMENTS)]))


mydata_segmentation()
