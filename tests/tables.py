"""Small explicit inputs for transforms, registered on an engine: a reader sees input and output side by side."""
from __future__ import annotations

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
