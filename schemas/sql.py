"""The contracts compiled to SQL, for both engines: one compiler, one dialect table.

Every bronze rule (``schemas.bronze``) becomes SQL here, once; ``Dialect`` holds the handful of
words in which Spark SQL and DuckDB differ (string literals, regular expressions, time parsing,
structs and lists, JSON and CSV parsing). Jobs build their queries from these functions and run
them on the configured engine, so the engines cannot drift apart in what a rule means: the parity
suite (``tests/parity``) checks they agree cell for cell.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date as calendar_date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from mydata.config import SESSION_TIME_ZONE
from schemas.bronze import SPARK_TYPES, Column, TableSpec
from schemas.landing import LINK_KEY_PATTERN

#: how a landing kind is named in a rule's reason
KIND_TEXT = {"dtime": "KST timestamp YYYYMMDDhhmmss", "date": "date YYYYMMDD",
             "month": "month YYYYMM", "amount": "non-negative decimal",
             "signed": "decimal",
             "rate": "non-negative decimal rate", "bool": "true/false", "int": "whole number",
             "count": "whole number", "day": "day of month", "year": "year",
             "number": "non-negative number", "ratio": "number", "version": "key version",
             "link_key": "43-character base64url link key"}
#: a value is shown in a reason only as far as a reader needs (a field may hold megabytes)
SHOWN_CHARACTERS = 64

_DECIMAL = r"^[0-9]+(\.[0-9]+)?$"
_SIGNED_DECIMAL = r"^-?[0-9]+(\.[0-9]+)?$"
_WHOLE = r"^[0-9]{1,9}$"
_DUCKDB_TYPES = {"timestamp": "TIMESTAMPTZ", "string": "VARCHAR", "int": "INTEGER",
                 "array<string>": "VARCHAR[]"}


@dataclass(frozen=True)
class Dialect:
    """What differs between the engines' SQL; everything else is written once."""

    name: str

    @property
    def spark(self) -> bool:
        return self.name == "spark"

    # -- names and literals --------------------------------------------------------------------
    def lit(self, value: str) -> str:
        if self.spark:  # Spark reads backslash escapes inside string literals
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return "'" + value.replace("'", "''") + "'"

    def dates(self, dts: list[calendar_date]) -> str:
        """Date literals, comma-separated (for ``IN (...)``)."""
        return ", ".join(f"DATE '{dt.isoformat()}'" for dt in dts)

    def ident(self, name: str) -> str:
        return f"`{name}`" if self.spark else '"' + name.replace('"', '""') + '"'

    def field(self, *path: str) -> str:
        """A (nested) column reference: ``field("j", "response", "rsp_code")``."""
        return ".".join(self.ident(part) for part in path)

    def number(self, value: float) -> str:
        if isinstance(value, int):
            return str(value)
        return f"{value!r}D" if self.spark else f"CAST({value!r} AS DOUBLE)"

    def sql_type(self, spark_type: str) -> str:
        """A column's type (declared in Spark's words in ``schemas.bronze``) in this dialect."""
        return spark_type if self.spark else _DUCKDB_TYPES.get(spark_type, spark_type.upper())

    def kind_type(self, kind: str) -> str:
        return self.sql_type(SPARK_TYPES[kind])

    # -- scalar functions ----------------------------------------------------------------------
    def matches(self, value: str, pattern: str) -> str:
        return f"{value} RLIKE {self.lit(pattern)}" if self.spark else f"regexp_matches({value}, {self.lit(pattern)})"

    def timestamp(self, value: str) -> str:
        """A KST ``YYYYMMDDhhmmss`` as an instant (the session's time zone is KST on both)."""
        if self.spark:
            return f"try_to_timestamp({value}, 'yyyyMMddHHmmss')"
        return f"CAST(try_strptime({value}, '%Y%m%d%H%M%S') AS TIMESTAMPTZ)"

    def date(self, value: str) -> str:
        if self.spark:
            return f"try_to_date({value}, 'yyyyMMdd')"
        return f"CAST(try_strptime({value}, '%Y%m%d') AS DATE)"

    def grouped(self, number: str) -> str:
        """A whole number with thousands separators: 12,345."""
        return f"format_number({number}, 0)" if self.spark else f"format('{{:,}}', {number})"

    def text(self, value: str) -> str:
        return f"CAST({value} AS {self.sql_type('string')})"

    def blank(self, value: str) -> str:
        """``value`` is spaces (U+0020) only, as Spark's trim sees it; DuckDB's also strips U+00A0."""
        return f"trim({value}) = ''" if self.spark else f"regexp_matches({value}, '^ *$')"

    def strftime(self, value: str, pattern: str) -> str:
        """A date or time as text, in the session's time zone; ``pattern`` in strftime's words."""
        if self.spark:
            java = pattern.replace("%Y", "yyyy").replace("%m", "MM").replace("%d", "dd")
            return f"date_format({value}, '{java.replace('%H', 'HH').replace('%M', 'mm').replace('%S', 'ss')}')"
        return f"strftime({value}, '{pattern}')"

    def moment(self, moment: datetime) -> str:
        """A moment as an instant: a naive one is KST wall time, as every time in the lake."""
        if moment.tzinfo is not None:
            moment = moment.astimezone(ZoneInfo(SESSION_TIME_ZONE)).replace(tzinfo=None)
        text = moment.strftime("%Y-%m-%d %H:%M:%S.%f")
        return f"TIMESTAMP '{text}'" if self.spark else f"TIMESTAMPTZ '{text}'"

    def explode(self, array: str) -> str:
        """A select item giving one row per element of ``array``."""
        return f"explode({array})" if self.spark else f"unnest({array})"

    def posexplode(self, array: str) -> str:
        """Select items giving one row per element of ``array``: ``_item`` and its 0-based ``_pos``."""
        if self.spark:
            return f"posexplode({array}) AS (_pos, _item)"
        return f"unnest({array}) AS _item, generate_subscripts({array}, 1) - 1 AS _pos"

    def element(self, array: str, position: str) -> str:
        """The item of ``array`` at the 0-based ``position`` (as ``posexplode`` numbers them)."""
        return f"element_at({array}, {position} + 1)" if self.spark else f"{array}[{position} + 1]"

    def item_json(self, fields: list[str]) -> str:
        """``_item`` as the JSON of ``fields``, those without a value left out (Spark's to_json)."""
        if self.spark:
            return "to_json(`_item`)"
        parts = ", ".join(f"CASE WHEN _item.{self.ident(f)} IS NOT NULL THEN {self.lit(json.dumps(f) + ':')} "
                          f"|| to_json(_item.{self.ident(f)}) END" for f in fields)
        return f"'{{' || concat_ws(',', {parts}) || '}}'"

    def replace_all(self, value: str, pattern: str, replacement: str) -> str:
        every = "" if self.spark else ", 'g'"  # DuckDB replaces the first match unless told
        return f"regexp_replace({value}, {self.lit(pattern)}, {self.lit(replacement)}{every})"

    def last_path_part(self, path: str) -> str:
        return f"regexp_extract({path}, '[^/]*$', 0)"

    def add_months(self, day: str, months: int) -> str:
        """A date moved by whole months; a day past the month's end is its last day."""
        if self.spark:
            return f"add_months({day}, {months})"
        return f"CAST({day} + INTERVAL ({months}) MONTH AS DATE)"

    def hours_before(self, moment: str, hours: int) -> str:
        return f"{moment} - INTERVAL {hours} HOURS" if self.spark else f"{moment} - INTERVAL ({hours}) HOUR"

    def day_of(self, moment: str) -> str:
        """A timestamp's (or a date's) calendar day in the session's time zone (KST)."""
        return f"CAST({moment} AS DATE)"

    # -- hashing and aggregates ------------------------------------------------------------------
    def hex_digest(self, text: str) -> str:
        """The lowercase hex SHA-256 of a string's UTF-8 bytes (null stays null)."""
        return f"sha2({self.utf8(text)}, 256)" if self.spark else f"sha256({text})"

    def sha256(self, data: str) -> str:
        """The 32-byte SHA-256 digest of binary ``data``."""
        return f"unhex(sha2({data}, 256))" if self.spark else f"unhex(sha256({data}))"

    def utf8(self, text: str) -> str:
        """A string's UTF-8 bytes."""
        return f"CAST({text} AS BINARY)" if self.spark else f"encode({text})"

    def base64(self, data: str) -> str:
        return f"base64({data})" if self.spark else f"to_base64({data})"

    def latest(self, value: str, time: str) -> str:
        """The ``value`` of the row with the largest (``time``, ``value``); rows with a null ``time`` are skipped."""
        by = f"CASE WHEN {time} IS NOT NULL THEN {self.struct(t=time, v=value)} END"
        return f"max_by({value}, {by})" if self.spark else f"arg_max({value}, {by})"

    # -- structs and lists ---------------------------------------------------------------------
    def struct(self, **fields: str) -> str:
        """A struct of the named SQL values."""
        if self.spark:
            return f"named_struct({', '.join(f'{self.lit(k)}, {v}' for k, v in fields.items())})"
        return f"struct_pack({', '.join(f'{k} := {v}' for k, v in fields.items())})"

    def rule(self, rule: str, reason: str) -> str:
        """A ``struct<rule, reason>`` with a fixed rule name; ``reason`` is SQL."""
        return self.rule_of(self.lit(rule), reason)

    def rule_of(self, rule: str, reason: str) -> str:
        """A rule struct whose name is SQL too."""
        return self.struct(rule=rule, reason=reason)

    @property
    def no_violations(self) -> str:
        if self.spark:
            return "CAST(array() AS array<struct<rule: string, reason: string>>)"
        return "CAST([] AS STRUCT(rule VARCHAR, reason VARCHAR)[])"

    def array(self, *items: str) -> str:
        return f"array({', '.join(items)})" if self.spark else f"[{', '.join(items)}]"

    def size(self, array: str) -> str:
        return f"size({array})" if self.spark else f"len({array})"

    def first(self, array: str) -> str:
        return f"{array}[0]" if self.spark else f"{array}[1]"

    def all_in(self, array: str, listed: str) -> str:
        if self.spark:
            return f"forall({array}, s -> s IN ({listed}))"
        return f"list_bool_and(list_transform({array}, lambda s: s IN ({listed})))"

    def reasons(self, violations: str) -> str:
        """Every reason of a violations array, joined with '; '."""
        if self.spark:
            return f"array_join(transform({violations}, v -> v.`reason`), '; ')"
        return f"array_to_string(list_transform({violations}, lambda v: v.reason), '; ')"


