"""System test: the fusion and features jobs on a real Spark standalone cluster (a master and two
workers from pyspark's own distribution, on 127.0.0.1) give what local mode gives."""
import os
import shutil
import subprocess
import sys

import pytest

from mydata.cluster import standalone_cluster


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
