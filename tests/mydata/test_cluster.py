"""System tests: the fusion and features jobs on a real Spark standalone cluster (a master and two
workers from pyspark's own distribution, on 127.0.0.1), and the consent ledger as a client of a
real Spark Connect server, give what local mode gives."""
import os
import shutil
import subprocess
import sys

import pytest

from mydata.cluster import connect_server, standalone_cluster


@pytest.mark.slow
def test_fusion_and_features_on_a_standalone_cluster_equal_local_mode(fused, spark, same_rows, tmp_path):
    from jobs import features

    settings, results = fused
    as_of = results["marketing"]["as_of"]
    local = settings.replace(data_root=tmp_path / "local", purpose="marketing", as_of=as_of)
    shutil.copytree(settings.data_root, local.data_root)
    features.run(local, spark)  # the fixture fused in local mode; features too, here
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
def test_the_consent_ledger_as_a_spark_connect_client_equals_local_mode(ingested, fused, spark, same_rows, tmp_path):
    """The ledger's hash chain is checked by a Python UDF, the part of a job that Spark Connect
    treats differently; built by a client of a Connect server from the bronze the local-mode
    fixture used, it must be the same ledger."""
    local, _ = fused
    remote = local.replace(data_root=tmp_path / "remote", shuffle_partitions=2)
    shutil.copytree(ingested[0].data_root, remote.data_root)
    assert not (remote.lake.consent / "ledger").exists()

    with connect_server(tmp_path / "connect", driver_memory="1g") as server:
        env = {**os.environ, **remote.replace(spark_master=server.url).as_env()}
        client = "from mydata.config import Settings; from mydata.spark import spark_session; " \
                 "from jobs import consent; s = Settings.load(); print(type(spark_session(s)).__module__); " \
                 "consent.run(s)"
        done = subprocess.run([sys.executable, "-c", client], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.splitlines()[0] == "pyspark.sql.connect.session"  # a client, no JVM of its own
    assert same_rows(spark, local.lake.consent / "ledger", remote.lake.consent / "ledger") > 0
