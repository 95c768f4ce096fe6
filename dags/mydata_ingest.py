"""Daily ingest: wait for the day's complete deliveries, ingest, validate, extend the consent ledger."""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.sensors.python import PythonSensor
from airflow.sdk import Asset, dag

from jobs.landing import deliveries_ready
from mydata.orchestration import BRONZE, CONSENT_LEDGER, DEFAULT_ARGS, job_task

DOC = """
### mydata_ingest (daily)

One run per delivery date (the run's logical date, or param `dt`):

1. **wait_for_deliveries**: pokes until every source (bank, card, telecom, telecom_usage,
   customer, consent) has a complete delivery for the date (`_SUCCESS` marker). Reschedules
   between pokes (no worker slot held); after 12 hours the run is skipped, not failed.
2. **ingest**: landing -> typed bronze, bad rows to quarantine with a reason; the manifest
   reconciles every record. Reruns replace the date's partitions (idempotent).
3. **validate**: the Great Expectations suites over the partitions just written; a failed
   expectation fails the run. Report under `reports/ingest/`.
4. **consent_ledger**: new consent events appended to the hash-chained ledger after verifying
   it; a broken chain fails the run and names the first bad event.

Produces the assets `mydata://lake/bronze` and `mydata://lake/consent/ledger`, which schedule
`mydata_fusion_features`. Backfill: `mydata airflow -- backfill create --dag-id mydata_ingest
--from-date 2026-06-01 --to-date 2026-08-01`; one run at a time, because the ledger is a chain.
"""


@dag(
    dag_id="mydata_ingest",
    schedule="@daily",
    start_date=datetime(2026, 5, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC,
    params={"dt": ""},
    tags=["mydata", "ingest"],
    default_args=DEFAULT_ARGS,
)
def mydata_ingest():
    wait = PythonSensor(task_id="wait_for_deliveries", python_callable=deliveries_ready,
                        op_kwargs={"dt": "{{ params.dt or ds }}"}, mode="reschedule",
                        poke_interval=timedelta(minutes=5), timeout=timedelta(hours=12), soft_fail=True)
    ingest = job_task("ingest", "jobs.ingest", dt=True, outlets=[Asset(BRONZE)])
    validate = job_task("validate", "jobs.validate")
    ledger = job_task("consent_ledger", "jobs.consent", outlets=[Asset(CONSENT_LEDGER)])
    wait >> ingest >> validate >> ledger


mydata_ingest()
