"""The one SparkSession factory.

Local mode by default; any master URL from the settings (a standalone cluster, say). Workers must
run this interpreter (the venv's), so PYSPARK_PYTHON is pinned to it before the JVM starts.
Session time zone is KST: every landing time is Korea Standard Time.

With ``sc://host:port`` as the master the session is a Spark Connect client of a long-running
server (``mydata.devtools.cluster.connect_server``): a task then starts no JVM of its own and runs on a warm
one, which is most of a small run's cost. The server owns the JVM-wide settings; the session ones
(time zone, shuffle partitions, overwrite mode, codec) are set per client session.
"""
from __future__ import annotations

import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pyspark.sql import SparkSession

from mydata.config import SESSION_TIME_ZONE, Settings

LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")


#: every JVM this project starts (drivers, executors, a Connect server) logs and keeps time alike
JAVA_OPTIONS = f"-Dlog4j2.configurationFile=file:{LOG4J_CONFIG} -Duser.timezone=UTC"


#: settings of the whole JVM, fixed when it starts (so a Spark Connect client cannot set them):
#: every launcher (this factory, the Connect server, spark-submit tasks) passes all of them
JVM_CONF = {
    "spark.driver.extraJavaOptions": JAVA_OPTIONS,
    "spark.executor.extraJavaOptions": JAVA_OPTIONS,
    # generated classes kept for reuse. One ingest generates about 370, validation 190 and the
    # ledger 50; Spark's default of 100 made a long-lived JVM (a Connect server, the test session)
    # compile them all again on every run (a warm 40-subject ingest: 55 -> 40 JVM CPU-s)
    "spark.sql.codegen.cache.maxEntries": "2000",
}


#: Spark jobs a job submits at a time (see ``concurrently``)
CONCURRENT_JOBS = 4


def concurrently(calls: list[tuple], workers: int = CONCURRENT_JOBS) -> list:
    """Run ``(function, *args)`` calls as concurrent Spark jobs; their results in order. A small
    run's jobs are mostly fixed per-job cost on the driver (planning, code generation, the
    commit), which overlaps; a large one's share the executor cores as one job's tasks would."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(call[0], *call[1:]) for call in calls]
        return [future.result() for future in futures]


def connect_service_conf(port: int) -> dict[str, str]:
    """A driver that also serves Spark Connect, on 127.0.0.1 only."""
    return {"spark.connect.grpc.binding.address": "127.0.0.1", "spark.connect.grpc.binding.port": str(port)}


def session_conf(settings: Settings) -> dict[str, str]:
    """Settings of one SQL session, which a Spark Connect client may set for itself."""
    return {"spark.sql.session.timeZone": SESSION_TIME_ZONE,
            "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
            "spark.sql.sources.partitionOverwriteMode": "dynamic",
            "spark.sql.parquet.compression.codec": "zstd",
            # instants as Parquet's UTC-adjusted TIMESTAMP_MICROS (not the legacy INT96), which
            # the embedded engine reads as the same instants: one lake for both engines
            "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
            # HotSpot leaves a method over 8,000 bytes of bytecode to its interpreter; ingest's rule
            # checks made such methods, so above that a stage keeps per-expression code instead
            # (Spark's documented setting for HotSpot; 10k-subject ingest 263 -> 241 s)
            "spark.sql.codegen.hugeMethodLimit": "8000"}


def spark_session(settings: Settings, app_name: str = "mydata", serve_connect: int | None = None) -> SparkSession:
    """Get or create the process's SparkSession for ``settings``.

    ``serve_connect`` (a port): this driver's JVM also serves Spark Connect (Spark's own plugin),
    so other processes can run jobs on a JVM that is already warm; the test session lends its own
    to the Airflow tasks of the scheduler test that way."""
    if settings.spark_connect:
        spark = SparkSession.builder.remote(settings.spark_master).getOrCreate()
        for key, value in session_conf(settings).items():
            spark.conf.set(key, value)
        return spark
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # servers bind to loopback only
    builder = (
        SparkSession.builder.master(settings.spark_master)
        .appName(app_name)
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.executorEnv.PYSPARK_PYTHON", sys.executable)
        .config("spark.pyspark.python", sys.executable)
        .config(map=JVM_CONF)
        .config(map=session_conf(settings))
        .config("spark.ui.enabled", str(settings.spark_ui).lower())
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", str(settings.data_root / "spark-warehouse"))
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
    )
    if serve_connect is not None:
        builder = (builder.config("spark.plugins", "org.apache.spark.sql.connect.SparkConnectPlugin")
                   .config(map=connect_service_conf(serve_connect)))
    logging.getLogger("py4j").setLevel(logging.WARNING)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
