"""Following a DAG run: task starts and ends from its log, the stages' progress relayed, and a line
while nothing else is said."""
from mydata import progress
from mydata.airflow_runner import RunProgress

START = ("2026-11-30T23:48:16.042967Z [info     ] [DAG TEST] starting task_id=ingest map_index=-1 "
         "[airflow.sdk.definitions.dag] loc=dag.py:1501\n")
STEP = ("2026-11-30T23:48:19.000000Z [info     ] progress: ingest card: 6/6 files, 1,234 rows in 2.0s "
        "(617 rows/s) [mydata.progress] loc=progress.py:120\n")
STATE = ("2026-11-30T23:48:20.100000Z [info     ] Task instance state updated    [airflow.api_fastapi] "
         "correlation_id=x loc=task_instances.py:485 new_state={state} rows_affected=1 ti_id=y\n")
END = ("2026-11-30T23:48:20.242967Z [info     ] [DAG TEST] end task task_id=ingest map_index=-1 "
       "[airflow.sdk.definitions.dag] loc=dag.py:1563\n")


def test_tasks_are_told_as_they_start_and_end_with_the_logs_own_times():
    said: list[str] = []
    follower = RunProgress(progress.LineDisplay(said.append), every=3600)
    follower.lines(["2026-11-30T23:48:15Z [info] some other line\n", START])
    follower.lines([STEP, STATE.format(state="success"), END])
    assert said == ["airflow: ingest started", "  ingest card: 6/6 files, 1,234 rows in 2.0s (617 rows/s)",
                    "airflow ingest: success in 4.2s"]
    follower.lines([START, STATE.format(state="failed"), END])
    assert said[-1] == "airflow ingest: FAILED after 4.2s"


def test_a_line_comes_while_nothing_else_is_said():
    said: list[str] = []
    follower = RunProgress(progress.LineDisplay(said.append), every=0)
    follower.lines([])
    assert said == ["airflow:   starting the run, 0s"]
    follower.lines([START])
    assert said[1:] == ["airflow: ingest started", "airflow:   ingest running, 0s"]
