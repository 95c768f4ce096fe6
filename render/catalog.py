"""The feature catalog, generated from the declarations with statistics of the published snapshot
(``reports/features/catalog-<purpose>.html``)."""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from features.definitions import FEATURES
from mydata import html
from mydata.lake import Lake


def catalog_path(lake: Lake, purpose: str) -> Path:
    return lake.report("features") / f"catalog-{purpose}.html"


def write_catalog(lake: Lake, purpose: str, as_of: date, stats: dict[str, Any], columns: list[str]) -> Path:
    """Every declaration, with the summary statistics (``features.sql.catalog_stats_sql``) of the
    published snapshot whose ``columns`` they describe."""
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
        rows.append((html.code(f.name), f.description, f.source, window,
                     f.agg + (f" where {f.where}" if f.where else ""), f.dtype, f.unit,
                     "yes" if f.quasi_identifier else "", *shown))
    section = html.section(f"{len(FEATURES)} features", html.table(
        ("feature", "description", "source", "window", "aggregation", "dtype", "unit", "quasi-identifier",
         "non-null", "mean", "std", "min", "median", "max"), rows),
        note="Generated from features/definitions.py. Windows end strictly before the as-of date.")
    facts = {"purpose": purpose, "snapshot": as_of.isoformat(), "subjects": f"{stats['_rows']:,}"}
    return html.write_page(catalog_path(lake, purpose), html.page(f"Feature catalog: {purpose}", facts, [section]))
