"""Feature health: per feature its share null, share zero and distinct values, and whether it is
blank (all null, or one value for everyone). The release gate checks it at every release, the
catalog, the privacy report, the front page and ``mydata status`` show it, and training leaves
blank features out: a feature the same for every subject separates nobody.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

OK, CONSTANT, ALL_NULL = "ok", "constant", "all null"


@dataclass(frozen=True)
class FeatureHealth:
    name: str
    rows: int
    nulls: int
    zeros: int
    distinct: int

    @property
    def null_share(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def zero_share(self) -> float:
        return self.zeros / self.rows if self.rows else 0.0

    @property
    def status(self) -> str:
        if self.rows and self.nulls == self.rows:
            return ALL_NULL
        return CONSTANT if self.rows and self.distinct <= 1 else OK

    @property
    def blank(self) -> bool:
        return self.status != OK

    def line(self) -> str:
        """One line a person reads: ``bank_accounts: 0.0% null, 12.3% zero, 4 distinct``."""
        flag = "" if not self.blank else f"  <- {self.status.upper()}"
        return (f"{self.name}: {self.null_share:.1%} null, {self.zero_share:.1%} zero, "
                f"{self.distinct:,} distinct{flag}")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "null_share": round(self.null_share, 6), "zero_share": round(self.zero_share, 6),
                "status": self.status}


def from_row(row: dict[str, Any], columns: list[str]) -> list[FeatureHealth]:
    """Health per column from the one row of ``features.sql.health_sql``."""
    rows = int(row["_rows"])
    return [FeatureHealth(c, rows, rows - int(row[f"{c}__n"]), int(row[f"{c}__zero"] or 0), int(row[f"{c}__distinct"]))
            for c in columns]


def from_manifest(entries: dict[str, dict]) -> list[FeatureHealth]:
    """Health as a release manifest recorded it."""
    return [FeatureHealth(name, e["rows"], e["nulls"], e["zeros"], e["distinct"]) for name, e in entries.items()]


def named(blank: dict[str, str]) -> str:
    """Blank features as people read them: ``card_spend_1m (all null), telecom_lines (constant)``."""
    return ", ".join(f"{name} ({why})" for name, why in blank.items())


def went_blank(now: list[FeatureHealth], before: list[FeatureHealth]) -> list[FeatureHealth]:
    """Features informative in the previous release that are blank now."""
    informative = {h.name for h in before if not h.blank}
    return [h for h in now if h.blank and h.name in informative]


def frame_blank(frame, features: list[str]) -> dict[str, str]:
    """The blank features of a pandas frame, with why (for training): all null, or constant."""
    out = {}
    for name in features:
        values = frame[name].dropna()
        if values.empty:
            out[name] = ALL_NULL
        elif values.nunique() <= 1:
            out[name] = CONSTANT
    return out
