"""Shared fixtures: one SparkSession per test session, small generated landing zones."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest

# Airflow reads its home at import: keep the test process's Airflow away from ~/airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="mydata-test-airflow-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

from mydata import storage  # noqa: E402
from mydata.config import Settings  # noqa: E402
from mydata.devtools.synth import GenerationSummary, GeneratorOptions, generate  # noqa: E402
from mydata.keys import KeyStore  # noqa: E402
from tests.on_spark import as_engine  # noqa: E402


@pytest.fixture(scope="session")
def connect_port() -> int:
    from mydata.devtools.cluster import free_port

    return free_port()


@pytest.fixture(scope="session")
def spark(tmp_path_factory, connect_port):
    from mydata.spark import spark_session

    settings = Settings(data_root=tmp_path_factory.mktemp("spark"), shuffle_partitions=2,
                        driver_memory="2g")  # test data is small: one shuffle partition per core
    session = spark_session(settings, "mydata-tests", serve_connect=connect_port)
    yield session
    session.stop()


@pytest.fixture
def duckdb_engine(tmp_path):
    """The embedded engine on a throwaway data root (for transforms on small explicit inputs)."""
    from mydata.engines.duckdb import DuckDBEngine

    engine = DuckDBEngine.connect(Settings(data_root=tmp_path / "duckdb", duckdb_threads=2))
    yield engine
    engine.close()


@pytest.fixture(params=["duckdb", "spark"])
def engine(request):
    """Each small case on both engines."""
    if request.param == "duckdb":
        yield request.getfixturevalue("duckdb_engine")
    else:
        yield as_engine(request.getfixturevalue("spark"))


@pytest.fixture(scope="session")
def spark_connect_url(spark, connect_port) -> str:
    """Spark Connect served by the test session's own JVM. Its clients (Airflow tasks in other
    processes) run on a JVM the tests before have warmed; a cold one spends most of a small
    run compiling (a 40-subject ingest: 126 JVM CPU-s cold, 37 warm)."""
    return f"sc://127.0.0.1:{connect_port}"


def make_landing(root: Path, **options) -> tuple[Settings, GenerationSummary]:
    """Generate a landing zone under ``root`` with a key store that already rotated to link v2."""
    settings = Settings(data_root=root)
    keystore = KeyStore.open(settings)
    keystore.rotate_link()
    summary = generate(root, GeneratorOptions(**options), keystore)
    return settings, summary


@pytest.fixture(name="make_landing", scope="session")
def make_landing_fixture():
    return make_landing


@pytest.fixture(scope="session")
def small_landing(tmp_path_factory) -> tuple[Settings, GenerationSummary]:
    """300 subjects x 3 months with 5% planted defects, in three chunks across two workers."""
    root = tmp_path_factory.mktemp("small_landing")
    settings, summary = make_landing(root, subjects=300, months=3, seed=11, defect_rate=0.05,
                                     key_mismatch_rate=0.02, chunk_size=100, workers=2)
    # ten times the demo's defect rate, on purpose: the default gate (2% of a table) would stop it
    return settings.replace(max_quarantine_rate=0.25), summary


@pytest.fixture
def copy_landing(tmp_path):
    def _copy(source: Settings) -> Settings:
        target = tmp_path / "lake"
        shutil.copytree(source.data_root, target)
        return source.replace(data_root=target)
    return _copy


@pytest.fixture(scope="session")
def ingested(small_landing, tmp_path_factory, spark):
    """``small_landing`` ingested once: (settings, summary, run() result, the run manifest)."""
    from jobs import ingest

    settings, summary = small_landing
    root = tmp_path_factory.mktemp("ingested") / "lake"
    shutil.copytree(settings.data_root, root)
    settings = settings.replace(data_root=root)
    result = ingest.run(settings, spark)
    return settings, summary, result, json.loads(open(result["manifest"], encoding="utf-8").read())


@pytest.fixture(scope="session")
def fused(ingested, tmp_path_factory, spark):
    """``ingested`` with its consent ledger built and fused for marketing and analytics as of the
    last delivery: (settings, {purpose: fuse.run() result plus "as_of"})."""
    from datetime import date

    from jobs import consent, fuse

    settings, summary, _, _ = ingested
    root = tmp_path_factory.mktemp("fused") / "lake"
    shutil.copytree(settings.data_root, root)
    settings = settings.replace(data_root=root)
    consent.run(settings, spark)
    as_of = date.fromisoformat(summary.deliveries[-1])
    results = {}
    for purpose in ("marketing", "analytics"):
        result = fuse.run(settings.replace(purpose=purpose, as_of=as_of), spark)
        results[purpose] = {**result, "as_of": as_of.isoformat()}
    return settings, results


def _blobs(rows_per_type: int = 120, seed: int = 3, shares: tuple[float, ...] = (1.0, 1.0, 1.0)):
    """Three kinds of subject, each with its own typical level of every model feature; some values
    missing. ``shares`` scales how many of each kind there are. Returns (frame, true kind per row)."""
    import numpy as np
    import pandas as pd

    from models.pipeline import model_features

    rng = np.random.default_rng(seed)
    features = model_features()
    centres = np.random.default_rng(3).lognormal(0.0, 1.5, size=(3, len(features))) * 1_000
    parts, truth = [], []
    for kind, share in enumerate(shares):
        rows = int(rows_per_type * share)
        parts.append(pd.DataFrame(centres[kind] * rng.lognormal(0.0, 0.15, size=(rows, len(features))),
                                  columns=features))
        truth += [kind] * rows
    frame = pd.concat(parts, ignore_index=True)
    frame.iloc[::17, 3] = np.nan  # means over no records are null in real snapshots
    frame.insert(0, "pseudonym", [f"P{i:05d}" for i in range(len(frame))])
    return frame, np.array(truth)


@pytest.fixture(name="blobs")
def blobs_fixture():
    return _blobs


def _publish_snapshot(root: Path, frame, purpose: str = "marketing", as_of: str = "2026-10-01") -> Path:
    """Write ``frame`` as a published feature snapshot (gold/features), with the released
    quasi-identifiers filled in, as the release job would leave it."""
    from models.snapshots import feature_dtypes

    frame = frame.copy()
    for column in ("age_band", "gender", "region"):
        frame[column] = {"age_band": "30-49", "gender": "F", "region": "capital"}[column]
    for column, dtype in feature_dtypes().items():
        if column not in frame:
            frame[column] = None
        elif dtype == "Int64":
            frame[column] = frame[column].round()
    folder = root / "gold" / "features" / f"purpose={purpose}" / f"as_of={as_of}"
    folder.mkdir(parents=True, exist_ok=True)
    frame[list(feature_dtypes())].astype(feature_dtypes()).to_parquet(folder / "part-00000.parquet", index=False)
    return folder


@pytest.fixture(name="publish_snapshot")
def publish_snapshot_fixture():
    return _publish_snapshot


def _same_rows(spark, left: Path, right: Path, roots: tuple[Path, Path] | None = None) -> int:
    """Assert two Parquet tables hold the same rows (doubles to 3 places: a sum over other
    partitions may differ in the last bits, nothing more); returns the row count. With ``roots``,
    each side's own root is cut out of its strings (file paths name the lake they were read in)."""
    from pyspark.sql import functions as F

    def comparable(path: Path, root: Path | None):
        frame = spark.read.parquet(str(path))
        return frame.select([F.round(c, 3).alias(c) if t == "double"
                             else F.replace(c, F.lit(str(root))).alias(c) if t == "string" and root
                             else F.col(c) for c, t in frame.dtypes])

    a, b = comparable(left, roots and roots[0]), comparable(right, roots and roots[1])
    count = a.count()
    assert count == b.count() > 0, left
    assert a.exceptAll(b).isEmpty() and b.exceptAll(a).isEmpty(), left
    return count


