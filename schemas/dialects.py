"""What differs between the engines' SQL, one class per engine (as Splink's ``dialects.py``).

``Dialect`` writes what both engines read alike and declares the rest; ``DuckDBDialect`` and
``SparkDialect`` fill it in. A job builds its queries from these words and never asks which
engine it runs on, so the engines cannot drift apart in what a rule means: the parity suite
(``tests/parity``) checks they agree cell for cell.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from datetime import date as calendar_date
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from schemas.bronze import SPARK_TYPES

#: every time in the contract and the lake is Korea time, and both engines' sessions run in it
SESSION_TIME_ZONE = "Asia/Seoul"

#: a landing record's shape: every leaf a string; a dict is an object, a one-item list a list of it
Shape = dict[str, Any]


class Dialect(ABC):
    """The SQL words of one engine; what both read alike is written here, once."""

    name: str

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -- names and literals --------------------------------------------------------------------
    @abstractmethod
    def lit(self, value: str) -> str:
        """A string literal."""

    def dates(self, dts: list[calendar_date]) -> str:
        """Date literals, comma-separated (for ``IN (...)``)."""
        return ", ".join(f"DATE '{dt.isoformat()}'" for dt in dts)

    @abstractmethod
    def ident(self, name: str) -> str:
        """A quoted column or table name."""

    def field(self, *path: str) -> str:
        """A (nested) column reference: ``field("j", "response", "rsp_code")``."""
        return ".".join(self.ident(part) for part in path)

    def number(self, value: float) -> str:
        return str(value) if isinstance(value, int) else self.double(value)

    @abstractmethod
    def double(self, value: float) -> str:
        """A floating-point literal."""

    @abstractmethod
    def sql_type(self, spark_type: str) -> str:
        """A column's type (declared in Spark's words in ``schemas.bronze``) in this dialect."""

    def kind_type(self, kind: str) -> str:
        return self.sql_type(SPARK_TYPES[kind])

    def text(self, value: str) -> str:
        return f"CAST({value} AS {self.sql_type('string')})"

    # -- scalar functions ----------------------------------------------------------------------
    @abstractmethod
    def matches(self, value: str, pattern: str) -> str:
        """``value`` matches the regular expression ``pattern`` somewhere."""

    @abstractmethod
    def timestamp(self, value: str) -> str:
        """A KST ``YYYYMMDDhhmmss`` as an instant (the session's time zone is KST on both)."""

    @abstractmethod
    def date(self, value: str) -> str:
        """A ``YYYYMMDD`` as a date; null when it is not one."""

    @abstractmethod
    def grouped(self, number: str) -> str:
        """A whole number with thousands separators: 12,345."""

    @abstractmethod
    def blank(self, value: str) -> str:
        """``value`` is spaces (U+0020) only."""

    @abstractmethod
    def strftime(self, value: str, pattern: str) -> str:
        """A date or time as text, in the session's time zone; ``pattern`` in strftime's words."""

    def moment(self, moment: datetime) -> str:
        """A moment as an instant: a naive one is KST wall time, as every time in the lake."""
        if moment.tzinfo is not None:
            moment = moment.astimezone(ZoneInfo(SESSION_TIME_ZONE)).replace(tzinfo=None)
        return self.timestamp_literal(moment.strftime("%Y-%m-%d %H:%M:%S.%f"))

    @abstractmethod
    def timestamp_literal(self, text: str) -> str:
        """A ``YYYY-MM-DD hh:mm:ss.ffffff`` KST wall time as an instant literal."""

    @abstractmethod
    def explode(self, array: str) -> str:
        """A select item giving one row per element of ``array``."""

    @abstractmethod
    def posexplode(self, array: str) -> str:
        """Select items giving one row per element of ``array``: ``_item`` and its 0-based ``_pos``."""

    @abstractmethod
    def element(self, array: str, position: str) -> str:
        """The item of ``array`` at the 0-based ``position`` (as ``posexplode`` numbers them)."""

    @abstractmethod
    def item_json(self, fields: list[str]) -> str:
        """``_item`` as the JSON of ``fields``, those without a value left out (Spark's to_json)."""

    def replace_all(self, value: str, pattern: str, replacement: str) -> str:
        return f"regexp_replace({value}, {self.lit(pattern)}, {self.lit(replacement)}{self.every_match})"

    #: what ``regexp_replace`` needs to replace every match, not the first
    every_match = ""

    def last_path_part(self, path: str) -> str:
        return f"regexp_extract({path}, '[^/]*$', 0)"

    @abstractmethod
    def add_months(self, day: str, months: int) -> str:
        """A date moved by whole months; a day past the month's end is its last day."""

    @abstractmethod
    def hours_before(self, moment: str, hours: int) -> str:
        """An instant ``hours`` before ``moment``."""

    def day_of(self, moment: str) -> str:
        """A timestamp's (or a date's) calendar day in the session's time zone (KST)."""
        return f"CAST({moment} AS DATE)"

    # -- hashing and aggregates ------------------------------------------------------------------
    @abstractmethod
    def hex_digest(self, text: str) -> str:
        """The lowercase hex SHA-256 of a string's UTF-8 bytes (null stays null)."""

    @abstractmethod
    def sha256(self, data: str) -> str:
        """The 32-byte SHA-256 digest of binary ``data``."""

    @abstractmethod
    def utf8(self, text: str) -> str:
        """A string's UTF-8 bytes."""

    @abstractmethod
    def base64(self, data: str) -> str:
        """Binary ``data`` as base64 text."""

    def latest(self, value: str, time: str) -> str:
        """The ``value`` of the row with the largest (``time``, ``value``); rows with a null ``time`` are skipped."""
        by = f"CASE WHEN {time} IS NOT NULL THEN {self.struct(t=time, v=value)} END"
        return f"{self.max_by}({value}, {by})"

    #: the aggregate giving a value at the largest of another
    max_by = "max_by"

    # -- structs and lists ---------------------------------------------------------------------
    @abstractmethod
    def struct(self, **fields: str) -> str:
        """A struct of the named SQL values."""

    def rule(self, rule: str, reason: str) -> str:
        """A ``struct<rule, reason>`` with a fixed rule name; ``reason`` is SQL."""
        return self.rule_of(self.lit(rule), reason)

    def rule_of(self, rule: str, reason: str) -> str:
        """A rule struct whose name is SQL too."""
        return self.struct(rule=rule, reason=reason)

    @property
    @abstractmethod
    def no_violations(self) -> str:
        """An empty array of rule structs."""

    @abstractmethod
    def array(self, *items: str) -> str:
        """An array of the SQL values."""

    @abstractmethod
    def size(self, array: str) -> str:
        """The number of items of ``array``."""

    @abstractmethod
    def first(self, array: str) -> str:
        """The first item of ``array``."""

    @abstractmethod
    def all_in(self, array: str, listed: str) -> str:
        """Every item of ``array`` is one of the SQL values ``listed``."""

    @abstractmethod
    def reasons(self, violations: str) -> str:
        """Every reason of a violations array, joined with '; '."""

    # -- parsing a landing line: JSON or CSV, by the contract's shape (never inferred from the data)
    @abstractmethod
    def parse_json(self, shape: Shape) -> tuple[str, str]:
        """(SQL of the parsed struct ``j`` of ``value``, SQL over ``j`` and ``value`` that the line is
        not a JSON object of that shape). An object or list where a string belongs is kept as its JSON
        text; a string where an object or list belongs makes the line unreadable, as in Spark."""

    @abstractmethod
    def parse_csv(self, columns: tuple[str, ...]) -> str:
        """SQL of the parsed struct ``j`` of a CSV line ``value``: one string per header column (an
        empty field is null) and ``_corrupt_record``, set when the line has another number of fields."""


_DUCKDB_TYPES = {"timestamp": "TIMESTAMPTZ", "string": "VARCHAR", "int": "INTEGER",
                 "array<string>": "VARCHAR[]"}
#: a CSV line's fields; a quoted field may hold commas (Spark's CSV reader unquotes it)
_CSV_FIELDS = ("CASE WHEN contains(value, '\"') THEN list_transform("
               "regexp_extract_all(value, '(?:^|,)(\"[^\"]*\"|[^,]*)', 1), "
               "lambda f: CASE WHEN length(f) >= 2 AND f[1] = '\"' AND f[-1] = '\"' THEN f[2:-2] ELSE f END) "
               "ELSE string_split(value, ',') END")


class DuckDBDialect(Dialect):
    """DuckDB's SQL: double-quoted names, 1-based lists, lambdas, typed JSON transforms."""

    name = "duckdb"
    every_match = ", 'g'"  # DuckDB replaces the first match unless told
    max_by = "arg_max"

    def lit(self, value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    def ident(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def double(self, value: float) -> str:
        return f"CAST({value!r} AS DOUBLE)"

    def sql_type(self, spark_type: str) -> str:
        return _DUCKDB_TYPES.get(spark_type, spark_type.upper())

    def matches(self, value: str, pattern: str) -> str:
        return f"regexp_matches({value}, {self.lit(pattern)})"

    def timestamp(self, value: str) -> str:
        return f"CAST(try_strptime({value}, '%Y%m%d%H%M%S') AS TIMESTAMPTZ)"

    def date(self, value: str) -> str:
        return f"CAST(try_strptime({value}, '%Y%m%d') AS DATE)"

    def grouped(self, number: str) -> str:
        return f"format('{{:,}}', {number})"

    def blank(self, value: str) -> str:
        return f"regexp_matches({value}, '^ *$')"  # trim would also strip U+00A0, which Spark's keeps

    def strftime(self, value: str, pattern: str) -> str:
        return f"strftime({value}, '{pattern}')"

    def timestamp_literal(self, text: str) -> str:
        return f"TIMESTAMPTZ '{text}'"

    def explode(self, array: str) -> str:
        return f"unnest({array})"

    def posexplode(self, array: str) -> str:
        return f"unnest({array}) AS _item, generate_subscripts({array}, 1) - 1 AS _pos"

    def element(self, array: str, position: str) -> str:
        return f"{array}[{position} + 1]"

    def item_json(self, fields: list[str]) -> str:
        parts = ", ".join(f"CASE WHEN _item.{self.ident(f)} IS NOT NULL THEN {self.lit(json.dumps(f) + ':')} "
                          f"|| to_json(_item.{self.ident(f)}) END" for f in fields)
        return f"CASE WHEN _item IS NOT NULL THEN '{{' || concat_ws(',', {parts}) || '}}' END"  # as to_json(NULL)

    def add_months(self, day: str, months: int) -> str:
        return f"CAST({day} + INTERVAL ({months}) MONTH AS DATE)"

    def hours_before(self, moment: str, hours: int) -> str:
        return f"{moment} - INTERVAL ({hours}) HOUR"

    def hex_digest(self, text: str) -> str:
        return f"sha256({text})"

    def sha256(self, data: str) -> str:
        return f"unhex(sha256({data}))"

    def utf8(self, text: str) -> str:
        return f"encode({text})"

    def base64(self, data: str) -> str:
        return f"to_base64({data})"

    def struct(self, **fields: str) -> str:
        return f"struct_pack({', '.join(f'{k} := {v}' for k, v in fields.items())})"

    @property
    def no_violations(self) -> str:
        return "CAST([] AS STRUCT(rule VARCHAR, reason VARCHAR)[])"

    def array(self, *items: str) -> str:
        return f"[{', '.join(items)}]"

    def size(self, array: str) -> str:
        return f"len({array})"

    def first(self, array: str) -> str:
        return f"{array}[1]"

    def all_in(self, array: str, listed: str) -> str:
        return f"list_bool_and(list_transform({array}, lambda s: s IN ({listed})))"

    def reasons(self, violations: str) -> str:
        return f"array_to_string(list_transform({violations}, lambda v: v.reason), '; ')"

    def parse_json(self, shape: Shape) -> tuple[str, str]:
        structure = self.lit(json.dumps(_duckdb_structure(shape)))
        parsed = f"CASE WHEN json_valid(value) THEN json_transform(value, {structure}) END"
        # every JSON function parses the line again: the line's, its objects' and lists' types in one
        # call, and a list's items only where the line has that list
        paths = [("$", "OBJECT"), *_nested_paths(shape)]
        plain = [(path, kind) for path, kind in paths if not path.endswith("[*]")]
        wrong = [f"coalesce(list_bool_or(list_transform(list_zip(json_type(value, "
                 f"[{', '.join(self.lit(p) for p, _ in plain)}]), [{', '.join(self.lit(k) for _, k in plain)}]), "
                 "lambda x: coalesce(x[1] NOT IN (x[2], 'NULL'), false))), false)"] if plain else []
        for path, kind in paths:
            if path.endswith("[*]"):
                parsed_list = self.field("j", *path[2:-3].split("."))
                wrong.append(f"(coalesce(len({parsed_list}), 0) > 0 AND coalesce(list_bool_or(list_transform("
                             f"json_type(value, {self.lit(path)}), lambda t: t NOT IN ('{kind}', 'NULL'))), false))")
        # json_type parses the line again, up to once per list: only a line the transform leaves
        # suspect (a container of the shape that came out empty) is checked so
        suspect = " OR ".join(["NOT starts_with(value, '{')", *_suspects(self, shape, ("j",))])
        return parsed, (f"(CASE WHEN j IS NULL THEN true WHEN NOT ({suspect}) THEN false "
                        f"ELSE {' OR '.join(wrong) or 'false'} END)")

    def parse_csv(self, columns: tuple[str, ...]) -> str:
        picked = ", ".join(f"{self.ident(c)} := nullif(_f[{i}], '')" for i, c in enumerate(columns, 1))
        return (f"(SELECT struct_pack({picked}, _corrupt_record := CASE WHEN len(_f) <> {len(columns)} "
                f"THEN value END) FROM (SELECT {_CSV_FIELDS} AS _f))")


class SparkDialect(Dialect):
    """Spark SQL's words: backquoted names, 0-based arrays, higher-order functions, from_json/from_csv."""

    name = "spark"

    def lit(self, value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"  # Spark reads backslash escapes

    def ident(self, name: str) -> str:
        return f"`{name}`"

    def double(self, value: float) -> str:
        return f"{value!r}D"

    def sql_type(self, spark_type: str) -> str:
        return spark_type

    def matches(self, value: str, pattern: str) -> str:
        return f"{value} RLIKE {self.lit(pattern)}"

    def timestamp(self, value: str) -> str:
        return f"try_to_timestamp({value}, 'yyyyMMddHHmmss')"

    def date(self, value: str) -> str:
        return f"try_to_date({value}, 'yyyyMMdd')"

    def grouped(self, number: str) -> str:
        return f"format_number({number}, 0)"

    def blank(self, value: str) -> str:
        return f"trim({value}) = ''"

    def strftime(self, value: str, pattern: str) -> str:
        java = pattern.replace("%Y", "yyyy").replace("%m", "MM").replace("%d", "dd")
        return f"date_format({value}, '{java.replace('%H', 'HH').replace('%M', 'mm').replace('%S', 'ss')}')"

    def timestamp_literal(self, text: str) -> str:
        return f"TIMESTAMP '{text}'"

    def explode(self, array: str) -> str:
        return f"explode({array})"

    def posexplode(self, array: str) -> str:
        return f"posexplode({array}) AS (_pos, _item)"

    def element(self, array: str, position: str) -> str:
        return f"element_at({array}, {position} + 1)"

    def item_json(self, fields: list[str]) -> str:
        return "to_json(`_item`)"

    def add_months(self, day: str, months: int) -> str:
        return f"add_months({day}, {months})"

    def hours_before(self, moment: str, hours: int) -> str:
        return f"{moment} - INTERVAL {hours} HOURS"

    def hex_digest(self, text: str) -> str:
        return f"sha2({self.utf8(text)}, 256)"

    def sha256(self, data: str) -> str:
        return f"unhex(sha2({data}, 256))"

    def utf8(self, text: str) -> str:
        return f"CAST({text} AS BINARY)"

    def base64(self, data: str) -> str:
        return f"base64({data})"

    def struct(self, **fields: str) -> str:
        return f"named_struct({', '.join(f'{self.lit(k)}, {v}' for k, v in fields.items())})"

    @property
    def no_violations(self) -> str:
        return "CAST(array() AS array<struct<rule: string, reason: string>>)"

    def array(self, *items: str) -> str:
        return f"array({', '.join(items)})"

    def size(self, array: str) -> str:
        return f"size({array})"

    def first(self, array: str) -> str:
        return f"{array}[0]"

    def all_in(self, array: str, listed: str) -> str:
        return f"forall({array}, s -> s IN ({listed}))"

    def reasons(self, violations: str) -> str:
        return f"array_join(transform({violations}, v -> v.`reason`), '; ')"

    def parse_json(self, shape: Shape) -> tuple[str, str]:
        schema = ", ".join(f"{k} {_spark_type(v)}" for k, v in shape.items()) + ", _corrupt_record string"
        parsed = (f"from_json(`value`, {self.lit(schema)}, "
                  "map('columnNameOfCorruptRecord', '_corrupt_record', 'mode', 'PERMISSIVE'))")
        return parsed, "(`j`.`_corrupt_record` IS NOT NULL OR `j` IS NULL)"

    def parse_csv(self, columns: tuple[str, ...]) -> str:
        schema = ", ".join(f"{c} string" for c in columns) + ", _corrupt_record string"
        return (f"from_csv(`value`, {self.lit(schema)}, "
                "map('columnNameOfCorruptRecord', '_corrupt_record', 'mode', 'PERMISSIVE'))")


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


def _empty(d: Dialect, ref: tuple[str, ...], shape: Shape) -> str:
    """SQL: the transformed object at ``ref`` is null or has no value at all, as json_transform
    leaves an object of the shape that held something else."""
    fields = " AND ".join(_empty(d, (*ref, name), sub) if isinstance(sub, dict) and sub
                          else f"{d.field(*ref, name)} IS NULL" for name, sub in shape.items())
    return f"({d.field(*ref)} IS NULL OR {fields})"


def _not_object_text(d: Dialect, ref: tuple[str, ...]) -> str:
    """SQL: a value kept as JSON text (a shape with no fields) that is not an object."""
    return f"coalesce(NOT starts_with(CAST({d.field(*ref)} AS VARCHAR), '{{'), false)"


def _suspects(d: Dialect, shape: Shape, ref: tuple[str, ...]) -> list[str]:
    """SQL conditions, one per container below ``ref``, true wherever that container may not be
    the shape's (a superset: json_type decides). A key is looked for in the text, literal or
    \\u-escaped, so a container missing from the line is not suspect."""
    out = []
    for name, sub in shape.items():
        at, keyed = (*ref, name), f"(contains(value, {d.lit(json.dumps(name))}) OR contains(value, '\\u'))"
        if isinstance(sub, dict) and not sub:  # kept as JSON text
            out.append(_not_object_text(d, at))
        elif isinstance(sub, dict):
            out += [f"({_empty(d, at, sub)} AND {keyed})", *_suspects(d, sub, at)]
        elif isinstance(sub, list):
            out.append(f"({d.field(*at)} IS NULL AND {keyed})")
            if isinstance(sub[0], dict):  # an item that is not an object comes out empty, null or as other JSON
                item = _empty(d, ("x",), sub[0]) if sub[0] else _not_object_text(d, ("x",))
                out.append(f"coalesce(list_bool_or(list_transform({d.field(*at)}, lambda x: {item})), false)")
    return out


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


DUCKDB = DuckDBDialect()
SPARK = SparkDialect()