# -- parsing a landing line: JSON or CSV, by the contract's shape (never inferred from the data) --

#: a landing record's shape: every leaf a string; a dict is an object, a one-item list a list of it
Shape = dict[str, Any]


def _spark_type(shape: Any) -> str:
    if shape == "string":
        return "string"
    if isinstance(shape, list):
        return f"array<{_spark_type(shape[0])}>"
    if not shape:
        return "map<string,string>"
    return f"struct<{', '.join(f'{k}: {_spark_type(v)}' for k, v in shape.items())}>"


def _duckdb_structure(shape: Any) -> Any:
    if shape == "string":
        return "VARCHAR"
    if isinstance(shape, list):
        return [_duckdb_structure(shape[0])]
    return {k: _duckdb_structure(v) for k, v in shape.items()} if shape else "JSON"


def _nested_paths(shape: Shape, prefix: str = "$") -> list[tuple[str, str]]:
    """(JSON path, the type it must have) of every object and list below the top."""
    out = []
    for name, sub in shape.items():
        path = f"{prefix}.{name}"
        if isinstance(sub, dict):
            out += [(path, "OBJECT"), *_nested_paths(sub, path)]
        elif isinstance(sub, list):
            out.append((path, "ARRAY"))
            if isinstance(sub[0], dict):
                out.append((f"{path}[*]", "OBJECT"))
    return out


