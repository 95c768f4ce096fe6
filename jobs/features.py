"""Features: the declarations of features/ compiled into Spark aggregations over silver.

One pass per silver table: every feature of a table is a conditional aggregate in the same
``groupBy(pseudonym)``. Point in time: a record counts only when its time is strictly before the
as-of date (00:00 KST), and within its feature's window. The result, one row per fused subject,
is the release candidate ``silver/features/purpose=<p>/as_of=<date>/``: internal until the
release gate (jobs/privacy.py) generalises its quasi-identifiers and publishes it to gold.
"""
from __future__ import annotations

import sys
from datetime import date

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features.definitions import FEATURES, SOURCES, Feature, Source
from jobs import storage
from jobs.fuse import silver_table
from mydata import html
from mydata.config import ConfigError, Settings
from mydata.lake import Lake
from mydata.manifest import RunManifest, missing_input

JOB = "features"
CANDIDATES = "features"  # silver table of release candidates
_TIME = "_t"


def _sql(text: str, as_of: date) -> SparkColumn:
    return F.expr(text.replace("{as_of}", as_of.isoformat()))


def in_window(window: int | None, as_of: date) -> SparkColumn:
    """Strictly before the as-of date and, with a window, not before ``window`` months earlier."""
    before = F.col(_TIME) < F.lit(as_of)
    return before if window is None else before & (F.col(_TIME) >= F.add_months(F.lit(as_of), -window))


def aggregate(feature: Feature, as_of: date) -> SparkColumn:
    """The feature as one conditional aggregate over its table's rows."""
    condition = in_window(feature.window, as_of)
    if feature.where:
        condition = condition & F.coalesce(_sql(feature.where, as_of), F.lit(False))
    value = F.when(condition, _sql(feature.expr, as_of))
    agg = feature.agg
    if agg == "sum":
        column = F.sum(value)
    elif agg == "monthly":
        column = F.sum(value) / F.lit(feature.window)
    elif agg == "mean":
        column = F.avg(value)
    elif agg == "count":
        column = F.count(value)
    elif agg == "max":
        column = F.max(value)
    elif agg == "min":
        column = F.min(value)
    elif agg == "stddev":
        column = F.stddev_samp(value)
    elif agg == "latest":
        # newest record; records equally new (two lines in one month) give the largest value, so the
        # result never depends on how rows happen to be partitioned
        column = F.max_by(value, F.when(condition & value.isNotNull(), F.struct(F.col(_TIME), value)))
    else:
        raise ValueError(f"feature {feature.name}: aggregation {agg!r} needs no table pass")
    if feature.fill is not None:
        # no record in the window is the fill (nothing spent: 0); records whose value the holder does
        # not measure (an optional column left empty) stay null: missing, not zero
        column = F.when(F.count(F.when(condition, 1)) == 0, F.lit(feature.fill)).otherwise(column)
    return column.alias(feature.name)


def source_features(frame: DataFrame, source: Source, features: list[Feature], as_of: date) -> DataFrame:
    """All features of one silver table, in one pass: pseudonym + one column per feature."""
    widest = max((f.window for f in features if f.window), default=None)
    rows = frame.withColumn(_TIME, F.col(source.time_column))
    for name, sql in source.columns:
        rows = rows.withColumn(name, _sql(sql, as_of))
    rows = rows.where(in_window(widest, as_of))  # prune before the shuffle; each feature narrows further
    return rows.groupBy("pseudonym").agg(*[aggregate(f, as_of) for f in features])


def _seen(source: str) -> str:
    """The column that marks a subject with rows in ``source``: a subject without any gets the fill."""
    return f"_in_{source}"


def _filled(feature: Feature) -> SparkColumn:
    if feature.fill is None:
        return F.col(feature.name)
    if feature.source == "subjects":
        return F.coalesce(F.col(feature.name), F.lit(feature.fill))
    return F.when(F.col(_seen(feature.source)).isNull(), F.lit(feature.fill)).otherwise(F.col(feature.name))


