"""Real runs killed with SIGKILL at each point of their publish (mydata.storage.crash_point), then
what the lake holds: a reader is refused or sees the old state, the next writer finishes or undoes
the dead run's publish on its way in, the result equals an uninterrupted run row for row, and
nothing is left over. Engine-independent (the publish is below the engines): the embedded engine."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from jobs import consent
from mydata import storage
from mydata.config import Settings
from tests.on_spark import read_ledger, verify_ledger
from tests.parity.test_ingest_parity import differences

pytestmark = pytest.mark.slow


def _mydata(root: Path, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    # the sample plants ten times the demo's defects: its quarantine gate is raised as the fixture's is
    env = {**os.environ, "MYDATA_LOCK_WAIT": "60", "MYDATA_MAX_QUARANTINE_RATE": "0.25"}
    env.pop(storage.CRASH_AT, None)
    if crash_at:
        env[storage.CRASH_AT] = crash_at
    return subprocess.run([sys.executable, "-m", "cli", "--data-root", str(root), *args], text=True,
                          capture_output=True, timeout=600, env=env)


def _nothing_left(root: Path) -> None:
    assert not [p for p in storage.leftovers(root) for name in (storage.STAGING, storage.TRASH)
                if (p / name).is_dir() and any((p / name).iterdir())]
    assert storage.unfinished(Settings(data_root=root).lake.publish_journal) == {}


def _quarantined(root: Path) -> list[tuple]:
    import duckdb

    return duckdb.sql(f"SELECT regexp_extract(filename, 'quarantine/([^/]*)/', 1) AS tbl, rule, reason, record, "
                      f"item_no, line_no, regexp_extract(file_path, '[^/]*/dt=.*$') AS f, count(*) FROM read_parquet("
                      f"'{root}/quarantine/*/*/*.parquet', filename = true, union_by_name = true) "
                      "GROUP BY ALL ORDER BY ALL").fetchall()


@pytest.fixture(scope="module")
def consented(ingested, tmp_path_factory, spark):
    """The ingested lake with its consent ledger, and the same lake fused and featured without a kill."""
    settings, summary, _, _ = ingested
    root = tmp_path_factory.mktemp("consented") / "lake"
    shutil.copytree(settings.data_root, root)
    settings = settings.replace(data_root=root, purpose="marketing", as_of=summary.deliveries[-1])
    consent.run(settings)
    control = root.parent / "control"
    shutil.copytree(root, control)
    assert _mydata(control, "--as-of", summary.deliveries[-1], "fuse").returncode == 0
    assert _mydata(control, "--as-of", summary.deliveries[-1], "features").returncode == 0
    return settings, control


@pytest.mark.parametrize("point", ["publish:journaled", "publish:half-swapped"])
def test_a_fuse_killed_while_publishing_is_finished_by_the_next_writer(consented, tmp_path, point):
    settings, control = consented
    root = tmp_path / "lake"
    shutil.copytree(settings.data_root, root)
    as_of = settings.as_of.isoformat()
    if point == "publish:half-swapped":  # an old silver to swap out: fuse once, then kill the rerun
        assert _mydata(root, "--as-of", as_of, "fuse").returncode == 0
    killed = _mydata(root, "--as-of", as_of, "fuse", crash_at=point)
    assert killed.returncode == -9, killed.stderr[-2000:]
    status = json.loads(_mydata(root, "status", "--json").stdout)
    if point != "publish:swapped":  # the journal is gone only once every partition is in
        assert list(status["unfinished"]) and any("unfinished publish of run fuse-" in a for a in status["attention"])
        spine = tmp_path / "spine.csv"
        spine.write_text(f"pseudonym,as_of\nsomeone,{as_of}\n", encoding="utf-8")
        reader = _mydata(root, "--as-of", as_of, "features", "historical", "--spine", str(spine))
        assert reader.returncode == 1 and len(reader.stderr.strip().splitlines()) == 1, reader.stderr[-2000:]
        assert "unfinished publish" in reader.stderr and not (tmp_path / "spine-features.parquet").exists()
    after = _mydata(root, "--as-of", as_of, "features")
    assert after.returncode == 0, after.stderr[-2000:]
    if point != "publish:swapped":
        assert "features: finished publishing interrupted run fuse-" in after.stderr
    assert differences(control, root, ("silver",), rel_tol=1e-9) == []  # a stddev's sum depends on row order
    _nothing_left(root)


def test_an_ingest_started_during_a_fuses_publish_waits_for_it_and_both_land_whole(consented, tmp_path):
    """Once, fuse's start-up finished the ingest's publish underneath it ([Errno 2] …/_trash/…); here the
    fuse is stopped mid-publish (SIGSTOP) while the ingest starts, then continued."""
    settings, control = consented
    root = tmp_path / "lake"
    shutil.copytree(settings.data_root, root)
    env = {**os.environ, "MYDATA_LOCK_WAIT": "300", "MYDATA_MAX_QUARANTINE_RATE": "0.25"}
    env.pop(storage.CRASH_AT, None)

    def start(*args: str, **extra: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "cli", "--data-root", str(root), *args], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**env, **extra})

    fuse = start("--as-of", settings.as_of.isoformat(), "fuse", **{storage.PAUSE_AT: "publish:journaled"})
    deadline = time.monotonic() + 120
    while psutil.Process(fuse.pid).status() != psutil.STATUS_STOPPED:  # journaled, nothing swapped yet
        assert time.monotonic() < deadline and fuse.poll() is None, "the fuse never reached its publish"
        time.sleep(0.05)
    ingest = start("ingest")
    said = []
    while not any("waiting up to 300s for the lake lock" in line for line in said) and (line := ingest.stderr.readline()):
        said.append(line)
    os.kill(fuse.pid, signal.SIGCONT)
    (_, fuse_err), (_, ingest_err) = fuse.communicate(timeout=600), ingest.communicate(timeout=600)
    assert (fuse.returncode, ingest.returncode) == (0, 0), (fuse_err[-2000:], ingest_err[-2000:])
    assert said and said[-1].startswith("ingest: waiting up to 300s for the lake lock, held by run fuse-"), said
    assert _mydata(root, "--as-of", settings.as_of.isoformat(), "features").returncode == 0
    assert differences(control, root, ("bronze", "silver"), rel_tol=1e-9) == []
    _nothing_left(root)


def test_an_ingest_killed_halfway_through_a_swap_is_finished_and_a_rerun_equals_one_ingest(ingested, tmp_path):
    settings, _, _, _ = ingested
    root, control = tmp_path / "lake", tmp_path / "control"
    shutil.copytree(settings.data_root, root)
    shutil.copytree(settings.data_root, control)
    killed = _mydata(root, "ingest", crash_at="publish:half-swapped")
    assert killed.returncode == -9
    # between the kill and the next writer, `mydata status` names the unfinished publish
    status = json.loads(_mydata(root, "status", "--json").stdout)
    assert list(status["unfinished"]) == [next(iter(status["unfinished"]))] and status["healthy"] is False
    recovered = _mydata(root, "recover")
    assert recovered.returncode == 0 and "recovered: finished publishing interrupted run ingest-" in recovered.stdout
    assert differences(control, root, ("bronze",)) == []
    assert _quarantined(control) == _quarantined(root)  # quarantine rows name their file, under each lake's root
    _nothing_left(root)
    assert _mydata(root, "recover").stdout.strip() == "recover: nothing to recover, the lake is clean"


@pytest.mark.parametrize("point", ["publish:journaled", "publish:swapping"])
def test_a_consent_append_killed_anywhere_lands_whole_at_the_next_append_with_no_false_alarm(ingested, tmp_path,
                                                                                           point):
    settings, _, _, _ = ingested
    root, control = tmp_path / "lake", tmp_path / "control"
    shutil.copytree(settings.data_root, root)
    shutil.copytree(settings.data_root, control)
    assert _mydata(control, "consent", "append").returncode == 0
    killed = _mydata(root, "consent", "append", crash_at=point)
    assert killed.returncode == -9, killed.stderr[-2000:]
    again = _mydata(root, "consent", "append")
    assert again.returncode == 0, again.stderr[-2000:]
    verified = _mydata(root, "consent", "verify")
    assert verified.returncode == 0 and "consent ledger verifies" in verified.stdout, verified.stdout + verified.stderr
    assert differences(control, root, ("consent",)) == []
    heads = [[(h["events"], h["hash"]) for h in json.loads((lake / "consent" / "anchors.json").read_text())]
             for lake in (control, root)]
    assert heads[0] == heads[1] and len(heads[0]) == 3
    runs = [json.loads(p.read_text()) for p in (root / "manifests" / "consent").glob("*.json")]
    assert sum(1 for r in runs if r["status"] == "succeeded" and r["outputs"]["appended"]) == 1  # landed once, whole
    _nothing_left(root)


@pytest.mark.parametrize("point", ["publish:swapping"])
def test_a_purge_killed_while_publishing_leaves_a_complete_audit_after_the_next_writer(lake_copy, spark, tmp_path,
                                                                                      deliver_withdrawal, point):
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from jobs import purge
    from mydata.keys import KeyStore, purpose_pseudonym

    settings, results = lake_copy
    lake, as_of = settings.lake, results["marketing"]["as_of"]
    secret = KeyStore.open(settings).purpose_secret("marketing")
    by_pseudonym = {purpose_pseudonym(secret, r.link_key): r.link_key
                    for r in read_ledger(spark, lake).select("link_key").distinct().collect()}
    fused = set(spark.read.parquet(str(lake.silver_table("subjects", "marketing"))).toPandas()["pseudonym"])
    pseudonym = min(p for p in by_pseudonym if p in fused)
    moment = datetime.fromisoformat(as_of).replace(tzinfo=ZoneInfo("Asia/Seoul")) + timedelta(days=2, hours=9)
    deliver_withdrawal(spark, settings, by_pseudonym[pseudonym], verify_ledger(spark, lake).head.hash,
                       moment, ["card"])
    consent.run(settings, spark)
    control = tmp_path / "control"
    shutil.copytree(settings.data_root, control)
    assert _mydata(control, "--purpose", "marketing", "purge").returncode == 0
    killed = _mydata(settings.data_root, "--purpose", "marketing", "purge", crash_at=point)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert _mydata(settings.data_root, "recover").returncode == 0
    audits = [purge.read_audit(Settings(data_root=root).lake) for root in (control, settings.data_root)]
    assert [(a["pseudonyms"], a["rows_removed"]) for a in audits[0]] == \
        [(a["pseudonyms"], a["rows_removed"]) for a in audits[1]] == [([pseudonym], audits[0][0]["rows_removed"])]
    assert sum(audits[1][0]["rows_removed"].values()) > 1
    assert differences(control, settings.data_root, ("silver",)) == []
    _nothing_left(settings.data_root)


@pytest.mark.parametrize("point", ["publish:half-swapped"])
def test_a_release_killed_while_swapping_is_undone_or_kept_and_never_leaves_a_hole(consented, tmp_path, point):
    settings, control = consented
    root = tmp_path / "lake"
    shutil.copytree(control, root)  # fused and featured already
    as_of = settings.as_of.isoformat()
    assert _mydata(root, "--as-of", as_of, "release").returncode == 0
    assert _mydata(control, "--as-of", as_of, "release").returncode == 0
    killed = _mydata(root, "--as-of", as_of, "release", crash_at=point)  # a rerun: an old snapshot to swap out
    assert killed.returncode == -9, killed.stderr[-2000:]
    recovered = _mydata(root, "recover")
    assert recovered.returncode == 0, recovered.stderr
    assert differences(control, root, ("gold",)) == []  # the old snapshot back, or the new one: the same rows
    _nothing_left(root)


def test_two_consent_appends_at_once_append_each_delivery_once(ingested, tmp_path):
    settings, _, _, _ = ingested
    root = tmp_path / "lake"
    shutil.copytree(settings.data_root, root)
    env = {**os.environ, "MYDATA_LOCK_WAIT": "120"}
    runs = [subprocess.Popen([sys.executable, "-m", "cli", "--data-root", str(root), "consent", "append"], text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for _ in range(2)]
    said = [r.communicate(timeout=300) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], said
    assert sorted(out.startswith("consent: 0 events appended") for out, _ in said) == [False, True]
    heads = json.loads((root / "consent" / "anchors.json").read_text())
    assert len(heads) == len({h["events"] for h in heads}) == 3
    assert _mydata(root, "consent", "verify").returncode == 0
