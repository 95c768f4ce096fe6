"""MyData ingest written plainly in DuckDB, for the benchmark only: the yardstick of issue 34.

Per MyData source: ``read_json`` of the delivered lines (bad lines skipped), then per bronze
table a typed select of the successful collections of its API (a list API's items unnested)
with the same per-field checks (required, format, code set, bounds, length), accepted and
rejected rows written to Parquet. The columns, kinds and code sets come from the contract
(``schemas.bronze``), the SQL is DuckDB's ordinary idiom; none of the project's machinery: no
line accounting, duplicates, natural-key ranking, readable reasons, staging or manifests.
"""
from __future__ import annotations

import time
from pathlib import Path

import duckdb

from schemas.bronze import Column, TableSpec, tables_of
from schemas.codes import SUCCESS_RSP_CODE
from schemas.landing import MYDATA_SOURCES, apis_of

_TYPED = {
    "dtime": "try_strptime({v}, '%Y%m%d%H%M%S')", "date": "CAST(try_strptime({v}, '%Y%m%d') AS DATE)",
    "month": "CAST(try_strptime({v} || '01', '%Y%m%d') AS DATE)", "amount": "TRY_CAST({v} AS DECIMAL(18,3))",
    "signed": "TRY_CAST({v} AS DECIMAL(18,3))", "rate": "TRY_CAST({v} AS DECIMAL(9,5))",
    "bool": "TRY_CAST({v} AS BOOLEAN)", "int": "TRY_CAST({v} AS INTEGER)", "day": "TRY_CAST({v} AS INTEGER)",
    "version": "TRY_CAST({v} AS INTEGER)", "count": "TRY_CAST({v} AS INTEGER)",
    "ratio": "TRY_CAST({v} AS DOUBLE)", "number": "TRY_CAST({v} AS DOUBLE)",
}


def _struct(fields: list[str], lists: dict[str, tuple[str, ...]] | None = None) -> str:
    parts = [f"{f} VARCHAR" for f in sorted(set(fields))]
    parts += [f"{name} STRUCT({', '.join(f'{f} VARCHAR' for f in items)})[]" for name, items in (lists or {}).items()]
    return f"STRUCT({', '.join(parts)})"


def _lists(apis: list) -> dict[str, tuple[str, ...]]:
    """Each list field with the union of its items' fields (two APIs may share a list's name)."""
    lists: dict[str, set[str]] = {}
    for a in apis:
        if a.is_list:
            lists.setdefault(a.list_field, set()).update(a.item_fields)
    return {name: tuple(sorted(fields)) for name, fields in sorted(lists.items())}


def _shape(source: str) -> str:
    """read_json's columns for a source's lines: every field as text, lists as lists of structs."""
    apis = apis_of(source)
    columns = {name: "VARCHAR" for name in ("link_key", "key_version", "org_code", "api", "x_api_tran_id",
                                            "collected_at")}
    columns["request"] = _struct([f for a in apis for f in a.request_fields] or ["_none"])
    columns["response"] = _struct(["rsp_code", "rsp_msg", *(f for a in apis for f in a.response_fields),
                                   *(a.count_field for a in apis if a.count_field)],
                                  _lists(apis))
    return "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items()) + "}"


def _raw(column: Column) -> str:
    return {"envelope": column.name, "request": f"request.{column.name}", "response": f"response.{column.name}",
            "item": f"_item.{column.name}", "position": "CAST(_pos AS VARCHAR)"}[column.origin]


def _value(column: Column) -> str:
    raw = _raw(column)
    return _TYPED[column.kind].format(v=raw) if column.kind in _TYPED else raw


def _rule(column: Column) -> str:
    """The column's first broken check, or NULL."""
    raw, value, name = _raw(column), _value(column), column.name
    checks = [f"WHEN {raw} IS NULL OR {raw} = '' THEN '{name}.required'" if column.required else
              f"WHEN {raw} IS NULL OR {raw} = '' THEN NULL",
              f"WHEN {value} IS NULL THEN '{name}.format'"]
    if column.kind == "link_key":
        checks.append(f"WHEN NOT regexp_full_match({raw}, '[A-Za-z0-9_-]{{43}}') THEN '{name}.format'")
    if column.allowed is not None:
        checks.append(f"WHEN {raw} NOT IN ({', '.join(repr(v) for v in sorted(column.allowed))}) THEN '{name}.in_set'")
    if column.low is not None:
        checks.append(f"WHEN {value} < {column.low} THEN '{name}.low'")
    if column.high is not None:
        checks.append(f"WHEN {value} > {column.high} THEN '{name}.high'")
    if column.max_length is not None:
        checks.append(f"WHEN length({raw}) > {column.max_length} THEN '{name}.max_length'")
    return f"CASE {' '.join(checks)} END"


def table_sql(spec: TableSpec, lines: str) -> str:
    """Typed rows of one bronze table with ``_rule``, the first broken check (NULL: accepted)."""
    api = next(a for a in apis_of(spec.source) if a.api == spec.api)
    rows = f"SELECT * FROM {lines} WHERE api = '{api.api}' AND response.rsp_code = '{SUCCESS_RSP_CODE}'"
    if api.is_list:
        rows = (f"SELECT *, unnest(response.{api.list_field}) AS _item, "
                f"generate_subscripts(response.{api.list_field}, 1) - 1 AS _pos FROM ({rows}) r")
    values = ", ".join(f"{_value(c)} AS {c.name}" for c in spec.columns)
    return f"SELECT {values}, coalesce({', '.join(_rule(c) for c in spec.columns)}) AS _rule, dt FROM ({rows}) x"


def run(lake_root: Path, out: Path, threads: int = 2, memory: str = "6GB") -> dict:
    """Every MyData source of the landing zone, plainly; seconds and accepted/rejected rows per source."""
    con = duckdb.connect(config={"threads": threads, "memory_limit": memory})
    figures: dict[str, dict] = {}
    for source in MYDATA_SOURCES:
        started = time.perf_counter()
        files = sorted(str(p) for p in (lake_root / "landing" / source).glob("dt=*/*.jsonl*"))
        con.execute(f"CREATE OR REPLACE TEMP TABLE lines AS SELECT *, CAST(regexp_extract(filename, 'dt=([0-9-]+)', 1) "
                    f"AS DATE) AS dt FROM read_json({files!r}, format='newline_delimited', filename=true, "
                    f"ignore_errors=true, columns={_shape(source)})")
        counts = {"accepted": 0, "rejected": 0}
        for spec in tables_of(source):
            folder = out / spec.name
            folder.mkdir(parents=True, exist_ok=True)
            con.execute(f"CREATE OR REPLACE TEMP TABLE typed AS {table_sql(spec, 'lines')}")
            con.execute(f"COPY (SELECT * EXCLUDE (_rule) FROM typed WHERE _rule IS NULL) TO '{folder}/accepted.parquet'")
            con.execute(f"COPY (SELECT * FROM typed WHERE _rule IS NOT NULL) TO '{folder}/rejected.parquet'")
            n = con.execute("SELECT count(_rule), count(*) - count(_rule) FROM typed").fetchone()
            counts["rejected"] += n[0]
            counts["accepted"] += n[1]
        lines = con.execute("SELECT count(*) FROM lines").fetchone()[0]
        figures[source] = {"seconds": time.perf_counter() - started, "lines": lines, **counts}
    con.close()
    return figures
