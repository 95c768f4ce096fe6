"""Monthly as-of snapshot: consent snapshot and fusion, features, the k-anonymity release gate."""
from __future__ import annotations

from datetime import datetime

from airflow.sdk import Asset, AssetOrTimeSchedule, dag
from airflow.timetables.trigger import CronTriggerTimetable

from mydata.orchestration import CONSENT_LEDGER, DEFAULT_ARGS, GOLD_FEATURES, job_task

DOC = """
### mydata_fusion_features (monthly, and when ingest produced new data)

As of the run's logical date (00:00 KST of the 1st for the monthly run; param `as_of` overrides;
a run triggered by the ingest assets is as of its trigger time), for param `purpose`:

1. **fuse**: verifies the consent ledger, takes the consent snapshot at the as-of moment and
   joins bank, card and telecom only for subjects whose consent for the purpose covers every
   source; silver re-keyed to purpose pseudonyms; linkage report under `reports/fusion/`.
2. **features**: the declared features, point in time, one aggregation per silver table.
3. **release**: the k-anonymity gate publishes `gold/features/` with the privacy report and
   catalog, or publishes nothing and fails when k cannot be reached.

Every output is a partition replaced atomically, so reruns and backfills are clean. Produces
`mydata://lake/gold/features`, which schedules `mydata_segmentation`.
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
     >> job_task("release", "jobs.privacy", as_of=True, outlets=[Asset(GOLD_FEATURES)]))


mydata_fusion_features()
