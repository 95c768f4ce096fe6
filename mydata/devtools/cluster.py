"""Long-running Spark from pyspark's own distribution, bound to 127.0.0.1: a standalone cluster,
and a Spark Connect server.

What the system tests run the jobs on, and a way to try both paths without Docker:

    with standalone_cluster(Path("var/cluster"), workers=2) as cluster:
        env = settings.replace(spark_master=cluster.master_url).as_env()   # then run any job
    with connect_server(Path("var/connect")) as server:
        env = settings.replace(spark_master=server.url).as_env()           # jobs become its clients

The master and each worker are the JVM daemons of ``spark-class``, the Connect server a
``spark-submit`` of Spark's own ``SparkConnectServer``; their logs go to ``<work_dir>/logs``.
Startup waits until the master's status page lists every worker ALIVE, or until the Connect
server accepts connections.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


class ClusterError(RuntimeError):
    """The cluster did not come up; the message names the log to read."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spark_bin(name: str = "spark-class") -> Path:
    from pyspark.find_spark_home import _find_spark_home

    return Path(_find_spark_home()) / "bin" / name


@dataclass
class StandaloneCluster:
    master_url: str
    status_url: str
    work_dir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def status(self) -> dict:
        with urllib.request.urlopen(self.status_url, timeout=5) as response:  # noqa: S310 - loopback only
            return json.loads(response.read())

    def alive_workers(self) -> int:
        try:
            return sum(1 for w in self.status().get("workers", []) if w.get("state") == "ALIVE")
        except OSError:
            return 0

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            _reap(process, timeout=20)


def _reap(process: subprocess.Popen, timeout: float) -> None:
    """Wait for a terminated daemon; kill it when it does not exit in ``timeout`` seconds."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _spark_env(logs: Path) -> dict[str, str]:
    from mydata.config import PROJECT_ROOT

    return {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(logs), "SPARK_NO_DAEMONIZE": "1",
            "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}


def _daemon(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    handle = open(log, "wb")  # noqa: SIM115 - the process owns it
    return subprocess.Popen([str(spark_bin()), *args], stdout=handle, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def start(work_dir: Path, workers: int = 2, cores: int = 1, memory: str = "1g",
          timeout: float = 90.0) -> StandaloneCluster:
    """A master and ``workers`` workers (``cores`` and ``memory`` each) on 127.0.0.1."""
    logs = work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = _spark_env(logs)
    port, web = free_port(), free_port()
    cluster = StandaloneCluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{web}/json/", work_dir)
    cluster.processes.append(_daemon(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                      "--port", str(port), "--webui-port", str(web)], logs / "master.log", env))
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                cluster.status()
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise ClusterError(f"the Spark master did not start in {timeout:.0f}s; see {logs / 'master.log'}")
        for n in range(workers):
            cluster.processes.append(_daemon(
                ["org.apache.spark.deploy.worker.Worker", cluster.master_url, "--host", "127.0.0.1",
                 "--cores", str(cores), "--memory", memory, "--webui-port", str(free_port()),
                 "--work-dir", str(work_dir / f"worker-{n + 1}")], logs / f"worker-{n + 1}.log", env))
        while cluster.alive_workers() < workers:
            if time.monotonic() > deadline:
                raise ClusterError(f"only {cluster.alive_workers()} of {workers} workers registered in "
                                   f"{timeout:.0f}s; see {logs}")
            time.sleep(0.5)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextmanager
def standalone_cluster(work_dir: Path, workers: int = 2, cores: int = 1, memory: str = "1g") -> Iterator[StandaloneCluster]:
    cluster = start(work_dir, workers, cores, memory)
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass
class ConnectServer:
    url: str
    work_dir: Path
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        _reap(self.process, timeout=30)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start_connect(work_dir: Path, master: str = "local[*]", driver_memory: str = "4g",
                  timeout: float = 120.0) -> ConnectServer:
    """A Spark Connect server on 127.0.0.1 running its jobs on ``master`` (local mode by default)."""
    from mydata.spark import JVM_CONF, connect_service_conf

    logs = work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = {**connect_service_conf(port), "spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1",
            "spark.pyspark.python": sys.executable, "spark.executorEnv.PYSPARK_PYTHON": sys.executable,
            "spark.ui.enabled": "false", "spark.sql.warehouse.dir": str(work_dir / "spark-warehouse"), **JVM_CONF}
    args = [str(spark_bin("spark-submit")), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--name", "mydata-connect", "--master", master, "--driver-memory", driver_memory,
            *[item for key, value in conf.items() for item in ("--conf", f"{key}={value}")]]
    handle = open(logs / "connect-server.log", "wb")  # noqa: SIM115 - the process owns it
    process = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, env=_spark_env(logs),
                               cwd=work_dir, start_new_session=True)
    server = ConnectServer(f"sc://127.0.0.1:{port}", work_dir, process)
    deadline = time.monotonic() + timeout
    while not _accepts(port):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise ClusterError(f"the Spark Connect server did not start in {timeout:.0f}s; "
                               f"see {logs / 'connect-server.log'}")
        time.sleep(0.5)
    return server


@contextmanager
def connect_server(work_dir: Path, master: str = "local[*]", driver_memory: str = "4g") -> Iterator[ConnectServer]:
    server = start_connect(work_dir, master, driver_memory)
    try:
        yield server
    finally:
        server.stop()
