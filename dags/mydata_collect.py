"""Daily: collect the day's bank, card and telecom deliveries from every registered holder's MyData API."""
from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag

from mydata.orchestration import DEFAULT_ARGS, job_task

DOC = """
### mydata_collect (daily)
Calls every registered holder's MyData API (connection `mydata_holder_<org_code>`) for the subjects
with valid consent for the source, and lands the delivery with `_SUCCESS` last. Param `refetch`
collects a landed holder again. More: `docs/stages/collect.md`.
"""


@dag(
    dag_id="mydata_collect",
    schedule="0 1 * * *",
    start_date=datetime(2026, 5, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=DOC,
    params={"refetch": False},
    tags=["mydata", "collect"],
    default_args=DEFAULT_ARGS,
)
def mydata_collect():
    for source in ("bank", "card", "telecom"):
        job_task(f"collect_{source}", "jobs.collect", dt=True, spark=False, arguments={"source": source},
                 from_params=("refetch",))


mydata_collect()