@pytest.fixture(name="same_rows")
def same_rows_fixture():
    return _same_rows


def _deliver_withdrawal(spark, settings, link_key: str, head_hash: str, moment: datetime, sources: list[str]):
    """A consent delivery holding one withdrawal for marketing that continues the chain (straight into bronze)."""
    from schemas.bronze import CONSENT_EVENTS
    from schemas.consent import chain

    event = next(chain([{"event_id": "c-withdraw-1", "link_key": link_key, "key_version": 1,
                         "event_type": "withdraw", "event_time": moment.strftime("%Y%m%d%H%M%S"),
                         "purpose": "marketing", "sources": sources, "end_date": moment.strftime("%Y%m%d"),
                         "channel": "app", "notice_version": "mkt-2026.2"}], head_hash))
    dt = (moment + timedelta(days=1)).date()
    row = (event["event_id"], link_key, 1, "withdraw", moment, "marketing", sources, moment.date(), "app",
           "mkt-2026.2", event["prev_hash"], event["hash"], dt)
    schema = ", ".join(f"{c.name} {c.spark_type}" for c in CONSENT_EVENTS.columns) + ", dt date"
    storage.replace_partitions(spark.createDataFrame([row], schema),
                               settings.lake.bronze_table("consent_events"), [dt], "test-withdrawal")


@pytest.fixture(name="deliver_withdrawal")
def deliver_withdrawal_fixture():
    return _deliver_withdrawal


@pytest.fixture
def lake_copy(fused, tmp_path):
    """A copy of the fused lake, for a test that changes it."""
    settings, results = fused
    shutil.copytree(settings.data_root, tmp_path / "lake")
    return settings.replace(data_root=tmp_path / "lake", purpose="marketing"), results
