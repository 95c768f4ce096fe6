"""System test: the fusion and features jobs on a real Spark standalone cluster (a master and two
workers from pyspark's own distribution, on 127.0.0.1) give what local mode gives."""
import os
import shutil
import subprocess
import sys

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mydata.cluster import standalone_cluster


def comparable(frame: DataFrame) -> DataFrame:
    """Doubles rounded: a sum over other partitions may differ in the last bits, nothing more."""
    return frame.select([F.round(c, 3).alias(c) if t == "double" else F.col(c) for c, t in frame.dtypes])


def same_rows(spark, left, right) -> None:
    a, b = comparable(spark.read.parquet(str(left))), comparable(spark.read.parquet(str(right)))
    assert a.count() == b.count() > 0, left
    assert a.exceptAll(b).isEmpty() and b.exceptAll(a).isEmpty(), left


@pytest.mark.slow
def test_fusion_and_features_on_a_standalone_cluster_equal_local_mode(fused, spark, tmp_path):
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
