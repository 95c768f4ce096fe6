"""What lies under landing/ and is not a delivery is reported with a reason and stops ingest
(unless skipped); symlinks out of the data root are never followed; a byte-order mark is not data;
what the pipeline creates is owner-only. Real CLI runs on small hand-made landings."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.landing import landing_problems
from mydata import storage
from mydata.config import Settings
from tests.jobs.test_real_deliveries import CARD_ORG, bills, deliver, register


def _mydata(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", "--data-root", str(root), *args], text=True,
                          capture_output=True, timeout=300, env={**os.environ, **env})


@pytest.fixture
def lake(tmp_path) -> Path:
    root = tmp_path / "lake"
    deliver(root, "card", [bills(CARD_ORG, "T1", "1000.000")])
    register(root, ("card", CARD_ORG))
    return root


def test_what_is_not_a_delivery_is_named_with_a_reason_and_stops_ingest(lake, tmp_path):
    landing = lake / "landing"
    for bad in ("dt=2026-13-45", "dt=latest"):
        (landing / "card" / bad).mkdir()
        (landing / "card" / bad / "_SUCCESS").touch()
    (landing / "card" / "dt=2026-11-02").write_text("not a folder")
    (landing / "card copy").mkdir()
    (landing / "카드").mkdir()
    (landing / "telecom").write_text("a file")
    outside = tmp_path / "outside" / "dt=2026-11-03"
    outside.mkdir(parents=True)
    (outside / "part-0.jsonl").write_text(bills(CARD_ORG, "T9", "5.000") + "\n")
    (outside / "_SUCCESS").touch()
    (landing / "card" / "dt=2026-11-03").symlink_to(outside, target_is_directory=True)
    (landing / "card" / "dt=2026-11-01" / "part-9.jsonl").symlink_to("/etc/passwd")
    said = {p.path: p.reason for p in landing_problems(Settings(data_root=lake).lake)}
    assert said == {
        "card/dt=2026-11-02": "a file where a delivery folder belongs",
        "card/dt=2026-11-03": "a symlink that leaves the data root: refused",
        "card/dt=2026-13-45": "not a delivery folder: a delivery is dt=YYYY-MM-DD with a real date",
        "card/dt=latest": "not a delivery folder: a delivery is dt=YYYY-MM-DD with a real date",
        "card/dt=2026-11-01/part-9.jsonl": "a data file symlinked out of the data root: refused",
        "card copy": "not a source: the sources are consent, customer, bank, card, telecom, telecom_usage",
        "카드": "not a source: the sources are consent, customer, bank, card, telecom, telecom_usage",
        "telecom": "a file where a source folder belongs (sources: consent, customer, bank, card, telecom, "
                   "telecom_usage)"}
    for command in ("landing", "ingest"):
        failed = _mydata(lake, command)
        assert failed.returncode == 1, failed.stderr
        assert failed.stderr.count("\n") == 1 and "8 thing(s) under" in failed.stderr, failed.stderr
        assert "MYDATA_SKIP_BAD_LANDING" in failed.stderr
    assert not (lake / "bronze").exists()
    skipped = _mydata(lake, "ingest", MYDATA_SKIP_BAD_LANDING="true")
    assert skipped.returncode == 0, skipped.stderr
    rows = pq.read_table(lake / "bronze" / "card_bills").to_pylist()
    assert [r["x_api_tran_id"] for r in rows] == ["T1"]  # neither the symlinked delivery nor /etc/passwd was read


def test_a_byte_order_mark_before_the_first_line_is_not_data(lake):
    part = lake / "landing" / "card" / "dt=2026-11-01" / "part-0.jsonl"
    part.write_bytes(b"\xef\xbb\xbf" + part.read_bytes())
    done = _mydata(lake, "ingest")
    assert done.returncode == 0, done.stderr
    assert pq.read_table(lake / "bronze" / "card_bills").num_rows == 1
    assert not storage.has_data(lake / "quarantine" / "card_lines")


def test_what_the_pipeline_creates_is_owner_only(lake):
    assert _mydata(lake, "ingest").returncode == 0
    created = [p for p in (lake / "bronze").rglob("*")] + [lake / "manifests"]
    assert created and all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in created), \
        sorted({oct(stat.S_IMODE(p.stat().st_mode)) for p in created})
    assert _mydata(lake, "landing", MYDATA_GROUP_ACCESS="true").returncode == 0
    landed = next((lake / "manifests" / "landing").glob("*.json"))
    assert stat.S_IMODE(landed.stat().st_mode) & 0o077 == 0o040  # the group reads, nobody else
