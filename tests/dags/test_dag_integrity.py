"""Every DAG file imports cleanly in Airflow's own DagBag, wires only, and switches to spark-submit
when the settings name a cluster."""
import json
import re
from pathlib import Path

import pytest

from mydata.airflow_runner import airflow_env
from mydata.config import PROJECT_ROOT, Settings
from mydata.orchestration import SPARK_CONN_ID
from mydata.spark import JAVA_OPTIONS, JVM_CONF

EXPECTED = {
    "mydata_pipeline": ["inventory_landing", "ingest", "validate", "consent", "fuse", "features", "release",
                        "segment", "score", "purge", "consent_review"],
    "mydata_ingest": ["wait_for_deliveries", "ingest", "validate", "consent_ledger"],
    "mydata_fusion_features": ["fuse", "features", "release"],
    "mydata_segmentation": ["train_if_due", "score"],
    "mydata_consent_purge": ["purge_marketing", "purge_credit_scoring", "purge_analytics"],
    "mydata_collect": ["collect_bank", "collect_card", "collect_telecom"],
}


def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))  # examples are off (conftest)
    assert bag.import_errors == {}
    return bag


def chain(dag) -> list[str]:
    """Task ids in dependency order (every DAG here is a chain or a set of single tasks)."""
    return [t.task_id for t in dag.topological_sort()]


def test_dagbag_loads_every_dag_without_import_errors():
    bag = dagbag()
    assert set(bag.dag_ids) == set(EXPECTED)
    for dag_id, tasks in EXPECTED.items():
        dag = bag.dags[dag_id]  # parsed, not read back from the metadata DB
        doc = (dag.doc_md or "").strip().splitlines()  # a few lines in the UI, the depth in docs/
        pages = re.findall(r"`(docs/[\w/.-]+\.md)`", dag.doc_md or "")
        assert 2 <= len(doc) <= 6 and pages and all((PROJECT_ROOT / p).is_file() for p in pages), dag_id
        assert chain(dag) == tasks
        if dag_id != "mydata_pipeline":  # the embedded demo fails fast; scheduled DAGs retry
            assert all(t.retries == 2 and t.retry_exponential_backoff for t in dag.tasks), dag_id
            assert dag.max_active_runs == 1 and not dag.catchup


def test_schedules_and_assets_connect_the_dags():
    bag = dagbag()
    ingest, fusion, segmentation = (bag.dags[d] for d in ("mydata_ingest", "mydata_fusion_features",
                                                          "mydata_segmentation"))
    assert type(ingest.timetable).__name__ == "CronTriggerTimetable"
    produced = {a.uri for t in ingest.tasks for a in t.outlets}
    assert produced == {"mydata://lake/bronze", "mydata://lake/consent/ledger"}
    assert type(fusion.timetable).__name__ == "AssetOrTimeSchedule"
    assert [a.uri for a in fusion.timetable.asset_condition.objects] == ["mydata://lake/consent/ledger"]
    published = {a.uri for t in fusion.tasks for a in t.outlets}
    assert published == {"mydata://lake/gold/features"}
    assert type(segmentation.timetable).__name__ == "AssetTriggeredTimetable"
    assert [a.uri for a in segmentation.timetable.asset_condition.objects] == ["mydata://lake/gold/features"]
    assert type(bag.dags["mydata_consent_purge"].timetable).__name__ == "DeltaTriggerTimetable"
    sensor = ingest.get_task("wait_for_deliveries")
    assert sensor.mode == "reschedule" and sensor.soft_fail


@pytest.mark.parametrize("master", [None, "spark://127.0.0.1:7077"])
def test_every_stage_task_runs_in_its_lakes_pool_of_one_slot(monkeypatch, tmp_path, master):
    """The scheduler starts one writer of a lake at a time; another lake's tasks have their own pool."""
    from mydata.orchestration import lake_pool, lake_pool_command

    monkeypatch.setenv("MYDATA_DATA_ROOT", str(tmp_path / "lake"))
    if master:
        monkeypatch.setenv("MYDATA_SPARK_MASTER", master)
    else:
        monkeypatch.delenv("MYDATA_SPARK_MASTER", raising=False)
    pool = lake_pool(Settings.load())
    pools = {(dag.dag_id, t.task_id): t.pool for dag in dagbag().dags.values() for t in dag.tasks}
    sensors = {("mydata_ingest", "wait_for_deliveries")}  # reads the landing zone only
    assert {key for key, name in pools.items() if name != pool} == sensors
    assert pool != lake_pool(Settings.load(data_root=tmp_path / "another"))
    assert lake_pool_command(Settings.load())[:4] == ["pools", "set", pool, "1"]


