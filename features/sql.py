"""The feature declarations compiled to SQL, for either engine's dialect.

One aggregation per silver table (every feature of the table a conditional aggregate in the same
``GROUP BY pseudonym``), left-joined to the subjects, then the fills, the derived features and
the declared types. Point in time: a record counts only when its time is strictly before the
as-of date (00:00 KST, the session's zone on both engines) and within its feature's window.
"""
from __future__ import annotations

import calendar
from datetime import date

from features.definitions import FEATURES, SOURCES, Feature, Source
from features.release import RELEASED_QUASI_IDENTIFIERS
from schemas.sql import Dialect

SUBJECTS = "subjects"
_TIME = "_t"


def months_before(as_of: date, months: int) -> date:
    """``as_of`` moved back ``months`` months; a day past the month's end is its last day (Spark's add_months)."""
    index = as_of.year * 12 + as_of.month - 1 - months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(as_of.day, calendar.monthrange(year, month + 1)[1]))


def expression(sql: str, as_of: date) -> str:
    """A declared expression with its as-of date filled in."""
    return sql.replace("{as_of}", as_of.isoformat())


def in_window(window: int | None, as_of: date) -> str:
    """Strictly before the as-of date and, with a window, not before ``window`` months earlier."""
    before = f"{_TIME} < DATE '{as_of.isoformat()}'"
    return before if window is None else f"{before} AND {_TIME} >= DATE '{months_before(as_of, window).isoformat()}'"


def _literal(d: Dialect, value: float | str) -> str:
    return d.lit(value) if isinstance(value, str) else d.number(float(value))


def aggregate(d: Dialect, feature: Feature, as_of: date) -> str:
    """The feature as one conditional aggregate over its table's rows."""
    condition = in_window(feature.window, as_of)
    if feature.where:
        condition += f" AND coalesce(({expression(feature.where, as_of)}), false)"
    value = f"CASE WHEN {condition} THEN ({expression(feature.expr, as_of)}) END"
    double = d.sql_type("double")
    # sums are exact (decimals) and divided as doubles, so both engines give the same bits
    column = {"sum": f"sum({value})", "monthly": f"CAST(sum({value}) AS {double}) / {feature.window}",
              "mean": f"CAST(sum({value}) AS {double}) / count({value})", "count": f"count({value})",
              "max": f"max({value})", "min": f"min({value})", "stddev": f"stddev_samp({value})",
              # newest record; of records equally new the largest value, whatever the partitioning
              "latest": d.latest(value, f"CASE WHEN {condition} AND ({value}) IS NOT NULL THEN {_TIME} END")
              }.get(feature.agg)
    if column is None:
        raise ValueError(f"feature {feature.name}: aggregation {feature.agg!r} needs no table pass")
    if feature.fill is not None:
        # no record in the window is the fill (nothing spent: 0); records whose value the holder does
        # not measure (an optional column left empty) stay null: missing, not zero
        column = f"CASE WHEN count(CASE WHEN {condition} THEN 1 END) = 0 THEN {_literal(d, feature.fill)} ELSE {column} END"
    return column


def source_sql(d: Dialect, table: str, source: Source, features: list[Feature], as_of: date) -> str:
    """All features of one silver table, in one pass: pseudonym, ``_seen``, one column per feature."""
    widest = max((f.window for f in features if f.window), default=None)
    extra = "".join(f", {expression(sql, as_of)} AS {name}" for name, sql in source.columns)
    aggregates = ", ".join(f"{aggregate(d, f, as_of)} AS {f.name}" for f in features)
    # pruned to the widest window before grouping; each feature narrows further
    return (f"SELECT pseudonym, true AS _seen, {aggregates} "
            f"FROM (SELECT *, {source.time_column} AS {_TIME}{extra} FROM {table}) x "
            f"WHERE {in_window(widest, as_of)} GROUP BY pseudonym")


def features_sql(d: Dialect, tables: dict[str, str], as_of: date) -> str:
    """One row per subject of ``tables["subjects"]`` with every declared feature, in declaration
    order and type; ``tables``: silver table -> registered name (a table with no rows is left out)."""
    columns, joins = [], []
    for name, source in SOURCES.items():
        mine = [f for f in FEATURES if f.source == name]
        if name == SUBJECTS:
            columns += [f"{expression(f.expr, as_of)} AS {f.name}" for f in mine]
        elif name in tables:
            joins.append(f"LEFT JOIN ({source_sql(d, tables[name], source, mine, as_of)}) a_{name} "
                         f"ON a_{name}.pseudonym = s.pseudonym")
            columns += [f"CASE WHEN a_{name}._seen IS NULL THEN {_literal(d, f.fill)} ELSE a_{name}.{f.name} END "
                        f"AS {f.name}" if f.fill is not None else f"a_{name}.{f.name}" for f in mine]
        else:  # a table with no rows at all: its features are what "no records" means
            columns += [f"{_literal(d, f.fill) if f.fill is not None else 'NULL'} AS {f.name}" for f in mine]
    query = f"SELECT s.pseudonym, {', '.join(columns)} FROM {tables[SUBJECTS]} s " + " ".join(joins)
    for feature in (f for f in FEATURES if f.source == "derived"):  # each may use those before it
        query = f"SELECT *, {expression(feature.expr, as_of)} AS {feature.name} FROM ({query}) q_{feature.name}"
    typed = ", ".join(f"CAST({f.name} AS {d.sql_type(f.dtype)}) AS {f.name}" for f in FEATURES)
    return f"SELECT pseudonym, {typed} FROM ({query}) f"


def catalog_stats_sql(d: Dialect, snapshot: str, columns: list[str]) -> str:
    """One row of summary statistics of the published ``snapshot``: per numeric feature its
    non-null count, mean, std, min, median and max; per released quasi-identifier its distinct values."""
    numeric = [f.name for f in FEATURES if f.dtype != "string" and f.name in columns]
    parts = ["count(*) AS _rows", *[part for n in numeric for part in (
        f"count({n}) AS {n}__n", f"avg({n}) AS {n}__mean", f"stddev_samp({n}) AS {n}__std", f"min({n}) AS {n}__min",
        f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {n}) AS {n}__p50", f"max({n}) AS {n}__max")],
        *[f"count(DISTINCT {q}) AS {q}__distinct" for q in RELEASED_QUASI_IDENTIFIERS if q in columns]]
    return f"SELECT {', '.join(parts)} FROM {snapshot}"
