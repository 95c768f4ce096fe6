"""A full disk under a real ingest: one line naming the path and the free space, nothing published,
no staging or temp file left, and the same ingest succeeds once there is room. Needs root for a
small tmpfs of its own."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mydata import storage

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs for a full disk needs root")]


@pytest.fixture
def small_disk(tmp_path) -> Path:
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_leaves_the_lake_as_it_was(small_landing, small_disk):
    settings, _ = small_landing
    root = small_disk / "lake"
    shutil.copytree(settings.data_root, root)
    free = shutil.disk_usage(small_disk).free
    filler = small_disk / "filler"
    with open(filler, "wb") as out:  # leave about 300 KB: the landing is there, its bronze cannot be
        out.truncate(max(0, free - 300 * 1024))
        out.seek(0)
        out.write(b"\0" * min(free - 300 * 1024, 1 << 20))
    subprocess.run(["fallocate", "-l", str(max(0, free - 300 * 1024)), str(filler)], check=False)
    env = {**os.environ, "MYDATA_MAX_QUARANTINE_RATE": "0.25"}
    run = subprocess.run([sys.executable, "-m", "cli", "--data-root", str(root), "ingest"], text=True,
                         capture_output=True, timeout=600, env=env)
    assert run.returncode == 1, run.stderr[-3000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("mydata ingest: no space left on the device writing ") and " MiB free of " in last, \
        run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert not storage.has_data(root / "bronze" / "card_approvals")
    left = [str(f.relative_to(root)) for p in storage.leftovers(root) for n in (storage.STAGING, storage.TRASH)
            if p.joinpath(n).is_dir() for f in p.joinpath(n).rglob("*")]
    assert not left, left[:10]
    assert not list(root.rglob("*.tmp"))
    filler.unlink()
    again = subprocess.run([sys.executable, "-m", "cli", "--data-root", str(root), "ingest"], text=True,
                           capture_output=True, timeout=600, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert storage.has_data(root / "bronze" / "card_approvals")