def test_dag_files_hold_no_logic():
    """A DAG file wires: tasks are made by mydata.orchestration.job_task, one call into jobs/ or models/."""
    for path in (PROJECT_ROOT / "dags").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "spark_session(" not in text and ".read." not in text and "Settings(" not in text, path.name
        assert "def " not in text.replace(f"def {path.stem}(", ""), f"{path.name} defines a function"


def test_a_cluster_master_turns_spark_stages_into_spark_submit_of_the_same_modules(monkeypatch, tmp_path):
    monkeypatch.setenv("MYDATA_SPARK_MASTER", "spark://127.0.0.1:7077")
    monkeypatch.setenv("MYDATA_DATA_ROOT", str(tmp_path))
    bag = dagbag()
    fuse = bag.dags["mydata_fusion_features"].get_task("fuse")
    assert type(fuse).__name__ == "SparkSubmitOperator" and fuse._conn_id == SPARK_CONN_ID
    assert Path(fuse.application) == PROJECT_ROOT / "jobs" / "fuse.py"
    assert fuse.env_vars["MYDATA_SPARK_MASTER"] == "spark://127.0.0.1:7077"
    assert fuse.env_vars["MYDATA_DATA_ROOT"] == str(tmp_path) and "{{" in fuse.env_vars["MYDATA_AS_OF"]
    # spark-submit starts the driver JVM: its options and JVM-wide settings are in the submit
    assert fuse.conf["spark.driver.extraJavaOptions"] == JAVA_OPTIONS and JVM_CONF.items() <= fuse.conf.items()
    for dag in bag.dags.values():
        for t in dag.tasks:
            if type(t).__name__ == "SparkSubmitOperator":
                assert Path(t.application).is_file() and '__name__ == "__main__"' in Path(t.application).read_text()
    training = bag.dags["mydata_segmentation"].get_task("train_if_due")
    assert type(training).__name__ != "SparkSubmitOperator"  # scikit-learn, not Spark
    env = airflow_env(Settings.load())
    connection = json.loads(env[f"AIRFLOW_CONN_{SPARK_CONN_ID.upper()}"])
    assert (connection["conn_type"], connection["host"], connection["port"]) == ("spark", "127.0.0.1", 7077)


@pytest.mark.parametrize("master", [None, "sc://127.0.0.1:15002"])
def test_local_mode_and_a_spark_connect_server_run_stages_in_process(monkeypatch, master):
    """Local mode, or a Spark Connect server whose clients the in-process tasks are: no spark-submit."""
    if master:
        monkeypatch.setenv("MYDATA_SPARK_MASTER", master)
    else:
        monkeypatch.delenv("MYDATA_SPARK_MASTER", raising=False)
    bag = dagbag()
    assert {type(t).__name__ for t in bag.dags["mydata_fusion_features"].tasks} == {"_PythonDecoratedOperator"}
    assert f"AIRFLOW_CONN_{SPARK_CONN_ID.upper()}" not in airflow_env(Settings.load())
    assert Settings.load().spark_connect == bool(master)


@pytest.mark.parametrize("params,logical,expected_as_of,expected_dt", [
    ({}, "2026-08-01T00:00:00+00:00", "2026-08-01", "2026-08-01"),
    ({"as_of": "2026-07-01", "dt": "2026-06-01"}, "2026-08-01T00:00:00+00:00", "2026-07-01", "2026-06-01"),
])
def test_run_settings_take_the_params_then_the_logical_date(params, logical, expected_as_of, expected_dt):
    from datetime import datetime

    from mydata.orchestration import run_settings

    settings = run_settings(params, datetime.fromisoformat(logical), as_of=True, dt=True, purpose="analytics")
    assert (settings.as_of.isoformat(), settings.delivery_date.isoformat(), settings.purpose) == \
        (expected_as_of, expected_dt, "analytics")
    assert run_settings({}, datetime.fromisoformat(logical), dt="param").delivery_date is None
