"""Run Airflow's CLI against the project's embedded Airflow home (SQLite, no example DAGs).

One place builds Airflow's environment, so the demo, the tests and a data engineer's shell
(``mydata airflow -- <airflow args>``) all see the same DAGs, metadata DB and settings.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

from mydata import progress
from mydata.config import Settings
from mydata.orchestration import SPARK_CONN_ID, lake_pool_command, spark_connection, uses_cluster


def airflow_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    home = settings.lake.airflow_home
    env = dict(os.environ if base is None else base)
    env.update(settings.as_env())
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": env.get(
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}"),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(settings.dags_folder.parent),
                                                    env.get("PYTHONPATH", "")])),
        # spark-submit (pyspark's own, in the venv) for tasks that run on a cluster
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    })
    if uses_cluster(settings):
        env[f"AIRFLOW_CONN_{SPARK_CONN_ID.upper()}"] = spark_connection(settings.spark_master)
    return env


def airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def run_airflow(settings: Settings, args: list[str], log: Path | None = None,
                timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ``airflow <args>``; output goes to ``log`` when given (it is long), else is captured."""
    return _run(settings, [airflow_bin(), *args], f"airflow {' '.join(args)}", log, timeout)


def _run(settings: Settings, command: list[str], shown: str, log: Path | None,
         timeout: float | None = None, follow: RunProgress | None = None) -> subprocess.CompletedProcess:
    """Run ``command`` in Airflow's environment; output to ``log`` (after ``$ shown``), else captured.
    ``follow``: told each line the command adds to ``log`` while it runs."""
    env = airflow_env(settings)
    settings.lake.airflow_home.mkdir(parents=True, exist_ok=True)
    if log is None:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"\n$ {shown}\n")
        handle.flush()
        if follow is None:
            return subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT, text=True,
                                  timeout=timeout)
        with open(log, encoding="utf-8", errors="replace") as reading:
            reading.seek(0, os.SEEK_END)
            process = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT, text=True)
            deadline = time.monotonic() + timeout if timeout else None
            while process.poll() is None:
                if deadline and time.monotonic() > deadline:
                    process.kill()
                    raise subprocess.TimeoutExpired(command, timeout)
                time.sleep(0.5)
                follow.lines(reading.readlines())
            follow.lines(reading.readlines())
        return subprocess.CompletedProcess(command, process.returncode)


_TASK = re.compile(r"\[DAG TEST\] (starting|end task) task_id=(\S+)")
_STATE = re.compile(r"Task instance state updated .*new_state=(\w+)")
_PROGRESS = re.compile(rf"{progress.MARK} (.+?)\s+\[{re.escape(progress.LOGGER.name)}\]")


def _logged_at(line: str) -> datetime | None:
    """The time an Airflow log line starts with (``2026-11-30T23:48:16.042967Z``), if it has one."""
    try:
        return datetime.fromisoformat(line.split(" ", 1)[0])
    except ValueError:
        return None


class RunProgress:
    """A DAG run as its log tells it: each task a step on ``display`` (its state and the log's own
    times at the end), the stages' progress lines relayed, and on a plain display a line at least
    every ``every`` seconds while nothing else is said (a live display shows time by itself)."""

    def __init__(self, display: progress.Display, every: float = 10.0) -> None:
        self.display, self.every = display, every
        self.task: progress.Step | None = None
        self.state = ""
        self.logged: datetime | None = None  # when the log says the running task started
        self.started = self.said = time.monotonic()

    def lines(self, lines: list[str]) -> None:
        for line in lines:
            if found := _STATE.search(line):
                self.state = found.group(1)
            elif found := _TASK.search(line):
                self._task(found.group(1) == "starting", found.group(2), _logged_at(line))
            elif found := _PROGRESS.search(line):
                self._say(f"  {found.group(1)}")
        if not self.display.live and time.monotonic() - self.said >= self.every:
            # Airflow's own start, before any task, takes a while too
            doing = f"{self.task.label} running" if self.task else "between tasks" if self.state else "starting the run"
            self._say(f"airflow:   {doing}, {time.monotonic() - self.started:.0f}s")

    def _task(self, starting: bool, task: str, at: datetime | None) -> None:
        if starting:
            self.task, self.state, self.started, self.logged = progress.Step("airflow", task), "", time.monotonic(), at
            self.display.begin(self.task)
            if not self.display.live:
                self._say(f"airflow: {task} started")
        elif self.task is not None:  # the log's own times, when it has them: the log is read every half second
            took = (at - self.logged).total_seconds() if at and self.logged else time.monotonic() - self.started
            self.task.ended = self.task.started + took
            self.task.failed, self.task.outcome = self.state == "failed", "" if self.state == "failed" else self.state or "ended"
            self.display.end(self.task)
            self.task, self.said = None, time.monotonic()

    def _say(self, text: str) -> None:
        self.display.note(text)
        self.said = time.monotonic()