def build_features(tables: dict[str, DataFrame], as_of: date) -> DataFrame:
    """One row per subject of ``tables["subjects"]`` with every declared feature, in declaration order."""
    subject_features = [f for f in FEATURES if f.source == "subjects"]
    result = tables["subjects"].select("pseudonym", *[_sql(f.expr, as_of).alias(f.name) for f in subject_features])
    for name, source in SOURCES.items():
        mine = [f for f in FEATURES if f.source == name]
        if name == "subjects" or not mine:
            continue
        if name in tables:
            found = source_features(tables[name], source, mine, as_of).withColumn(_seen(name), F.lit(True))
            result = result.join(found, "pseudonym", "left")
        else:  # a table with no rows at all: its features are what "no records" means
            result = result.select("*", *[F.lit(None).cast(f.dtype).alias(f.name) for f in mine],
                                   F.lit(None).cast("boolean").alias(_seen(name)))
    result = result.select("pseudonym", *[_filled(f).alias(f.name) for f in FEATURES if f.source != "derived"])
    for feature in (f for f in FEATURES if f.source == "derived"):
        result = result.withColumn(feature.name, _sql(feature.expr, as_of))
    return result.select("pseudonym", *[F.col(f.name).cast(f.dtype).alias(f.name) for f in FEATURES])


def read_silver(spark: SparkSession, lake: Lake, purpose: str, as_of: date) -> dict[str, DataFrame]:
    tables = {}
    for name in SOURCES:
        folder = silver_table(lake, name, purpose) / f"as_of={as_of.isoformat()}"
        if folder.is_dir() and any(folder.glob("*.parquet")):
            tables[name] = spark.read.parquet(str(folder))
    if "subjects" not in tables:
        raise FileNotFoundError(missing_input(lake, "fused subjects", "fuse", f"mydata fuse --as-of {as_of}",
                                              purpose=purpose, as_of=as_of.isoformat()))
    return tables


def catalog_path(lake: Lake, purpose: str):
    return lake.report("features") / f"catalog-{purpose}.html"


def write_catalog(lake: Lake, purpose: str, as_of: date, snapshot: DataFrame):
    """The feature catalog: every declaration, with summary statistics of the published snapshot."""
    from features.release import RELEASED_QUASI_IDENTIFIERS

    numeric = [f for f in FEATURES if f.dtype != "string" and f.name in snapshot.columns]
    stats = snapshot.agg(F.count(F.lit(1)).alias("_rows"), *[
        column for f in numeric for column in (
            F.count(f.name).alias(f"{f.name}__n"), F.avg(f.name).alias(f"{f.name}__mean"),
            F.stddev_samp(f.name).alias(f"{f.name}__std"), F.min(f.name).alias(f"{f.name}__min"),
            F.percentile_approx(f.name, 0.5).alias(f"{f.name}__p50"), F.max(f.name).alias(f"{f.name}__max"))],
        *[F.countDistinct(q).alias(f"{q}__distinct") for q in RELEASED_QUASI_IDENTIFIERS if q in snapshot.columns]
    ).first().asDict()

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


def run(settings: Settings, spark: SparkSession | None = None) -> dict:
    """Compute the release candidate for ``settings.purpose`` as of ``settings.as_of``."""
    from mydata.spark import concurrently, spark_session

    if settings.as_of is None:
        raise ConfigError("features needs an as-of date (--as-of YYYY-MM-DD or MYDATA_AS_OF)")
    lake, purpose, as_of = settings.lake, settings.purpose, settings.as_of
    spark = spark or spark_session(settings, "features")
    manifest = RunManifest.start(JOB, purpose=purpose, as_of=as_of.isoformat())
    tables = read_silver(spark, lake, purpose, as_of)
    manifest.inputs = {"silver": dict(zip(tables, concurrently([(frame.count,) for frame in tables.values()])))}
    target = silver_table(lake, CANDIDATES, purpose)
    storage.replace_partitions(build_features(tables, as_of).withColumn("as_of", F.lit(as_of)), target, [as_of],
                               manifest.run_id, key="as_of")
    written = spark.read.parquet(str(target / f"as_of={as_of.isoformat()}"))
    manifest.outputs = {"candidate": str(target / f"as_of={as_of.isoformat()}"), "subjects": written.count(),
                        "features": len(FEATURES)}
    path = manifest.finish(lake)
    return {"manifest": str(path), **manifest.outputs}


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load()), file=sys.stdout)
