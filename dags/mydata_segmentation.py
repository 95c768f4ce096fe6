"""Segmentation: retrain when drift says so (or on request), register, promote, score."""
from __future__ import annotations

from datetime import datetime

from airflow.sdk import Asset, dag

from mydata.orchestration import DEFAULT_ARGS, GOLD_FEATURES, GOLD_SEGMENTS, job_task

DOC = """
### mydata_segmentation (when features are published, or by hand)
Trains, registers and promotes a model when none is current, drift passed the threshold or param
`retrain` is true, then scores every published subject. More: `docs/stages/models.md`.
"""


@dag(
    dag_id="mydata_segmentation",
    schedule=[Asset(GOLD_FEATURES)],
    start_date=datetime(2026, 5, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC,
    params={"purpose": "marketing", "as_of": "", "retrain": False, "truth": ""},
    tags=["mydata", "models"],
    default_args=DEFAULT_ARGS,
)
def mydata_segmentation():
    (job_task("train_if_due", "jobs.segment", as_of=True, spark=False, function="refresh",
              from_params=("retrain", "truth"))
     >> job_task("score", "jobs.score", as_of=True, outlets=[Asset(GOLD_SEGMENTS)]))


mydata_segmentation()
