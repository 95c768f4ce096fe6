"""The publish every writing stage shares (mydata.storage.publish), killed with SIGKILL at each of
its points in a real process: two tables of two partitions each, with and without a journal. The
stage tests in test_crash.py kill real stages at one point of each kind; this covers every point.
Engine-independent: the embedded engine stages the rows."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from mydata import storage
from mydata.config import Settings

POINTS = ["publish:journaled", "publish:half-swapped", "publish:swapping", "publish:swapped"]
TABLES, DTS = ("t0", "t1"), ("2026-06-01", "2026-07-01")

WRITE = """
import sys
from datetime import date
from pathlib import Path
from mydata import storage
from mydata.config import Settings
from mydata.engines.duckdb import DuckDBEngine
from mydata.lock import lake_lock

root, version, journaled = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "journaled"
engine = DuckDBEngine.connect(Settings(data_root=root))
with lake_lock(root, "test", 5):
    staged = [engine.stage(" UNION ALL ".join(f"SELECT '{version}' AS v, {n} AS n, DATE '{dt}' AS dt"
                                              for n in range(3) for dt in ("2026-06-01", "2026-07-01")),
                           root / table, [date(2026, 6, 1), date(2026, 7, 1)], f"run-{version}")
              for table in ("t0", "t1")]
    storage.publish(staged, journal=Settings(data_root=root).lake.publish_journal if journaled else None)
"""
NEXT_WRITER = "import sys; from mydata.lock import lake_lock\nwith lake_lock(sys.argv[1], 'next', 5): pass"


def _run(code: str, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != storage.CRASH_AT}
    if crash_at:
        env[storage.CRASH_AT] = crash_at
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)


def _versions(root: Path) -> dict[tuple[str, str], str | None]:
    """What a reader finds in each partition: the one version its rows carry, or None (missing)."""
    found = {}
    for table in TABLES:
        for dt in DTS:
            folder = root / table / f"dt={dt}"
            rows = duckdb.sql(f"SELECT DISTINCT v FROM read_parquet('{folder}/*.parquet')").fetchall() \
                if folder.is_dir() else []
            assert len(rows) <= 1, (table, dt, rows)  # never two runs' rows in one partition
            found[(table, dt)] = rows[0][0] if rows else None
    return found


@pytest.mark.parametrize("journaled", ["journaled", "unjournaled"])
@pytest.mark.parametrize("point", POINTS)
def test_a_publish_killed_at_each_point_is_finished_or_undone_by_the_next_writer(tmp_path, point, journaled):
    root = tmp_path / "lake"
    assert _run(WRITE, str(root), "old", journaled).returncode == 0
    killed = _run(WRITE, str(root), "new", journaled, crash_at=point)
    assert killed.returncode == -9, killed.stderr[-2000:]
    seen = _versions(root)
    if journaled == "journaled":  # a reader is told: the partitions of an unfinished publish are named
        assert list(storage.unfinished(Settings(data_root=root).lake.publish_journal)) == ["run-new"]
    else:  # without a journal only the partition being swapped may be missing, never mixed
        assert sum(v is None for v in seen.values()) <= (point == "publish:half-swapped")
    if point == "publish:swapped":
        assert set(seen.values()) == {"new"}

    taken = _run(NEXT_WRITER, str(root))
    assert taken.returncode == 0 and "took over the lake lock from stage test" in taken.stderr, taken.stderr
    after = _versions(root)
    if journaled == "journaled":  # rolled forward: the dead run lands whole
        assert set(after.values()) == {"new"}, after
    else:  # undone where it was cut: every partition whole, old or new
        assert None not in after.values() and set(after.values()) <= {"old", "new"}, after
    assert not [p for table in TABLES for name in (storage.STAGING, storage.TRASH)
                if (p := root / table / name).is_dir() and any(p.iterdir())]

    assert _run(WRITE, str(root), "new", journaled).returncode == 0  # a rerun equals an uninterrupted run
    assert set(_versions(root).values()) == {"new"}
    assert storage.unfinished(Settings(data_root=root).lake.publish_journal) == {}
