"""System test: Airflow's real scheduler, with a throwaway PostgreSQL as its metadata DB, backfills
``mydata_ingest`` over three delivery dates. Every run succeeds, and the lake it leaves (bronze,
quarantine, the consent ledger, the manifests' reconciliation) equals what ``airflow dags test``
leaves for the same dates."""
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest

from mydata.airflow_runner import dags_test_each
from mydata.devtools.airflow_stack import airflow_stack, local_postgres
from mydata.manifest import latest_matching
from mydata.storage import has_data

DATES = [date(2026, 9, 1), date(2026, 9, 2), date(2026, 9, 3)]
TASKS = ["consent_ledger", "ingest", "validate", "wait_for_deliveries"]


def redate(landing, deliveries: list[str]) -> None:
    """The generator delivers monthly; the DAG is daily: its three deliveries become three days."""
    for source in landing.iterdir():
        for old, new in zip(deliveries, DATES):
            (source / f"dt={old}").rename(source / f"dt={new.isoformat()}")


def tables(settings) -> list:
    """Every table the ingest DAG writes that holds rows."""
    lake = settings.lake
    return sorted(p for p in [*lake.bronze.iterdir(), *lake.quarantine.iterdir(), lake.consent / "ledger"]
                  if has_data(p))


def backfill_beside_dags_test(settings, reference, tmp_path):
    """The scheduler's backfill of DATES, and `dags test` of each date run beside it (the scheduler
    mostly waits)."""
    with ThreadPoolExecutor(1) as pool:
        tested = pool.submit(dags_test_each, reference, "mydata_ingest", DATES, log=tmp_path / "dags-test.log")
        with local_postgres() as db, airflow_stack(settings, db.url, tmp_path / "stack", scheduled_runs=False) as stack:
            stack.wait_for_dag("mydata_ingest")
            created = stack.airflow(["backfill", "create", "--dag-id", "mydata_ingest", "--from-date",
                                     DATES[0].isoformat(), "--to-date", DATES[-1].isoformat(),
                                     "--max-active-runs", "1"])
            assert created.returncode == 0, created.stderr[-3000:]
            runs = stack.wait_for_runs("mydata_ingest", len(DATES))
            task_runs = stack.task_states("mydata_ingest")
            dialect = stack.query("select version()")[0][0]
        reference_run = tested.result()
    return runs, task_runs, dialect, reference_run


@pytest.mark.slow
@pytest.mark.scheduler
def test_scheduler_on_postgres_backfills_ingest_as_dags_test_runs_it(make_landing, spark, same_rows, tmp_path):
    settings, summary = make_landing(tmp_path / "scheduled", subjects=40, months=3, seed=8, defect_rate=0.05,
                                     workers=1)
    redate(settings.lake.landing, summary.deliveries)
    # the scheduler is what this tests: its tasks run on the embedded engine (test_cluster.py runs
    # Spark Connect clients and a standalone cluster); 5% planted defects in 40 subjects: tables of
    # a few rows, far above the default gate of 2%
    settings = settings.replace(engine="duckdb", max_quarantine_rate=0.5)
    reference = settings.replace(data_root=tmp_path / "dags-test")
    shutil.copytree(settings.data_root, reference.data_root)
    runs, task_runs, dialect, tested = backfill_beside_dags_test(settings, reference, tmp_path)

    assert dialect.startswith("PostgreSQL 15")
    assert [(r["logical_date"].date(), r["run_type"], r["state"]) for r in runs] == \
        [(day, "backfill", "success") for day in DATES], runs
    assert sorted((t["task_id"], t["state"]) for t in task_runs) == \
        sorted((task, "success") for task in TASKS for _ in DATES), task_runs
    log = (tmp_path / "dags-test.log").read_text(encoding="utf-8")
    assert tested.returncode == 0, log[-3000:]
    assert "dags test mydata_ingest: 3 of 3 runs succeeded" in log

    for day in DATES:  # one ingest per date, each reconciling its delivery exactly as `dags test`'s did
        scheduled = latest_matching(settings.lake, "ingest", dt=day.isoformat())
        tested_run = latest_matching(reference.lake, "ingest", dt=day.isoformat())
        assert scheduled["outputs"]["reconciliation"] == tested_run["outputs"]["reconciliation"]
        assert list(scheduled["outputs"]["reconciliation"]["bank"]) == [day.isoformat()]
        assert scheduled["quarantined"] == tested_run["quarantined"]
    assert [p.relative_to(settings.data_root) for p in tables(settings)] == \
        [p.relative_to(reference.data_root) for p in tables(reference)]
    rows = {p.name: same_rows(spark, p, reference.data_root / p.relative_to(settings.data_root),
                              roots=(settings.data_root, reference.data_root))
            for p in tables(settings)}
    assert rows["ledger"] == summary.records["consent"]
    assert sum(v for k, v in rows.items() if k != "ledger") > summary.total_records / 2
