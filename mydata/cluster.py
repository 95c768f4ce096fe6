"""A Spark standalone cluster from pyspark's own distribution, bound to 127.0.0.1.

What the system tests run the jobs on, and a way to try the cluster path without Docker:

    with standalone_cluster(Path("var/cluster"), workers=2) as cluster:
        env = settings.replace(spark_master=cluster.master_url).as_env()   # then run any job

The master and each worker are the JVM daemons of ``spark-class``; their logs go to
``<work_dir>/logs``. Startup waits until the master's status page lists every worker ALIVE.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator


class ClusterError(RuntimeError):
    """The cluster did not come up; the message names the log to read."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spark_class() -> Path:
    from pyspark.find_spark_home import _find_spark_home

    return Path(_find_spark_home()) / "bin" / "spark-class"


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
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _daemon(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    handle = open(log, "wb")  # noqa: SIM115 - the process owns it
    return subprocess.Popen([str(spark_class()), *args], stdout=handle, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def start(work_dir: Path, workers: int = 2, cores: int = 1, memory: str = "1g",
          timeout: float = 90.0) -> StandaloneCluster:
    """A master and ``workers`` workers (``cores`` and ``memory`` each) on 127.0.0.1."""
    logs = work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(logs),
           "PYSPARK_PYTHON": sys.executable, "SPARK_NO_DAEMONIZE": "1"}
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
