"""The feature declarations compiled to SQL, for either engine's dialect.

Per silver table, one aggregation (every feature of the table a conditional aggregate in the
same ``GROUP BY``) and one coverage count (the months of each window the subject's holders
delivered the table), left-joined to the rows features are computed for; then the missing-data
rules, the derived features and the declared types. Time is ``schemas/asof.py``'s: knowledge is
the deliveries dated on or before the as-of date, events count in ``[as_of - n months, as_of)``,
state tables give the latest state of each item.

The rows are a snapshot's subjects, all as of one date (``features_sql``), or a spine of
(pseudonym, as_of) rows, each as of its own date (``historical_sql``, the training frame): one
compiler, so the two cannot disagree.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from features.definitions import FEATURES, SOURCES, Feature, Source, inputs_of
from features.release import RELEASED_QUASI_IDENTIFIERS
from schemas.asof import DELIVERED, AsOf, in_window, known, latest_state_sql, months_before, window_slot
from schemas.bronze import EVENT, STATE
from schemas.dialects import Dialect
from schemas.silver import ITEM

__all__ = ["features_sql", "historical_sql", "months_before", "catalog_stats_sql", "health_sql"]

SUBJECTS = "subjects"
SPINE_AS_OF = "as_of"  # the spine's column: each row's own as-of date
_TIME = "_t"
_ROW_AS_OF = "_as_of"  # a spine row's date, carried on the records joined to it
_ANY_HOLDER = "'*'"  # a table whose rows do not name their holder (the operator's usage extract)


@dataclass(frozen=True)
class Frame:
    """The rows features are computed for: every subject of a snapshot as of one date, or each
    row of a spine as of its own date."""

    as_of: date | None = None
    spine: str | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        return ("pseudonym",) if self.spine is None else ("pseudonym", _ROW_AS_OF)

    @property
    def row_as_of(self) -> AsOf:
        """The as-of date inside a table's records (a literal, or the spine row's date they carry)."""
        return AsOf(self.as_of) if self.spine is None else AsOf(column=_ROW_AS_OF)

    def records(self, table: str, columns: str = "*") -> str:
        """The rows of ``table`` known as of each frame row's date, keyed like the frame."""
        if self.spine is None:
            return f"SELECT {columns} FROM {table} WHERE {known(DELIVERED, self.row_as_of)}"
        return (f"SELECT {_qualified(columns)}, sp.{SPINE_AS_OF} AS {_ROW_AS_OF} FROM {table} x "
                f"JOIN (SELECT DISTINCT pseudonym, {SPINE_AS_OF} FROM {self.spine}) sp "
                f"ON sp.pseudonym = x.pseudonym AND x.{DELIVERED} <= sp.{SPINE_AS_OF}")


def _qualified(columns: str) -> str:
    return ", ".join(f"x.{c.strip()}" for c in columns.split(","))


def expression(sql: str, as_of: AsOf) -> str:
    """A declared expression with its as-of date filled in."""
    return sql.replace("{as_of}", as_of.sql)


def _literal(d: Dialect, value: float | str) -> str:
    return d.lit(value) if isinstance(value, str) else d.number(float(value))


# -- one table: its rows, its aggregates, its coverage ----------------------------------------------

def _rows(d: Dialect, frame: Frame, table: str, source: Source, widest: int | None) -> str:
    """The table's records that count as of each frame row: an event table's within the widest
    window, a state table's latest state; with the time as ``_t`` and the extra columns."""
    as_of = frame.row_as_of
    extra = "".join(f", {expression(sql, as_of)} AS {name}" for name, sql in source.columns)
    rows = frame.records(table)
    if source.timing == STATE:
        rows = latest_state_sql(d, rows, list(frame.keys), ITEM, source.holder_column)
    timed = f"SELECT *, {source.time_column} AS {_TIME}{extra} FROM ({rows}) r"
    if source.timing == EVENT:
        return f"SELECT * FROM ({timed}) t WHERE {in_window(d, _TIME, as_of, widest)}"
    return timed


