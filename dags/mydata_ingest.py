"""Daily ingest: wait for the day's complete deliveries, ingest, validate, extend the consent ledger."""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.sensors.python import PythonSensor
from airflow.sdk import Asset, dag

from jobs.landing import deliveries_ready
from mydata.orchestration import BRONZE, CONSENT_LEDGER, DEFAULT_ARGS, job_task

DOC = """
### mydata_ingest (daily)
Waits for every source's complete delivery of the date (`_SUCCESS`), ingests it into bronze with
quarantine, validates it with Great Expectations and appends consent events to the verified ledger.
Param `dt`: the delivery date. More: `docs/orchestration.md`, `docs/stages/ingest.md`.
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
    validate = job_task("validate", "jobs.validate", run_of=("ingest_run", "ingest"))
    ledger = job_task("consent_ledger", "jobs.consent", outlets=[Asset(CONSENT_LEDGER)])
    wait >> ingest >> validate >> ledger


mydata_ingest()