def parse_json(d: Dialect, shape: Shape) -> tuple[str, str]:
    """(SQL of the parsed struct ``j`` of ``value``, SQL over ``j`` and ``value`` that the line is
    not a JSON object of that shape). An object or list where a string belongs is kept as its JSON
    text; a string where an object or list belongs makes the line unreadable, as in Spark."""
    if d.spark:
        schema = ", ".join(f"{k} {_spark_type(v)}" for k, v in shape.items()) + ", _corrupt_record string"
        parsed = (f"from_json(`value`, {d.lit(schema)}, "
                  "map('columnNameOfCorruptRecord', '_corrupt_record', 'mode', 'PERMISSIVE'))")
        return parsed, "(`j`.`_corrupt_record` IS NOT NULL OR `j` IS NULL)"
    structure = d.lit(json.dumps(_duckdb_structure(shape)))
    parsed = f"CASE WHEN json_valid(value) THEN json_transform(value, {structure}) END"
    # every JSON function parses the line again: the line's, its objects' and lists' types in one
    # call, and a list's items only where the line has that list
    paths = [("$", "OBJECT"), *_nested_paths(shape)]
    plain = [(path, kind) for path, kind in paths if not path.endswith("[*]")]
    wrong = [f"coalesce(list_bool_or(list_transform(list_zip(json_type(value, [{', '.join(d.lit(p) for p, _ in plain)}]), "
             f"[{', '.join(d.lit(k) for _, k in plain)}]), lambda x: coalesce(x[1] NOT IN (x[2], 'NULL'), false))), false)"
             ] if plain else []
    for path, kind in paths:
        if path.endswith("[*]"):
            parsed_list = d.field("j", *path[2:-3].split("."))
            wrong.append(f"(coalesce(len({parsed_list}), 0) > 0 AND coalesce(list_bool_or(list_transform("
                         f"json_type(value, {d.lit(path)}), lambda t: t <> '{kind}')), false))")
    return parsed, f"(CASE WHEN j IS NULL THEN true ELSE {' OR '.join(wrong) or 'false'} END)"


