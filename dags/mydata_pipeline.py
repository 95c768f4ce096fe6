"""The whole pipeline as one DAG, for the embedded run (`make demo`, `airflow dags test`): wiring only,
each task one call into jobs/ or models/ (mydata.orchestration.job_task)."""
from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag

from mydata.orchestration import job_task

DOC = """
### mydata_pipeline (by hand: `make demo`)
Every stage in one run on the embedded home: landing inventory, ingest, validate, consent ledger,
fuse, features, release, segment, score, purge, consent review. Params: `dt`, `purpose`, `as_of`,
`truth` (a reference-labels file), `retrain`. More: `docs/orchestration.md`.
"""


@dag(
    dag_id="mydata_pipeline",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    doc_md=DOC,
    params={"dt": "", "purpose": "marketing", "as_of": "", "truth": "", "retrain": False},
    tags=["mydata", "embedded"],
    default_args={"retries": 0},
)
def mydata_pipeline():
    (job_task("inventory_landing", "jobs.landing", dt="param")
     >> job_task("ingest", "jobs.ingest", dt="param")
     >> job_task("validate", "jobs.validate", run_of=("ingest_run", "ingest"))
     >> job_task("consent", "jobs.consent")
     >> job_task("fuse", "jobs.fuse", as_of=True)
     >> job_task("features", "jobs.features", as_of=True)
     >> job_task("release", "jobs.release", as_of=True)
     >> job_task("segment", "jobs.segment", as_of=True, spark=False, function="refresh",
                 from_params=("truth", "retrain"))
     >> job_task("score", "jobs.score", as_of=True)
     >> job_task("purge", "jobs.purge")
     >> job_task("consent_review", "jobs.consent_review", as_of=True))


mydata_pipeline()
