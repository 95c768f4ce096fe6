"""Small explicit inputs for transforms, registered on an engine: a reader sees input and output side by side."""
from __future__ import annotations

import math
import re

import pyarrow as pa

_ARROW = {"string": "string", "int": "int32", "long": "int64", "double": "float64", "boolean": "bool_",
          "date": "date32", "binary": "binary"}


def rows_table(engine, name: str, schema: str, rows: list[tuple]) -> str:
    """Small explicit input as the table ``name`` of ``engine``; ``schema`` in Spark's words
    (``pseudonym string, trans_amt decimal(18,3), trans_dtime timestamp``)."""
    fields = []
    for column, kind in re.findall(r"(\w+) (array<\w+>|\w+(?:\(\d+,\s*\d+\))?)", schema):
        if kind.startswith("array<"):
            fields.append(pa.field(column, pa.list_(getattr(pa, _ARROW[kind[6:-1]])())))
        elif kind.startswith("decimal"):
            precision, scale = map(int, re.findall(r"\d+", kind))
            fields.append(pa.field(column, pa.decimal128(precision, scale)))
        elif kind == "timestamp":
            fields.append(pa.field(column, pa.timestamp("us", tz="Asia/Seoul")))
        else:
            fields.append(pa.field(column, getattr(pa, _ARROW[kind])()))
    table = pa.schema(fields)
    engine.arrow(name, pa.Table.from_pylist([dict(zip(table.names, row)) for row in rows], schema=table))
    return name


def differing_cells(a: dict, b: dict, rel_tol: float = 1e-9) -> list[str]:
    """``key.column`` of every cell that differs between two tables of rows by key; doubles to
    ``rel_tol`` (a sum of doubles depends on its order, which differs between runs and engines)."""
    diff = []
    for key in a.keys() | b.keys():
        for column, value in a.get(key, {}).items():
            other = b.get(key, {}).get(column)
            if isinstance(value, float) and isinstance(other, float):
                if not math.isclose(value, other, rel_tol=rel_tol, abs_tol=rel_tol):
                    diff.append(f"{key}.{column}")
            elif value != other:
                diff.append(f"{key}.{column}")
    return diff