#: a CSV line's fields; a quoted field may hold commas (Spark's CSV reader unquotes it)
_CSV_FIELDS = ("CASE WHEN contains(value, '\"') THEN list_transform("
               "regexp_extract_all(value, '(?:^|,)(\"[^\"]*\"|[^,]*)', 1), "
               "lambda f: CASE WHEN length(f) >= 2 AND f[1] = '\"' AND f[-1] = '\"' THEN f[2:-2] ELSE f END) "
               "ELSE string_split(value, ',') END")


def parse_csv(d: Dialect, columns: tuple[str, ...]) -> str:
    """SQL of the parsed struct ``j`` of a CSV line ``value``: one string per header column (an
    empty field is null) and ``_corrupt_record``, set when the line has another number of fields."""
    if d.spark:
        schema = ", ".join(f"{c} string" for c in columns) + ", _corrupt_record string"
        return (f"from_csv(`value`, {d.lit(schema)}, "
                "map('columnNameOfCorruptRecord', '_corrupt_record', 'mode', 'PERMISSIVE'))")
    picked = ", ".join(f"{d.ident(c)} := nullif(_f[{i}], '')" for i, c in enumerate(columns, 1))
    return (f"(SELECT struct_pack({picked}, _corrupt_record := CASE WHEN len(_f) <> {len(columns)} "
            f"THEN value END) FROM (SELECT {_CSV_FIELDS} AS _f))")


SPARK = Dialect("spark")
DUCKDB = Dialect("duckdb")
DIALECTS = {d.name: d for d in (SPARK, DUCKDB)}


# -- one value -------------------------------------------------------------------------------------

def parse_value(d: Dialect, raw: str, column: Column) -> str:
    """SQL for the typed value of a landing string, or null when it does not parse."""
    kind = column.kind
    if kind == "link_key":
        return f"CASE WHEN {d.matches(raw, LINK_KEY_PATTERN.pattern)} THEN {raw} END"
    if kind == "dtime":
        return f"CASE WHEN {d.matches(raw, '^[0-9]{14}$')} THEN {d.timestamp(raw)} END"
    if kind == "date":
        return f"CASE WHEN {d.matches(raw, '^[0-9]{8}$')} THEN {d.date(raw)} END"
    if kind == "month":
        first_day = f"concat({raw}, '01')"
        return f"CASE WHEN {d.matches(raw, '^[0-9]{6}$')} THEN {d.date(first_day)} END"
    if kind == "signed":
        return f"CASE WHEN {d.matches(raw, _SIGNED_DECIMAL)} THEN try_cast({raw} AS {d.kind_type(kind)}) END"
    if kind in ("amount", "rate", "number", "ratio"):
        return f"CASE WHEN {d.matches(raw, _DECIMAL)} THEN try_cast({raw} AS {d.kind_type(kind)}) END"
    if kind in ("int", "count", "day", "year", "version"):
        return f"CASE WHEN {d.matches(raw, _WHOLE)} THEN try_cast({raw} AS {d.sql_type('int')}) END"
    if kind == "bool":
        return f"CASE WHEN lower({raw}) IN ('true', 'false') THEN lower({raw}) = 'true' END"
    return raw  # code, text, ref, str, sources


def missing(d: Dialect, value: str, column: Column) -> str:
    return f"({value} IS NULL)" if column.kind == "sources" else f"({value} IS NULL OR {d.blank(value)})"


