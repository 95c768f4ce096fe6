"""The feature catalog, generated from the declarations with statistics of the published snapshot
(``reports/features/catalog-<purpose>.html``)."""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from features.definitions import FEATURES
from mydata.lake import Lake
from render import html


def catalog_path(lake: Lake, purpose: str) -> Path:
    return lake.report("features") / f"catalog-{purpose}.html"


def write_catalog(lake: Lake, purpose: str, as_of: date, stats: dict[str, Any], columns: list[str],
                  feature_health: dict[str, dict] | None = None) -> Path:
    """Every declaration, with the summary statistics (``features.sql.catalog_stats_sql``) of the
    published snapshot whose ``columns`` they describe, its health and its rule for missing data."""
    feature_health = feature_health or {}
    numeric = [f for f in FEATURES if f.dtype != "string" and f.name in columns]

    def number(value) -> str:
        return "" if value is None else (f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}")

    rows = []
    for f in FEATURES:
        window = f"{f.window} month{'s' if f.window != 1 else ''}" if f.window else ""
        if f in numeric:
            shown = [f"{stats[f'{f.name}__n']:,}", *[number(stats[f"{f.name}__{s}"]) for s in ("mean", "std", "min",
                                                                                              "p50", "max")]]
        else:
            released = {"age": "age_band", "region_code": "region"}.get(f.name, f.name)
            distinct = stats.get(f"{released}__distinct")
            shown = ["", f"released as {released}, {distinct} values" if distinct is not None else "", "", "", "", ""]
        h = feature_health.get(f.name)
        shown_health = ["", "", "", ""] if h is None else [
            f"{h['null_share']:.1%}", f"{h['zero_share']:.1%}", f"{h['distinct']:,}",
            html.status(h["status"] == "ok", "ok", h["status"].upper())]
        rows.append((html.code(f.name), f.description, f.source, f.timing or "", window,
                     f.agg + (f" where {f.where}" if f.where else ""), f.missing_rule, f.dtype, f.unit,
                     "yes" if f.quasi_identifier else "", *shown, *shown_health))
    blank = sorted(name for name, h in feature_health.items() if h["status"] != "ok")
    section = html.section(f"{len(FEATURES)} features", html.table(
        ("feature", "description", "source", "table is", "window", "aggregation", "when missing", "dtype", "unit",
         "quasi-identifier", "non-null", "mean", "std", "min", "median", "max", "null", "zero", "distinct", "health"),
        rows),
        note="Generated from features/definitions.py. Event windows end strictly before the as-of date; state "
             "tables give each item's latest collection known at it (docs/stages/features.md). "
             + (f"Blank (constant or all null) in this snapshot: {', '.join(blank)}." if blank
                else "No feature is blank in this snapshot."))
    facts = {"purpose": purpose, "snapshot": as_of.isoformat(), "subjects": f"{stats['_rows']:,}"}
    return html.write_page(catalog_path(lake, purpose), html.page(f"Feature catalog: {purpose}", facts, [section]))
