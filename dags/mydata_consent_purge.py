"""Hourly: subjects who withdrew consent leave every derived table of each purpose."""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, dag

from mydata.config import PURPOSES
from mydata.orchestration import CONSENT_LEDGER, DEFAULT_ARGS, job_task

DOC = """
### mydata_consent_purge (hourly)
Removes subjects who withdrew consent from every derived table of each purpose and records the
purge in `consent/purge_audit.jsonl`. More: `docs/stages/purge.md`.
"""


@dag(
    dag_id="mydata_consent_purge",
    schedule=timedelta(hours=1),
    start_date=datetime(2026, 5, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC,
    tags=["mydata", "consent", "compliance"],
    default_args=DEFAULT_ARGS,
)
def mydata_consent_purge():
    for purpose in PURPOSES:
        job_task(f"purge_{purpose}", "jobs.purge", purpose=purpose, inlets=[Asset(CONSENT_LEDGER)])


mydata_consent_purge()
