"""Features: the declarations of features/ compiled to SQL (features/sql.py), on the configured engine.

Reads the fused silver tables of a purpose and as-of date; writes the release candidate, one row
per fused subject, to ``silver/features/purpose=<p>/as_of=<date>/``: internal until the release
gate (jobs/privacy.py) generalises its quasi-identifiers and publishes it to gold.
"""
from __future__ import annotations

import sys
from datetime import date

from features.definitions import FEATURES, SOURCES
from features.sql import features_sql
from mydata import storage
from mydata import html
from mydata.config import ConfigError, Settings
from mydata.engines import Engine, open_engine
from mydata.lake import Lake
from mydata.manifest import RunManifest, missing_input

JOB = "features"
CANDIDATES = "features"  # silver table of release candidates


def register_silver(engine: Engine, lake: Lake, purpose: str, as_of: date) -> dict[str, str]:
    """Every silver table of the purpose with rows as of ``as_of``, as ``silver_<table>``."""
    tables = {}
    for name in SOURCES:
        if storage.rows_in(lake.silver_table(name, purpose) / f"as_of={as_of.isoformat()}"):
            engine.parquet(f"silver_{name}_all", lake.silver_table(name, purpose))
            engine.view(f"silver_{name}", f"SELECT * FROM silver_{name}_all WHERE as_of = DATE '{as_of.isoformat()}'")
            tables[name] = f"silver_{name}"
    if "subjects" not in tables:
        raise FileNotFoundError(missing_input(lake, "fused subjects", "fuse", f"mydata fuse --as-of {as_of}",
                                              purpose=purpose, as_of=as_of.isoformat()))
    return tables


def catalog_path(lake: Lake, purpose: str):
    return lake.report("features") / f"catalog-{purpose}.html"


def catalog_stats_sql(d, snapshot: str, columns: list[str]) -> str:
    """One row of summary statistics of the published ``snapshot``: per numeric feature its
    non-null count, mean, std, min, median and max; per released quasi-identifier its distinct values."""
    from features.release import RELEASED_QUASI_IDENTIFIERS

    numeric = [f.name for f in FEATURES if f.dtype != "string" and f.name in columns]
    parts = ["count(*) AS _rows", *[part for n in numeric for part in (
        f"count({n}) AS {n}__n", f"avg({n}) AS {n}__mean", f"stddev_samp({n}) AS {n}__std", f"min({n}) AS {n}__min",
        f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {n}) AS {n}__p50", f"max({n}) AS {n}__max")],
        *[f"count(DISTINCT {q}) AS {q}__distinct" for q in RELEASED_QUASI_IDENTIFIERS if q in columns]]
    return f"SELECT {', '.join(parts)} FROM {snapshot}"


def write_catalog(engine: Engine, lake: Lake, purpose: str, as_of: date, snapshot: str):
    """The feature catalog: every declaration, with summary statistics of the published ``snapshot``."""
    columns = engine.columns(snapshot)
    stats = engine.rows(catalog_stats_sql(engine.dialect, snapshot, columns))[0]
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


def run(settings: Settings, spark=None) -> dict:
    """Compute the release candidate for ``settings.purpose`` as of ``settings.as_of``."""
    if settings.as_of is None:
        raise ConfigError("features needs an as-of date (--as-of YYYY-MM-DD or MYDATA_AS_OF)")
    lake, purpose, as_of = settings.lake, settings.purpose, settings.as_of
    manifest = RunManifest.start(JOB, purpose=purpose, as_of=as_of.isoformat(), engine=settings.engine)
    target = lake.silver_table(CANDIDATES, purpose)
    engine = open_engine(settings, spark)
    try:
        tables = register_silver(engine, lake, purpose, as_of)
        query = f"SELECT *, DATE '{as_of.isoformat()}' AS as_of FROM ({features_sql(engine.dialect, tables, as_of)}) c"
        storage.publish([engine.stage(query, target, [as_of], manifest.run_id, key="as_of")])
    finally:
        engine.close()
    partition = target / f"as_of={as_of.isoformat()}"
    manifest.inputs = {"silver": {name: storage.rows_in(lake.silver_table(name, purpose) / partition.name)
                                  for name in tables}}
    manifest.outputs = {"candidate": str(partition), "subjects": storage.rows_in(partition), "features": len(FEATURES)}
    path = manifest.finish(lake)
    return {"manifest": str(path), **manifest.outputs}


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load()), file=sys.stdout)