def aggregate(d: Dialect, feature: Feature, as_of: AsOf) -> str:
    """The feature as one conditional aggregate over its table's rows; "monthly" is the sum here
    (divided by the months delivered once coverage is known)."""
    condition = in_window(d, _TIME, as_of, feature.window) if feature.timing == EVENT else "true"
    if feature.where:
        condition += f" AND coalesce(({expression(feature.where, as_of)}), false)"
    value = f"CASE WHEN {condition} THEN ({expression(feature.expr, as_of)}) END"
    double = d.sql_type("double")
    # sums are exact (decimals) and divided as doubles, so both engines give the same bits
    column = {"sum": f"sum({value})", "monthly": f"sum({value})",
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


def source_sql(d: Dialect, frame: Frame, table: str, source: Source, features: list[Feature]) -> str:
    """All features of one silver table, in one pass: the frame's keys, ``_seen``, one column per feature."""
    widest = max((f.window for f in features if f.window), default=None)
    aggregates = ", ".join(f"{aggregate(d, f, frame.row_as_of)} AS {f.name}" for f in features)
    keys = ", ".join(frame.keys)
    return (f"SELECT {keys}, true AS _seen, {aggregates} FROM ({_rows(d, frame, table, source, widest)}) x "
            f"GROUP BY {keys}")


def _holders_sql(d: Dialect, frame: Frame, tables: dict[str, str], source: Source) -> str:
    """(frame keys, ``_holder``): the holders that delivered anything of the table's data source for
    the subject, as known at each frame row's date."""
    keys = ", ".join(frame.keys)
    if source.holder_column is None:  # every fused subject is the one operator's
        rows = (f"SELECT pseudonym FROM {tables[SUBJECTS]}" if frame.spine is None
                else f"SELECT sp.pseudonym, sp.{SPINE_AS_OF} AS {_ROW_AS_OF} FROM {frame.spine} sp "
                     f"JOIN {tables[SUBJECTS]} u ON u.pseudonym = sp.pseudonym")
        return f"SELECT DISTINCT {keys}, {_ANY_HOLDER} AS _holder FROM ({rows}) h"
    parts = [frame.records(registered, f"pseudonym, {SOURCES[name].holder_column}")
             for name, registered in tables.items()
             if name != SUBJECTS and SOURCES[name].holder_column and _family(name) == _family(source.table)]
    return f"SELECT DISTINCT {keys}, org_code AS _holder FROM ({' UNION ALL '.join(parts)}) h"


def _family(table: str) -> str:
    """The data source (bank, card, telecom) a silver table's holders deliver."""
    return "bank" if table == "loans" else table.split("_")[0]


def coverage_sql(d: Dialect, frame: Frame, tables: dict[str, str], source: Source, windows: list[int]) -> str:
    """Per frame row: ``_cover_<n>``, the months of an n-month window in which one of the subject's
    holders delivered records of the table (any subject's); a state table's ``_cover`` is 1 when
    one of them ever delivered it."""
    holder = source.holder_column or _ANY_HOLDER
    registered = tables[source.table]
    as_of = AsOf(frame.as_of) if frame.spine is None else AsOf(column=f"h.{_ROW_AS_OF}")
    keys = ", ".join(f"h.{k}" for k in frame.keys)
    if source.timing == STATE:
        delivered = f"SELECT {holder} AS _holder, min({DELIVERED}) AS _known FROM {registered} GROUP BY {holder}"
        counts = "1 AS _cover"
        window = ""
    else:
        day = d.day_of(source.time_column)
        delivered = (f"SELECT {holder} AS _holder, {day} AS _day, min({DELIVERED}) AS _known "
                     f"FROM {registered} GROUP BY {holder}, {day}")
        widest = max(windows)
        slot = window_slot(d, "k._day", as_of, widest)
        counts = ", ".join(f"count(DISTINCT CASE WHEN k._day >= {as_of.start(d, n)} THEN {slot} END) AS _cover_{n}"
                           for n in windows)
        window = f" AND {in_window(d, 'k._day', as_of, widest)}"
    return (f"SELECT {keys}, {counts} FROM ({_holders_sql(d, frame, tables, source)}) h "
            f"JOIN ({delivered}) k ON k._holder = h._holder AND k._known <= {as_of.sql}{window} GROUP BY {keys}")


def _table_sql(d: Dialect, frame: Frame, tables: dict[str, str], source: Source, features: list[Feature],
               windows: list[int]) -> str:
    """A table's coverage per frame row with its aggregates beside it: one join into the frame per
    table (a subject with records of the table has its holder's coverage, so coverage holds every row)."""
    keys = " AND ".join(f"a.{k} = c.{k}" for k in frame.keys)
    aggregated = ", ".join(["a._seen", *[f"a.{f.name}" for f in features]])
    return (f"SELECT c.*, {aggregated} FROM ({coverage_sql(d, frame, tables, source, windows)}) c "
            f"LEFT JOIN ({source_sql(d, frame, tables[source.table], source, features)}) a ON {keys}")


def _finished(d: Dialect, feature: Feature, table: str | None) -> str:
    """The feature's column once coverage is known: null when the holder did not deliver its table
    (or too few of its months), the fill for a subject without records, a monthly average over the
    months delivered."""
    if table is None:  # the table has no rows at all: nobody delivered it
        return "NULL"
    aggregated, seen = f"t_{table}.{feature.name}", f"t_{table}._seen"
    cover = f"t_{table}._cover" if feature.timing == STATE else f"t_{table}._cover_{feature.window}"
    value = (f"CAST({aggregated} AS {d.sql_type('double')}) / {cover}" if feature.agg == "monthly" else aggregated)
    filled = f"WHEN {seen} IS NULL THEN {_literal(d, feature.fill)} " if feature.fill is not None else ""
    return f"CASE WHEN coalesce({cover}, 0) < {feature.min_months} THEN NULL {filled}ELSE {value} END"


def _derived(feature: Feature) -> str:
    """A derived feature: null when any feature it reads is null (a ratio of a missing part is missing)."""
    inputs = inputs_of(feature)
    value = feature.expr
    if not inputs:
        return value
    return f"CASE WHEN {' OR '.join(f'{name} IS NULL' for name in inputs)} THEN NULL ELSE {value} END"


# -- the whole table ----------------------------------------------------------------------------------

def _compile(d: Dialect, tables: dict[str, str], frame: Frame) -> str:
    if frame.spine is None:
        rows, on, as_of = f"{tables[SUBJECTS]} s", lambda alias: f"{alias}.pseudonym = s.pseudonym", AsOf(frame.as_of)
    else:  # each spine row, with its subject's attributes from the snapshot
        rows = f"{frame.spine} s LEFT JOIN {tables[SUBJECTS]} u ON u.pseudonym = s.pseudonym"
        on = lambda alias: f"{alias}.pseudonym = s.pseudonym AND {alias}.{_ROW_AS_OF} = s.{SPINE_AS_OF}"  # noqa: E731
        as_of = AsOf(column=f"s.{SPINE_AS_OF}")
    columns, joins = [], []
    for name, source in SOURCES.items():
        mine = [f for f in FEATURES if f.source == name]
        if name == SUBJECTS:
            columns += [f"{expression(f.expr, as_of)} AS {f.name}" for f in mine]
            continue
        if name in tables:
            windows = sorted({f.window for f in mine if f.window})
            joins.append(f"LEFT JOIN ({_table_sql(d, frame, tables, source, mine, windows)}) t_{name} "
                         f"ON {on(f't_{name}')}")
        columns += [f"{_finished(d, f, name if name in tables else None)} AS {f.name}" for f in mine]
    keys = "s.pseudonym" + ("" if frame.spine is None else f", s.{SPINE_AS_OF}")
    query = f"SELECT {keys}, {', '.join(columns)} FROM {rows} " + " ".join(joins)
    for feature in (f for f in FEATURES if f.source == "derived"):  # each may use those before it
        query = f"SELECT *, {_derived(feature)} AS {feature.name} FROM ({query}) q_{feature.name}"
    typed = ", ".join(f"CAST({f.name} AS {d.sql_type(f.dtype)}) AS {f.name}" for f in FEATURES)
    return f"SELECT pseudonym{'' if frame.spine is None else ', ' + SPINE_AS_OF}, {typed} FROM ({query}) f"


def features_sql(d: Dialect, tables: dict[str, str], as_of: date) -> str:
    """One row per subject of ``tables["subjects"]`` with every declared feature as of ``as_of``,
    in declaration order and type; ``tables``: silver table -> registered name (a table with no
    rows is left out: its features are null)."""
    return _compile(d, tables, Frame(as_of=as_of))


def historical_sql(d: Dialect, tables: dict[str, str], spine: str) -> str:
    """One row per row of the registered ``spine`` (``pseudonym``, ``as_of`` date): every declared
    feature as of that row's own date, from what was delivered by then (no later delivery reaches it)."""
    return _compile(d, tables, Frame(spine=spine))


def catalog_stats_sql(d: Dialect, snapshot: str, columns: list[str]) -> str:
    """One row of summary statistics of the published ``snapshot``: per numeric feature its
    non-null count, mean, std, min, median and max; per released quasi-identifier its distinct values."""
    numeric = [f.name for f in FEATURES if f.dtype != "string" and f.name in columns]
    parts = ["count(*) AS _rows", *[part for n in numeric for part in (
        f"count({n}) AS {n}__n", f"avg({n}) AS {n}__mean", f"stddev_samp({n}) AS {n}__std", f"min({n}) AS {n}__min",
        f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {n}) AS {n}__p50", f"max({n}) AS {n}__max")],
        *[f"count(DISTINCT {q}) AS {q}__distinct" for q in RELEASED_QUASI_IDENTIFIERS if q in columns]]
    return f"SELECT {', '.join(parts)} FROM {snapshot}"


def health_sql(d: Dialect, table: str, columns: list[str]) -> str:
    """One row: per column its non-null count, zero count and distinct values (``<c>__n``,
    ``<c>__zero``, ``<c>__distinct``), and ``_rows``."""
    numeric = {f.name for f in FEATURES if f.dtype != "string"}
    doubles = {f.name for f in FEATURES if f.dtype == "double"}
    parts = ["count(*) AS _rows"]
    for c in columns:
        zero = f"count(CASE WHEN {c} = 0 THEN 1 END)" if c in numeric else "0"
        # doubles to 6 places: the engines' sums differ in the last bits, not in what a person reads
        value = f"round({c}, 6)" if c in doubles else c
        parts += [f"count({c}) AS {c}__n", f"{zero} AS {c}__zero", f"count(DISTINCT {value}) AS {c}__distinct"]
    return f"SELECT {', '.join(parts)} FROM {table}"
