"""The contracts compiled to SQL, for both engines: one compiler over the dialect classes.

Every bronze rule (``schemas.bronze``) becomes SQL here, once, in the words of a
``schemas.dialects.Dialect`` (which holds what Spark SQL and DuckDB write differently). Jobs build
their queries from these functions and run them on the configured engine.
"""
from __future__ import annotations

from schemas.bronze import Column, TableSpec
from schemas.dialects import Dialect
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
