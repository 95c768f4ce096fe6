"""What "as of D" means, written once: fuse, features, the release gate, the training frame, the
DAGs' and the CLI's default date, the subject trace and the benchmark reference all use this.

- Knowledge: a snapshot as of D is built from the deliveries dated on or before D. A delivery
  dated later never changes it, so a rerun of D after a late delivery is the same, cell for cell.
- Events count by their own time, within a window of whole months before D: ``[D - n months, D)``.
- State: per subject and holder, the newest collection known at D (its calls within a day of
  the newest one); of it, one row per item (account, loan, line), the newest.
- Consent is evaluated at D's first moment (KST): a consent given during D counts from D + 1.

docs/stages/features.md draws the timeline.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

from schemas.dialects import Dialect

#: a state collection is the calls of a holder for a subject within this many hours of its newest
COLLECTION_HOURS = 24
DELIVERED = "delivered"  # silver's column of the delivery date a record came in


def as_of_moment(as_of: date | datetime) -> datetime:
    """An as-of date means its first moment (KST) for consent: events strictly before it count."""
    return as_of if isinstance(as_of, datetime) else datetime.combine(as_of, time.min)


def months_before(as_of: date, months: int) -> date:
    """``as_of`` moved back ``months`` months; a day past the month's end is its last day (Spark's add_months)."""
    index = as_of.year * 12 + as_of.month - 1 - months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(as_of.day, calendar.monthrange(year, month + 1)[1]))


def default_as_of(landing: Path, today: date) -> date:
    """The as-of date a run takes when none is given: the newest date, not after today, on which
    every source delivered (so each source's own collections of that day count); with no such
    date the newest delivery; with none at all, today. A delivery dated later (a refresh, a late
    month) waits for a later as-of date: it never changes this snapshot."""
    by_source: dict[str, set[date]] = {}
    for folder in landing.glob("*/dt=*"):
        try:
            day = date.fromisoformat(folder.name[3:])
        except ValueError:
            continue
        if day <= today:
            by_source.setdefault(folder.parent.name, set()).add(day)
    if not by_source:
        return today
    every = set.intersection(*by_source.values())
    return max(every) if every else max(set.union(*by_source.values()))


def report_as_of(given: date | None, silver_subjects: Path, today: date) -> date:
    """The as-of date of a stage that reports on a snapshot (the consent review, partner statistics)
    when none is given: the newest snapshot fusion published, else today."""
    return given or latest_snapshot(silver_subjects) or today


def latest_snapshot(silver_subjects: Path) -> date | None:
    """The newest as-of date fusion published for a purpose (its ``silver/subjects`` table)."""
    dates = []
    for folder in silver_subjects.glob("as_of=*"):
        if any(folder.glob("*.parquet")):
            try:
                dates.append(date.fromisoformat(folder.name[len("as_of="):]))
            except ValueError:
                continue
    return max(dates, default=None)


@dataclass(frozen=True)
class AsOf:
    """Where a query's as-of date comes from: one date for a whole snapshot, or a column of a
    spine (the training frame: each row's own date)."""

    value: date | None = None
    column: str | None = None

    def __post_init__(self) -> None:
        if (self.value is None) == (self.column is None):
            raise ValueError("AsOf takes a date or a column, not both")

    @property
    def sql(self) -> str:
        return f"DATE '{self.value.isoformat()}'" if self.value is not None else self.column

    def start(self, d: Dialect, months: int) -> str:
        """The first day of a window of ``months`` whole months before the as-of date."""
        if self.value is not None:
            return f"DATE '{months_before(self.value, months).isoformat()}'"
        return d.add_months(self.column, -months)


def known(delivered: str, as_of: AsOf) -> str:
    """SQL: a record of a delivery dated ``delivered`` is known as of the date."""
    return f"{delivered} <= {as_of.sql}"


def in_window(d: Dialect, moment: str, as_of: AsOf, months: int | None) -> str:
    """SQL: an event at ``moment`` is before the as-of date and, with ``months``, within the window."""
    before = f"{moment} < {as_of.sql}"
    return before if months is None else f"{before} AND {moment} >= {as_of.start(d, months)}"


def window_slot(d: Dialect, day: str, as_of: AsOf, months: int) -> str:
    """SQL: which month of the window before the as-of date ``day`` falls in (1 the newest), null past it."""
    slots = " ".join(f"WHEN {day} >= {as_of.start(d, n)} THEN {n}" for n in range(1, months + 1))
    return f"CASE WHEN {day} >= {as_of.sql} THEN NULL {slots} END"


def latest_state_sql(d: Dialect, rows: str, keys: list[str], item: str, holder: str) -> str:
    """The state known in ``rows`` (records already limited to what is known): per ``keys`` and
    ``holder`` the newest collection (within COLLECTION_HOURS of its newest call), one row per
    ``item`` from it, its newest (of equally new ones, the newest delivery)."""
    by = ", ".join(keys)
    return (f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY {by}, {item} "
            f"ORDER BY collected_at DESC, {DELIVERED} DESC) AS _newest_of_item, "
            f"max(collected_at) OVER (PARTITION BY {by}, {holder}) AS _newest_collection FROM ({rows}) r) s "
            f"WHERE _newest_of_item = 1 AND collected_at > {d.hours_before('_newest_collection', COLLECTION_HOURS)}")
