"""The whole pipeline as one DAG, for the embedded run (`make demo`, `airflow dags test`).

Wiring only: each task is one call into jobs/. Settings come from the MYDATA_* environment
(see mydata.config); the run's params may name a delivery date.
"""
from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task

DOC = """
### MyData pipeline (embedded)

Runs the stages that exist, in order, on the lake under `MYDATA_DATA_ROOT`:

1. **inventory_landing**: complete deliveries (with `_SUCCESS`) and their record counts;
   incomplete ones are listed as waiting. Writes `manifests/landing/<run>.json`.
2. **ingest**: landing -> typed bronze tables, bad rows to quarantine with a reason, failed
   collections and duplicate deliveries counted; reconciliation in `manifests/ingest/<run>.json`.
3. **validate**: the Great Expectations suites of `schemas/` over the bronze partitions ingest
   wrote; any failed expectation fails the run. Writes the run's page under `reports/ingest/`.
4. **consent**: new consent deliveries appended to the hash-chained ledger, verified; a broken
   chain fails the run and names the first bad event.
5. **fuse**: silver for the purpose (param `purpose`) as of the run's logical date (or param
   `as_of`): only subjects with valid consent for bank, card and telecom, re-keyed to purpose
   pseudonyms; linkage report under `reports/fusion/`.
6. **features**: the declarations of `features/` compiled into one aggregation per silver
   table, point in time as of the same date: the release candidate in `silver/features/`.
7. **release**: the k-anonymity gate (generalise quasi-identifiers, suppress small groups, at
   most the allowed share) publishes `gold/features/`, the privacy report and the feature
   catalog; when k cannot be reached, nothing is published and the run fails.
8. **segment**: when no model is current, or the snapshot drifted from the current model's
   (PSI above `MYDATA_DRIFT_THRESHOLD`), a segmentation model is trained, registered under
   `models/` with its profile page under `reports/models/`, and promoted; otherwise the current
   model is kept and the drift report says why. Param `truth` (generated data only) adds the
   ARI against the generator's latent types.
9. **score**: the current model assigns every published subject a segment in Spark:
   `gold/segments/`.
10. **purge**: subjects who withdrew are removed from every derived table of the purpose; the
   purge is recorded in `consent/purge_audit.jsonl`.

Trigger with `mydata demo`, or `airflow dags test mydata_pipeline <date>`.
Param `dt` (YYYY-MM-DD) limits ingest to one delivery date; empty means all.
"""


@dag(
    dag_id="mydata_pipeline",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    doc_md=DOC,
    params={"dt": "", "purpose": "marketing", "as_of": "", "truth": False},
    tags=["mydata", "embedded"],
    default_args={"retries": 0},
)
def mydata_pipeline():
    @task(task_id="inventory_landing")
    def inventory_landing(params=None) -> dict:
        from jobs import landing
        from mydata.config import Settings

        return landing.run(Settings.load(delivery_date=(params or {}).get("dt") or None))

    @task(task_id="ingest")
    def ingest(params=None) -> dict:
        from jobs import ingest as ingest_job
        from mydata.config import Settings

        return ingest_job.run(Settings.load(delivery_date=(params or {}).get("dt") or None))

    @task(task_id="validate")
    def validate() -> dict:
        from jobs import validate as validate_job
        from mydata.config import Settings

        return validate_job.run(Settings.load())

    @task(task_id="consent")
    def consent() -> dict:
        from jobs import consent as consent_job
        from mydata.config import Settings

        return consent_job.run(Settings.load())

    @task(task_id="fuse")
    def fuse(params=None, logical_date=None) -> dict:
        from jobs import fuse as fuse_job
        from mydata.config import Settings

        params = params or {}
        return fuse_job.run(Settings.load(purpose=params.get("purpose") or None,
                                          as_of=params.get("as_of") or logical_date.date()))

    @task(task_id="features")
    def features(params=None, logical_date=None) -> dict:
        from jobs import features as features_job
        from mydata.config import Settings

        params = params or {}
        return features_job.run(Settings.load(purpose=params.get("purpose") or None,
                                              as_of=params.get("as_of") or logical_date.date()))

    @task(task_id="release")
    def release(params=None, logical_date=None) -> dict:
        from jobs import privacy
        from mydata.config import Settings

        params = params or {}
        return privacy.run(Settings.load(purpose=params.get("purpose") or None,
                                         as_of=params.get("as_of") or logical_date.date()))

    @task(task_id="segment")
    def segment(params=None, logical_date=None) -> dict:
        from models import train
        from mydata.config import Settings

        params = params or {}
        return train.refresh(Settings.load(purpose=params.get("purpose") or None,
                                           as_of=params.get("as_of") or logical_date.date()),
                             truth=bool(params.get("truth")))

    @task(task_id="score")
    def score(params=None, logical_date=None) -> dict:
        from jobs import score as score_job
        from mydata.config import Settings

        params = params or {}
        return score_job.run(Settings.load(purpose=params.get("purpose") or None,
                                           as_of=params.get("as_of") or logical_date.date()))

    @task(task_id="purge")
    def purge(params=None) -> dict:
        from jobs import purge as purge_job
        from mydata.config import Settings

        return purge_job.run(Settings.load(purpose=(params or {}).get("purpose") or None))

    (inventory_landing() >> ingest() >> validate() >> consent() >> fuse() >> features() >> release()
     >> segment() >> score() >> purge())


mydata_pipeline()
