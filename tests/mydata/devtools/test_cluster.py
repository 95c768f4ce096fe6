"""System tests: the fusion and features jobs on a real Spark standalone cluster (a master and two
workers from pyspark's own distribution, on 127.0.0.1), and the consent ledger as a client of
Spark Connect, give what local mode gives; a Connect server started as a deployment would start
one serves a client's Python UDF."""
import os
import shutil
import subprocess
import sys

import pytest

from mydata.devtools.cluster import connect_server, standalone_cluster


@pytest.mark.slow
def test_fusion_and_features_on_a_standalone_cluster_equal_local_mode(fused, spark, same_rows, tmp_path):
    from jobs import features

    settings, results = fused
    as_of = results["marketing"]["as_of"]
    local = settings.replace(data_root=tmp_path / "local", purpose="marketing", as_of=as_of, engine="spark")
    shutil.copytree(settings.data_root, local.data_root)
    features.run(local, spark)  # the fixture fused; features in local mode, here
    remote = local.replace(data_root=tmp_path / "remote", driver_memory="1g", shuffle_partitions=2)
    shutil.copytree(settings.data_root, remote.data_root)
    shutil.rmtree(remote.lake.silver)  # the cluster fuses again, from bronze and the ledger

    with standalone_cluster(tmp_path / "cluster", workers=2, cores=1, memory="1g") as cluster:
        env = {**os.environ, **remote.replace(spark_master=cluster.master_url).as_env()}
        # one driver (one application) runs both jobs, as a spark-submit of each would, minus a JVM start
        both = "from mydata.config import Settings; from jobs import fuse, features; " \
               "s = Settings.load(); fuse.run(s); features.run(s)"
        done = subprocess.run([sys.executable, "-c", both], env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-4000:]
        apps = cluster.status()["completedapps"]
    assert len(apps) == 1 and apps[0]["cores"] == 2, apps  # the application ran on both workers' cores

    tables = sorted(p.relative_to(local.lake.silver) for p in local.lake.silver.glob(f"*/purpose=marketing/as_of={as_of}"))
    assert len(tables) >= 12 and any(t.parts[0] == "features" for t in tables)
    for table in tables:
        same_rows(spark, local.lake.silver / table, remote.lake.silver / table)


@pytest.mark.slow
def test_the_consent_ledger_as_a_spark_connect_client_equals_local_mode(ingested, fused, spark, spark_connect_url,
                                                                        same_rows, tmp_path):
    """The ledger's hash chain is checked by a Python UDF, the part of a job that Spark Connect
    treats differently; built by a client process of Spark Connect from the bronze the local-mode
    fixture used, it must be the same ledger."""
    local, _ = fused
    remote = local.replace(data_root=tmp_path / "remote", shuffle_partitions=2, spark_master=spark_connect_url)
    shutil.copytree(ingested[0].data_root, remote.data_root)
    assert not (remote.lake.consent / "ledger").exists()

    client = "from mydata.config import Settings; from mydata.spark import spark_session; " \
             "from jobs import consent; s = Settings.load(); print(type(spark_session(s)).__module__); " \
             "consent.run(s)"
    done = subprocess.run([sys.executable, "-c", client], env={**os.environ, **remote.as_env()},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.splitlines()[0] == "pyspark.sql.connect.session"  # a client, no JVM of its own
    assert same_rows(spark, local.lake.consent / "ledger", remote.lake.consent / "ledger") > 0


@pytest.mark.slow
def test_a_connect_server_from_pysparks_distribution_runs_a_clients_python_udf(tmp_path):
    """``connect_server`` as a deployment starts it: its own JVM, and Python workers that run the
    project's interpreter (a UDF of a client, as the ledger's hash check is)."""
    from mydata.config import Settings

    settings = Settings(data_root=tmp_path / "lake", shuffle_partitions=2)
    with connect_server(tmp_path / "connect", driver_memory="1g") as server:
        client = "import sys; from pyspark.sql import functions as F; from mydata.config import Settings; " \
                 "from mydata.spark import spark_session; s = spark_session(Settings.load()); " \
                 "print(type(s).__module__); print(s.conf.get('spark.sql.session.timeZone')); " \
                 "ran = F.udf(lambda n: f'{sys.executable}:{n * n}', 'string'); " \
                 "print(*sorted(r[0] for r in s.range(3).select(ran('id')).collect()))"
        done = subprocess.run([sys.executable, "-c", client],
                              env={**os.environ, **settings.replace(spark_master=server.url).as_env()},
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-4000:]
        assert (server.work_dir / "logs" / "connect-server.log").stat().st_size > 0
    assert server.process.poll() is not None  # stopped with the block
    assert done.stdout.splitlines() == ["pyspark.sql.connect.session", "Asia/Seoul",
                                        " ".join(f"{sys.executable}:{n * n}" for n in range(3))]
