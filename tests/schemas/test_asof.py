"""The one definition of "as of D": the default dates stages take when none is given."""
from __future__ import annotations

from datetime import date
from pathlib import Path

from schemas.asof import AsOf, default_as_of, months_before, report_as_of, window_slot
from schemas.dialects import DUCKDB


def _deliver(landing: Path, source: str, *days: str) -> None:
    for day in days:
        (landing / source / f"dt={day}").mkdir(parents=True)


def test_the_default_as_of_is_the_newest_date_every_source_delivered(tmp_path):
    landing = tmp_path / "landing"
    for source in ("bank", "card", "consent"):
        _deliver(landing, source, "2026-10-01", "2026-11-01")
    _deliver(landing, "bank", "2026-11-08")   # a refresh a week later
    _deliver(landing, "card", "2026-11-11")   # late records of October
    _deliver(landing, "card", "2027-01-01")   # a folder from the future
    (landing / "card" / "dt=latest").mkdir()  # not a date: never a default
    assert default_as_of(landing, date(2026, 12, 4)) == date(2026, 11, 1)
    assert default_as_of(landing, date(2026, 10, 15)) == date(2026, 10, 1)
    assert default_as_of(tmp_path / "nothing", date(2026, 12, 4)) == date(2026, 12, 4)


def test_reports_default_to_the_newest_snapshot_then_today(tmp_path):
    subjects = tmp_path / "silver" / "subjects" / "purpose=marketing"
    assert report_as_of(None, subjects, date(2026, 12, 4)) == date(2026, 12, 4)
    for day in ("2026-10-01", "2026-11-01"):
        (subjects / f"as_of={day}").mkdir(parents=True)
        (subjects / f"as_of={day}" / "part-0.parquet").write_bytes(b"")
    (subjects / "as_of=2026-12-01").mkdir()  # an empty partition is not a snapshot
    assert report_as_of(None, subjects, date(2026, 12, 4)) == date(2026, 11, 1)
    assert report_as_of(date(2026, 10, 1), subjects, date(2026, 12, 4)) == date(2026, 10, 1)


def test_window_months_count_back_from_the_as_of_date():
    assert months_before(date(2026, 11, 15), 3) == date(2026, 8, 15)
    slot = window_slot(DUCKDB, "d", AsOf(date(2026, 11, 1)), 3)
    assert slot == ("CASE WHEN d >= DATE '2026-11-01' THEN NULL WHEN d >= DATE '2026-10-01' THEN 1 "
                    "WHEN d >= DATE '2026-09-01' THEN 2 WHEN d >= DATE '2026-08-01' THEN 3 END")
    assert AsOf(column="sp.as_of").start(DUCKDB, 2) == "CAST(sp.as_of + INTERVAL (-2) MONTH AS DATE)"
