"""A real Airflow 3 deployment on this machine, without Docker: a throwaway PostgreSQL cluster on
127.0.0.1 as the metadata DB, and the api-server (which also serves the execution API that task
processes report to), the dag-processor and the scheduler (LocalExecutor) as processes.

What the system tests run backfills on, and a way to try the scheduler path locally:

    with local_postgres() as db, airflow_stack(settings, db.url, Path("var/stack")) as stack:
        stack.airflow(["backfill", "create", "--dag-id", "mydata_ingest", ...])
        stack.wait_for_runs("mydata_ingest", 3)

Every component gets ``airflow_env(settings)``, the environment ``dags test`` and the demo use,
with the DB, executor and execution-API address on top. The JWT secret the scheduler and the
api-server share is generated per stack and lives only in their environment. Logs go to
``<work_dir>/logs`` (one file per component) and the Airflow home's task logs.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mydata.airflow_runner import airflow_bin, airflow_env
from mydata.config import Settings
from mydata.devtools.cluster import free_port
from mydata.orchestration import lake_pool_command

PG_VERSION_DIRS = Path("/usr/lib/postgresql")
#: what a finished run of each kind looks like in Airflow's metadata DB
FINISHED = ("success", "failed")


class StackError(RuntimeError):
    """A component did not come up or a wait ran out; the message names the log to read."""


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return ""


# -- PostgreSQL ----------------------------------------------------------------------------------

def pg_bin() -> Path:
    """The PostgreSQL server binaries: ``MYDATA_PG_BIN``, else the newest Debian install."""
    if os.environ.get("MYDATA_PG_BIN"):
        return Path(os.environ["MYDATA_PG_BIN"])
    versions = sorted((p for p in PG_VERSION_DIRS.glob("*/bin") if (p / "initdb").exists()),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if not versions:
        raise StackError(f"no PostgreSQL server binaries under {PG_VERSION_DIRS} (set MYDATA_PG_BIN)")
    return versions[-1]


@dataclass
class LocalPostgres:
    url: str
    port: int
    directory: Path
    run_as: list[str]

    @property
    def log(self) -> Path:
        return self.directory / "postgres.log"

    def stop(self) -> None:
        subprocess.run([*self.run_as, str(pg_bin() / "pg_ctl"), "-D", str(self.directory / "data"),
                        "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_postgres(database: str = "airflow", user: str = "airflow") -> LocalPostgres:
    """A fresh cluster listening on 127.0.0.1 only, trust authentication (loopback, throwaway: no
    password to keep), fsync off. PostgreSQL refuses to run as root, so as root it runs as the
    ``postgres`` system user in a directory that user owns."""
    directory = Path(tempfile.mkdtemp(prefix="mydata-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    pg = LocalPostgres(f"postgresql+psycopg2://{user}@127.0.0.1:{port}/{database}", port, directory, run_as)
    bin_dir = pg_bin()
    steps = [
        [str(bin_dir / "initdb"), "-D", str(directory / "data"), "-U", user, "--auth=trust",
         "-E", "UTF8", "--locale=C.UTF-8"],
        [str(bin_dir / "pg_ctl"), "-D", str(directory / "data"), "-l", str(pg.log), "-w", "-t", "60",
         "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {directory} -c fsync=off "
               f"-c synchronous_commit=off -c full_page_writes=off", "start"],
        [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, database],
    ]
    for step in steps:
        done = subprocess.run([*run_as, *step], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            pg.stop()
            raise StackError(f"{Path(step[0]).name} failed (exit {done.returncode}): "
                             f"{(done.stderr or done.stdout)[-1500:]} {_tail(pg.log, 1500)}")
    return pg


@contextmanager
def local_postgres(database: str = "airflow") -> Iterator[LocalPostgres]:
    pg = start_postgres(database)
    try:
        yield pg
    finally:
        pg.stop()


# -- Airflow -------------------------------------------------------------------------------------

@dataclass
class AirflowStack:
    env: dict[str, str]
    sql_alchemy_conn: str
    api_url: str
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def airflow(self, args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
        """``airflow <args>`` against this stack's DB, output captured."""
        return subprocess.run([airflow_bin(), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def query(self, sql: str, *params) -> list[tuple]:
        """Read Airflow's metadata DB directly (cheaper than a CLI process per poll)."""
        import psycopg2

        dsn = self.sql_alchemy_conn.replace("postgresql+psycopg2://", "postgresql://")
        with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise StackError(f"airflow {name} exited with {process.returncode}; "
                                 f"see {self.logs / (name + '.log')}:\n{_tail(self.logs / (name + '.log'))}")

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        """Until the dag-processor has serialized ``dag_id`` (a backfill needs it)."""
        deadline = time.monotonic() + timeout
        while not self.query("select 1 from serialized_dag where dag_id = %s", dag_id):
            self.check_alive()
            if time.monotonic() > deadline:
                raise StackError(f"{dag_id} was not parsed in {timeout:.0f}s; see {self.logs / 'dag-processor.log'}")
            time.sleep(1)

    def dag_runs(self, dag_id: str) -> list[dict]:
        rows = self.query("select run_id, run_type, logical_date, state from dag_run where dag_id = %s "
                          "order by logical_date", dag_id)
        return [dict(zip(("run_id", "run_type", "logical_date", "state"), row)) for row in rows]

    def task_states(self, dag_id: str) -> list[dict]:
        rows = self.query("select run_id, task_id, state, try_number from task_instance where dag_id = %s "
                          "order by run_id, task_id", dag_id)
        return [dict(zip(("run_id", "task_id", "state", "try_number"), row)) for row in rows]

    def wait_for_runs(self, dag_id: str, count: int, timeout: float = 900) -> list[dict]:
        """Until ``count`` runs of ``dag_id`` have finished (success or failed); returns every run."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.dag_runs(dag_id)
            if len(runs) >= count and all(r["state"] in FINISHED for r in runs):
                return runs
            self.check_alive()
            if time.monotonic() > deadline:
                raise StackError(f"{dag_id}: runs not finished in {timeout:.0f}s: {runs}; "
                                 f"see {self.logs / 'scheduler.log'}")
            time.sleep(2)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()


def stack_env(settings: Settings, sql_alchemy_conn: str, api_port: int, scheduled_runs: bool = True) -> dict[str, str]:
    """``airflow_env`` plus what a multi-process Airflow 3 needs: the shared DB, LocalExecutor,
    where the execution API is, and one JWT secret for the components that sign and check tokens.
    With ``scheduled_runs`` off the scheduler creates no runs from schedules: only backfills,
    triggers and asset events (a test's clock is not the data's)."""
    env = airflow_env(settings, {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn})
    env.update({
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",  # the machine's cores; a Spark job per task
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(scheduled_runs),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        # parse the DAG files once at start, then rarely: the tasks, not the parser, need the cores
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
    })
    return env


def start_stack(settings: Settings, sql_alchemy_conn: str, work_dir: Path, scheduled_runs: bool = True,
                timeout: float = 180) -> AirflowStack:
    """Migrate the DB, then start the api-server, dag-processor and scheduler; wait for the API."""
    logs = work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    settings.lake.airflow_home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    stack = AirflowStack(stack_env(settings, sql_alchemy_conn, port, scheduled_runs), sql_alchemy_conn,
                         f"http://127.0.0.1:{port}", logs)
    migrated = stack.airflow(["db", "migrate"], timeout=timeout)
    (logs / "db-migrate.log").write_text(migrated.stdout + migrated.stderr, encoding="utf-8")
    if migrated.returncode != 0:
        raise StackError(f"airflow db migrate failed (exit {migrated.returncode}); see {logs / 'db-migrate.log'}")
    pooled = stack.airflow(lake_pool_command(settings), timeout=timeout)
    (logs / "pools-set.log").write_text(pooled.stdout + pooled.stderr, encoding="utf-8")
    if pooled.returncode != 0:
        raise StackError(f"airflow pools set failed (exit {pooled.returncode}); see {logs / 'pools-set.log'}")
    _start(stack, {"api-server": ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                   "dag-processor": ["dag-processor"], "scheduler": ["scheduler"]}, timeout)
    return stack


def _start(stack: AirflowStack, commands: dict[str, list[str]], timeout: float) -> None:
    """Start each ``airflow <command>`` in its own session, logging to ``<logs>/<name>.log``, and
    wait until the api-server answers."""
    try:
        for name, args in commands.items():
            handle = open(stack.logs / f"{name}.log", "wb")  # noqa: SIM115 - the process owns it
            stack.processes[name] = subprocess.Popen([airflow_bin(), *args], env=stack.env, stdout=handle,
                                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{stack.api_url}/api/v2/monitor/health", timeout=5):  # noqa: S310
                    break
            except OSError as exc:
                stack.check_alive()
                if time.monotonic() > deadline:
                    raise StackError(f"the api-server did not answer in {timeout:.0f}s; "
                                     f"see {stack.logs / 'api-server.log'}") from exc
                time.sleep(1)
    except BaseException:
        stack.stop()
        raise


@contextmanager
def airflow_stack(settings: Settings, sql_alchemy_conn: str, work_dir: Path,
                  scheduled_runs: bool = True) -> Iterator[AirflowStack]:
    stack = start_stack(settings, sql_alchemy_conn, work_dir, scheduled_runs)
    try:
        yield stack
    finally:
        stack.stop()


# -- the UI on the embedded home -------------------------------------------------------------------

UI_USER = "admin"


def ui_password_file(settings: Settings) -> Path:
    return settings.lake.airflow_home / "simple_auth_manager_passwords.json.generated"


def ui_login(settings: Settings) -> tuple[str, str]:
    """The UI's user and password. The password is made here once, into a file only its owner
    reads, so Airflow never generates one (it would print it into its log)."""
    path = ui_password_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as out:
            json.dump({UI_USER: secrets.token_urlsafe(12)}, out)
    return UI_USER, json.loads(path.read_text(encoding="utf-8"))[UI_USER]


def start_ui(settings: Settings, port: int = 8080, timeout: float = 180) -> AirflowStack:
    """Airflow's api-server (the UI and the REST API) on the embedded home (the demo's SQLite DB and
    task logs) at 127.0.0.1:``port``, every DAG file parsed first so all of them are listed."""
    from mydata.airflow_runner import ensure_db

    with socket.socket() as probe:  # a clear word now, not a traceback in the server's log later
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise StackError(f"127.0.0.1:{port} is already in use (another Airflow UI?); choose another with --port")
    logs = settings.lake.airflow_home / "logs" / "ui"
    logs.mkdir(parents=True, exist_ok=True)
    ensure_db(settings, logs / "db-migrate.log")
    ui_login(settings)
    env = airflow_env(settings)
    env.update({"AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(port),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{UI_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(ui_password_file(settings))})
    stack = AirflowStack(env, env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], f"http://127.0.0.1:{port}", logs)
    parsed = stack.airflow(["dags", "reserialize"], timeout=timeout)
    (logs / "dags-reserialize.log").write_text(parsed.stdout + parsed.stderr, encoding="utf-8")
    if parsed.returncode != 0:
        raise StackError(f"airflow dags reserialize failed (exit {parsed.returncode}); "
                         f"see {logs / 'dags-reserialize.log'}")
    _start(stack, {"api-server": ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]},
           timeout)
    return stack