def ensure_db(settings: Settings, log: Path | None = None) -> None:
    db = settings.lake.airflow_home / "airflow.db"
    if db.exists():
        return
    for step in (["db", "migrate"], lake_pool_command(settings)):  # the lake's pool before any DAG runs
        result = run_airflow(settings, step, log=log)
        if result.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(step[:2])} failed (exit {result.returncode}); see {log}")


def dags_test(settings: Settings, dag_id: str, logical_date: date, conf: dict | None = None,
              log: Path | None = None, follow: RunProgress | None = None) -> subprocess.CompletedProcess:
    """``airflow dags test``: one real DAG run, tasks executed in this machine's Airflow; ``follow``
    (with a ``log``) reports its tasks as they run."""
    ensure_db(settings, log)
    args = ["dags", "test", dag_id, logical_date.isoformat()]
    if conf:
        args += ["--conf", json.dumps(conf)]
    before = log.stat().st_size if log is not None and log.exists() else 0
    result = _run(settings, [airflow_bin(), *args], f"airflow {' '.join(args)}", log, follow=follow)
    if log is not None:
        with open(log, encoding="utf-8", errors="replace") as reading:
            reading.seek(before)
            file_task_logs(settings, dag_id, reading.read())
    return result


_RUN_OF_TASK = re.compile(r"\[DAG TEST\] running task <TaskInstance: [^.\s]+\.(\S+) (\S+) \[")


def file_task_logs(settings: Settings, dag_id: str, text: str) -> list[Path]:
    """``dags test`` runs every task in its own process and leaves no task log files: each task's
    lines of the run's log are filed where the Airflow UI reads a task's log (attempt 1)."""
    written, lines, task, run_id = [], [], None, None
    for line in text.splitlines(keepends=True):
        if found := _TASK.search(line):
            if found.group(1) == "starting":
                task, lines = found.group(2), []
            elif task == found.group(2) and run_id:
                path = (settings.lake.airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
                        / f"task_id={task}" / "attempt=1.log")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join([*lines, line]), encoding="utf-8")
                written.append(path)
                task = None
        elif found := _RUN_OF_TASK.search(line):
            run_id = found.group(2)
        if task is not None:
            lines.append(line)
    return written


def dags_test_each(settings: Settings, dag_id: str, logical_dates: list[date],
                   log: Path | None = None) -> subprocess.CompletedProcess:
    """``airflow dags test`` of each date in turn, in one Airflow process: the CLI's own parser
    and command per date, so Airflow's start (about 25 s here, most of it its in-process
    execution API) is paid once, not per date. Fails (exit 1) when any date's run failed."""
    ensure_db(settings, log)
    days = [d.isoformat() for d in logical_dates]
    return _run(settings, [sys.executable, "-m", "mydata.airflow_runner", dag_id, *days],
                f"airflow dags test {dag_id} (each of {', '.join(days)})", log)


def _dags_test_each(dag_id: str, logical_dates: list[str]) -> int:
    from airflow.cli import cli_parser

    parser = cli_parser.get_parser()
    failed = []
    for day in logical_dates:
        args = parser.parse_args(["dags", "test", dag_id, day])
        try:
            args.func(args)
        except SystemExit as exit_:  # the command's way of saying the run failed
            if exit_.code:
                failed.append(day)
    print(f"dags test {dag_id}: {len(logical_dates) - len(failed)} of {len(logical_dates)} runs succeeded"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":  # dags_test_each's Airflow process
    sys.exit(_dags_test_each(sys.argv[1], sys.argv[2:]))