def parsed_values(d: Dialect, raw: dict[str, str], spec: TableSpec) -> dict[str, str]:
    """``{name: SQL of the typed value}`` for the columns whose landing string is parsed (time,
    number, link key...): computed once in a row's select, then read by ``typed_columns`` and
    ``violations`` (which would each parse it again)."""
    return {c.name: parse_value(d, raw[c.name], c) for c in spec.columns
            if parse_value(d, raw[c.name], c) != raw[c.name]}


def violations(d: Dialect, raw: dict[str, str], spec: TableSpec, parsed: dict[str, str] | None = None) -> str:
    """SQL for the array of every rule (struct of rule, reason) the row breaks; empty when good.
    ``parsed``: columns already holding a typed value (``parsed_values``), by name."""
    checks = []
    for column in spec.columns:
        name, value = column.name, raw[column.name]
        typed, absent = (parsed or {}).get(name) or parse_value(d, value, column), missing(d, value, column)
        if column.required:
            checks.append((absent, f"{name}.not_null", d.lit(f"{name} is missing")))
        if column.required_when is not None:
            other, values = column.required_when
            listed = ", ".join(d.lit(v) for v in sorted(values))
            checks.append((f"{absent} AND {raw[other]} IN ({listed})", f"{name}.not_null",
                           f"concat({d.lit(name + ' is missing although ' + other + '=')}, {raw[other]})"))
        if column.max_length is not None:
            checks.append((f"length({value}) > {column.max_length}", f"{name}.length",
                           f"concat({d.lit(name + ' is ')}, {d.grouped(f'length({value})')}, "
                           f"{d.lit(f' characters long, more than {column.max_length}')})"))
        shown = f"substring(coalesce({d.text(value)}, ''), 1, {SHOWN_CHARACTERS})"
        if column.kind in KIND_TEXT:
            checks.append((f"NOT {absent} AND ({typed}) IS NULL", f"{name}.format",
                           f"concat({d.lit(name + '=')}, {shown}, {d.lit(' is not a ' + KIND_TEXT[column.kind])})"))
        if column.allowed is not None:
            allowed = ", ".join(d.lit(code) for code in sorted(column.allowed))
            if column.kind == "sources":
                bad = f"NOT {absent} AND ({d.size(typed)} = 0 OR NOT {d.all_in(typed, allowed)})"
            else:
                bad = f"NOT {absent} AND NOT (({typed}) IN ({allowed}))"
            checks.append((bad, f"{name}.in_set", f"concat({d.lit(name + '=')}, {shown}, ' is not a known code')"))
        if column.low is not None or column.high is not None:
            outside = " OR ".join([*([f"({typed}) < {d.number(column.low)}"] if column.low is not None else []),
                                   *([f"({typed}) > {d.number(column.high)}"] if column.high is not None else [])])
            bounds = f"[{column.low if column.low is not None else ''}, {column.high if column.high is not None else ''}]"
            checks.append((f"({typed}) IS NOT NULL AND ({outside})", f"{name}.range",
                           f"concat({d.lit(name + '=')}, {shown}, {d.lit(' is outside ' + bounds)})"))
    if not checks:
        return d.no_violations
    # flatten of one-or-none arrays, not a filter with a lambda: Spark cannot compile a lambda and
    # would interpret every check under it row by row (a quarter of ingest's CPU)
    found = ", ".join(f"CASE WHEN {cond} THEN {d.array(d.rule(rule, reason))} ELSE {d.no_violations} END"
                      for cond, rule, reason in checks)
    return f"flatten({d.array(found)})"


def empty_table(d: Dialect, spec: TableSpec) -> str:
    """SQL of a bronze table with no rows: its typed columns and the delivery date ``dt`` (a table
    never delivered reads as this)."""
    columns = ", ".join(f"CAST(NULL AS {d.kind_type(c.kind)}) AS {d.ident(c.name)}" for c in spec.columns)
    return f"SELECT {columns}, CAST(NULL AS DATE) AS dt WHERE 1 = 0"


def typed_columns(d: Dialect, raw: dict[str, str], spec: TableSpec, parsed: dict[str, str] | None = None) -> list[str]:
    """``CAST(... AS type) AS name`` per column: an optional value left out (or empty) is null,
    a required one that does not parse is null too (and its row is quarantined)."""
    out = []
    for column in spec.columns:
        typed = (parsed or {}).get(column.name) or parse_value(d, raw[column.name], column)
        if not column.required:
            typed = f"CASE WHEN NOT {missing(d, raw[column.name], column)} THEN {typed} END"
        out.append(f"CAST({typed} AS {d.kind_type(column.kind)}) AS {d.ident(column.name)}")
    return out
