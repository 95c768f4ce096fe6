"""The whole pipeline as one DAG, for the embedded run (`make demo`, `airflow dags test`).

Wiring only: each task is one call into jobs/ or models/ (mydata.orchestration.job_task).
Settings come from the MYDATA_* environment (see mydata.config); the run's params may name a
delivery date. The scheduled DAGs (mydata_ingest, mydata_fusion_features, mydata_segmentation,
mydata_consent_purge) split the same stages by cadence.
"""
from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag

from mydata.orchestration import job_task

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
9. **score**: the current model assigns every published subject a segment on the engine:
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
    params={"dt": "", "purpose": "marketing", "as_of": "", "truth": False, "retrain": False},
    tags=["mydata", "embedded"],
    default_args={"retries": 0},
)
def mydata_pipeline():
    (job_task("inventory_landing", "jobs.landing", dt="param")
     >> job_task("ingest", "jobs.ingest", dt="param")
     >> job_task("validate", "jobs.validate")
     >> job_task("consent", "jobs.consent")
     >> job_task("fuse", "jobs.fuse", as_of=True)
     >> job_task("features", "jobs.features", as_of=True)
     >> job_task("release", "jobs.privacy", as_of=True)
     >> job_task("segment", "models.lifecycle", as_of=True, spark=False, function="refresh",
                 from_params=("truth", "retrain"))
     >> job_task("score", "jobs.score", as_of=True)
     >> job_task("purge", "jobs.purge")
     >> job_task("consent_review", "jobs.consent_review", as_of=True))


mydata_pipeline()
