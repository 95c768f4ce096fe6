"""Monthly as-of snapshot: consent snapshot and fusion, features, the k-anonymity release gate."""
from __future__ import annotations

from datetime import datetime

from airflow.sdk import Asset, AssetOrTimeSchedule, dag
from airflow.timetables.trigger import CronTriggerTimetable

from mydata.orchestration import CONSENT_LEDGER, DEFAULT_ARGS, GOLD_FEATURES, job_task

DOC = """
### mydata_fusion_features (monthly, and when the consent ledger is updated)
Fuses bank, card and telecom only for subjects whose consent for param `purpose` covers every
source, computes the features point in time and publishes them through the k-anonymity gate.
More: `docs/orchestration.md`, `docs/stages/fuse.md`, `docs/stages/features.md`.
"""


@dag(
    dag_id="mydata_fusion_features",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 0 1 * *", timezone="Asia/Seoul"),
                                 assets=[Asset(CONSENT_LEDGER)]),
    start_date=datetime(2026, 5, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC,
    params={"purpose": "marketing", "as_of": ""},
    tags=["mydata", "fusion", "features"],
    default_args=DEFAULT_ARGS,
)
def mydata_fusion_features():
    (job_task("fuse", "jobs.fuse", as_of=True) >> job_task("features", "jobs.features", as_of=True)
     >> job_task("release", "jobs.release", as_of=True, outlets=[Asset(GOLD_FEATURES)]))


mydata_fusion_features()
