"""A ledger rolled back (its newest delivery, signed head and manifests deleted) is caught: what
bronze still holds shows as not appended, a head exported to write-once storage before makes verify
fail, `consent export` refuses to go on from behind, and an event cut from a covered delivery fails
verify at once. Real CLI runs."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _mydata(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", "--data-root", str(root), *args], text=True,
                          capture_output=True, timeout=300, env={**os.environ, **env})


@pytest.fixture
def appended(ingested, tmp_path) -> Path:
    settings, _, _, _ = ingested
    root = tmp_path / "lake"
    shutil.copytree(settings.data_root, root)
    assert _mydata(root, "consent", "append").returncode == 0
    return root


def _roll_back_the_newest_delivery(root: Path) -> str:
    ledger = root / "consent" / "ledger"
    newest = max(p.name for p in ledger.glob("dt=*"))
    shutil.rmtree(ledger / newest)
    anchors = json.loads((root / "consent" / "anchors.json").read_text())
    (root / "consent" / "anchors.json").write_text(json.dumps(anchors[:-1], indent=1))
    for manifest in (root / "manifests" / "consent").glob("*.json"):
        manifest.unlink()
    return newest


def test_a_rollback_is_caught_by_the_exported_heads_and_shows_as_unappended_without_them(appended, tmp_path):
    target = tmp_path / "worm" / "heads.jsonl"  # write-once storage, as a file
    assert _mydata(appended, "consent", "export", "--to", str(target)).returncode == 0
    _roll_back_the_newest_delivery(appended)
    alone = _mydata(appended, "consent", "verify")
    assert alone.returncode == 0 and "delivered event(s) are not in the ledger yet" in alone.stderr
    status = json.loads(_mydata(appended, "status", "--json").stdout)
    assert any("are not in it yet: run `mydata consent append`" in a for a in status["attention"])
    caught = _mydata(appended, "consent", "verify", MYDATA_ANCHOR_FILE=str(target))
    assert caught.returncode == 1 and "was exported to write-once storage: the ledger was rolled back" in caught.stderr
    refused = _mydata(appended, "consent", "export", "--to", str(target))
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert "is behind what was exported before" in refused.stderr
    # the next append puts the cut delivery back: the chain links on, and the export agrees again
    assert _mydata(appended, "consent", "append").returncode == 0
    assert _mydata(appended, "consent", "verify", MYDATA_ANCHOR_FILE=str(target)).returncode == 0


def test_an_event_cut_from_a_delivery_the_ledger_covers_fails_verify(appended):
    import pyarrow.parquet as pq

    ledger = appended / "consent" / "ledger"
    oldest = min(ledger.glob("dt=*"))
    part = next(oldest.glob("*.parquet"))
    table = pq.read_table(part)
    pq.write_table(table.slice(0, table.num_rows - 1), part)  # the newest event of the first delivery, gone
    said = _mydata(appended, "consent", "verify")
    assert said.returncode == 1 and "consent ledger BROKEN" in said.stderr
