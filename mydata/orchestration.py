"""What every DAG file shares, so that a DAG file only wires.

- ``run_settings``: the one way a task turns its run (params, logical date) into ``Settings``.
- ``job_task``: the one switch between Spark in the task's own process (local mode, the default)
  and ``spark-submit`` to a cluster. When ``MYDATA_SPARK_MASTER`` names a cluster
  (``spark://…``), Spark jobs become ``SparkSubmitOperator`` tasks that run the very same job
  module's ``__main__`` (which reads the same ``MYDATA_*`` settings); otherwise a Python task
  calls the job's ``run()``, on a Spark of its own (local mode) or as a client of a shared Spark
  Connect server (``sc://…``, no JVM per task). Either way the job code is the same.
- ``DEFAULT_ARGS``: retries with backoff; a rerun replaces what a failed try wrote, so retrying
  is always safe.
- ``lake_pool``: every stage task runs in its lake's pool of one slot, so the scheduler starts
  one writer at a time rather than tasks that would only wait for the lake lock.
"""
from __future__ import annotations

import hashlib
import importlib
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from mydata.config import PROJECT_ROOT, Settings

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "data-engineering",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=15),
}
#: the Airflow connection spark-submit tasks use; ``mydata.airflow_runner`` derives it from the settings
SPARK_CONN_ID = "mydata_spark"
#: what the DAGs produce and consume (data-aware scheduling): URIs name lake zones, not files
BRONZE = "mydata://lake/bronze"
CONSENT_LEDGER = "mydata://lake/consent/ledger"
GOLD_FEATURES = "mydata://lake/gold/features"
GOLD_SEGMENTS = "mydata://lake/gold/segments"


def lake_pool(settings: Settings) -> str:
    """The Airflow pool of the lake at the settings' data root: one per lake, one slot."""
    return "mydata_lake_" + hashlib.sha256(str(settings.data_root).encode()).hexdigest()[:12]


def lake_pool_command(settings: Settings) -> list[str]:
    """``airflow pools set …`` for the lake's pool (idempotent: it creates or updates it)."""
    return ["pools", "set", lake_pool(settings), "1", f"one writer at a time on the lake {settings.data_root}"]


def _day(value: Any) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def run_settings(params: dict | None = None, logical_date: Any = None, *, as_of: bool = False,
                 dt: bool | str = False, purpose: str | None = None) -> Settings:
    """Settings for one task of one run: the environment's, then ``purpose`` or the run's; with
    ``as_of`` the run's ``as_of`` param or else its logical date; with ``dt`` the ``dt`` param or
    else the logical date (daily ingest: one delivery date per run); with ``dt="param"`` only the
    param (empty: every delivery). An asset-triggered run has no logical date: pass its
    ``run_after`` instead."""
    params = params or {}
    overrides: dict[str, Any] = {"purpose": purpose or params.get("purpose") or None}
    if as_of:
        overrides["as_of"] = _day(params.get("as_of")) or _day(logical_date)
    if dt:
        overrides["delivery_date"] = _day(params.get("dt")) or (None if dt == "param" else _day(logical_date))
    return Settings.load(**overrides)


def call_job(module: str, params: dict | None = None, logical_date: Any = None, *, as_of: bool = False,
             dt: bool | str = False, purpose: str | None = None, function: str = "run",
             from_params: tuple[str, ...] = (), arguments: dict[str, Any] | None = None) -> dict:
    """``<module>.<function>(settings, **arguments, **{name: params[name] for name in from_params})``
    in this process."""
    job = importlib.import_module(module)
    params = params or {}
    kwargs = {**(arguments or {}), **{name: params[name] for name in from_params if name in params}}
    settings = run_settings(params, logical_date, as_of=as_of, dt=dt, purpose=purpose)
    settings.restrict_new_files()
    return dict(getattr(job, function)(settings, **kwargs))  # a stage's result, as XCom stores it


def uses_cluster(settings: Settings | None = None) -> bool:
    """Spark stages are spark-submitted: the master is a cluster, not local mode nor a Spark Connect
    server (whose clients are the in-process tasks themselves)."""
    settings = settings or Settings.load()
    return not (settings.spark_master.startswith("local") or settings.spark_connect)


def spark_connection(master: str) -> str:
    """The Airflow connection (JSON form) for a ``spark://host:port`` master, client deploy mode."""
    if not master.startswith("spark://"):
        raise ValueError(f"a cluster master looks like spark://host:7077, got {master!r}")
    host, _, port = master[len("spark://"):].partition(":")
    return json.dumps({"conn_type": "spark", "host": host, "port": int(port or 7077),
                       "extra": {"deploy-mode": "client", "spark-binary": "spark-submit"}})


def job_script(module: str) -> Path:
    """The file spark-submit runs for a job module: the module, or its package's ``__main__``."""
    path = PROJECT_ROOT / module.replace(".", "/")
    return path / "__main__.py" if path.is_dir() else path.with_suffix(".py")


def job_task(task_id: str, module: str, *, as_of: bool = False, dt: bool | str = False, purpose: str | None = None,
             spark: bool = True, function: str = "run", from_params: tuple[str, ...] = (),
             arguments: dict[str, Any] | None = None, run_of: tuple[str, str] | None = None, **task_kwargs: Any):
    """One pipeline stage as a task: in-process, or spark-submit when the settings name a cluster
    and the stage is a Spark job (``spark``; training is scikit-learn and always runs in-process).
    ``run_of``: (argument, upstream task) — the argument is the run id the upstream task returned,
    so a stage checks its own run's output, not whichever run is newest."""
    settings = Settings.load()
    task_kwargs.setdefault("pool", lake_pool(settings))  # every stage task writes the lake
    if spark and uses_cluster(settings):
        from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

        from mydata.spark import JVM_CONF

        env = {**settings.as_env(), "PYTHONPATH": str(PROJECT_ROOT)}
        if as_of:
            env["MYDATA_AS_OF"] = "{{ params.as_of or ds }}"
        if dt:
            env["MYDATA_DT"] = "{{ params.dt }}" if dt == "param" else "{{ params.dt or ds }}"
        env["MYDATA_PURPOSE"] = purpose or "{{ params.purpose or '" + settings.purpose + "' }}"
        return SparkSubmitOperator(
            task_id=task_id, conn_id=SPARK_CONN_ID, application=str(job_script(module)),
            name=f"mydata-{task_id}", env_vars=env, driver_memory=settings.driver_memory,
            # the driver JVM starts before the job's SparkSession exists: its JVM-wide settings go here
            conf={**JVM_CONF, "spark.executorEnv.PYTHONPATH": str(PROJECT_ROOT)}, **task_kwargs)

    from airflow.sdk import task

    @task(task_id=task_id, **task_kwargs)
    def in_process(params=None, logical_date=None, dag_run=None, ti=None) -> dict:
        when = logical_date or (dag_run.run_after if dag_run is not None else None)
        given = dict(arguments or {})
        if run_of is not None and ti is not None:
            upstream = ti.xcom_pull(task_ids=run_of[1]) or {}
            given[run_of[0]] = upstream.get("run_id")
        return call_job(module, params, when, as_of=as_of, dt=dt, purpose=purpose, function=function,
                        from_params=from_params, arguments=given)

    return in_process()
