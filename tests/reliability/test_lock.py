"""The lake lock with real processes: a second writer waits or gives up with one line naming the
holder, a killed holder is taken over, and two ingests at once leave the lake as one ingest does.
Engine-independent (the lock is below the engines): run with the embedded engine."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mydata.lock import current_holder

HOLD = """
import sys, time
from mydata.lock import announce, lake_lock
with lake_lock(sys.argv[1], "fuse", 5):
    announce("fuse-20261204T000000-abcdef01")
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _mydata(root: Path, *args: str, wait: float = 30, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli", "--data-root", str(root), *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "MYDATA_LOCK_WAIT": str(wait), **env})


def _holding(root: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(root), str(seconds)], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert holder.stdout.readline().strip() == "holding"
    return holder


def test_a_second_writer_gives_up_after_its_wait_naming_the_holder(tmp_path):
    holder = _holding(tmp_path, 30)
    try:
        started = time.monotonic()
        said = _mydata(tmp_path, "landing", wait=1.5)
        out, err = said.communicate(timeout=60)
        assert said.returncode == 1 and time.monotonic() - started < 30
        lines = err.strip().splitlines()
        assert lines[0].startswith("landing: waiting up to 1.5s for the lake lock, held by run "
                                   "fuse-20261204T000000-abcdef01, stage fuse, pid ")
        assert lines[-1].startswith("mydata landing: landing: the lake ") and "is held by another writer (run " \
            "fuse-20261204T000000-abcdef01, stage fuse, pid " in lines[-1] and lines[-1].endswith("nothing done")
        assert not (tmp_path / "manifests" / "landing").exists()  # it did nothing
    finally:
        holder.kill()
        holder.wait()


def test_a_writer_waits_for_the_holder_then_runs(tmp_path):
    holder = _holding(tmp_path, 2)
    said = _mydata(tmp_path, "landing", wait=60)
    out, err = said.communicate(timeout=120)
    holder.wait(timeout=30)
    assert said.returncode == 0, err
    assert "waiting up to 60s for the lake lock" in err and "took over" not in err
    assert current_holder(tmp_path) is None  # released: nobody holds the lake


def test_a_killed_holder_is_taken_over_with_a_line_saying_so(tmp_path):
    holder = _holding(tmp_path, 60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert current_holder(tmp_path).stage == "fuse"  # the dead run's holder file is still there
    said = _mydata(tmp_path, "landing", wait=5)
    out, err = said.communicate(timeout=60)
    assert said.returncode == 0, err
    assert (f"landing: took over the lake lock from run fuse-20261204T000000-abcdef01, stage fuse, pid {holder.pid}"
            in err and "which ended without releasing it" in err)


@pytest.mark.slow
def test_two_ingests_at_once_leave_the_lake_as_one_ingest_does(make_landing, tmp_path):
    settings, _ = make_landing(tmp_path / "lake", subjects=60, months=2, seed=2, workers=1)
    root = settings.data_root
    first, second = _mydata(root, "ingest", wait=300), _mydata(root, "ingest", wait=300)
    results = [p.communicate(timeout=600) for p in (first, second)]
    assert first.returncode == second.returncode == 0, results
    assert sum("waiting up to 300s for the lake lock" in err for _, err in results) == 1
    runs = [json.loads(p.read_text()) for p in (root / "manifests" / "ingest").glob("*.json")]
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    # what the lake holds is what each run published: every partition of the landing, whole
    for table in ("bank_transactions", "card_approvals", "telecom_bills", "consent_events"):
        partitions = sorted(p.name for p in (root / "bronze" / table).rglob("dt=*") if p.is_dir())
        assert len(partitions) == 2, (table, partitions)
        assert pq.read_table(root / "bronze" / table).num_rows == sum(
            r["outputs"]["tables"][table][dt]["accepted"] for r in runs[:1] for dt in r["outputs"]["tables"][table])
    leftovers = [p for p in root.rglob("_staging") if any(p.iterdir())] + [p for p in root.rglob("_trash") if any(p.iterdir())]
    assert not leftovers
