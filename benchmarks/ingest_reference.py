"""MyData ingest written plainly, in DuckDB (``run``) and in PySpark (``run_spark``), for the
benchmark only: the yardsticks of issue 34.

Per MyData source: the engine's JSON reader over the delivered lines (bad lines skipped), then
per bronze table a typed select of the successful collections of its API (a list API's items
unnested) with the same per-field checks (required, format, code set, bounds, length), accepted
and rejected rows written to Parquet. The columns, kinds and code sets come from the contract
(``schemas.bronze``), the SQL is each engine's ordinary idiom; none of the project's machinery: no
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
#: what Spark SQL writes differently: its time parsers, and a regular expression over the whole value
_SPARK_TYPED = {**_TYPED, "dtime": "try_to_timestamp({v}, 'yyyyMMddHHmmss')", "date": "try_to_date({v}, 'yyyyMMdd')",
                "month": "try_to_date(concat({v}, '01'), 'yyyyMMdd')"}
_FULL_MATCH = {"duckdb": "regexp_full_match({v}, '{p}')", "spark": "{v} RLIKE '^{p}$'"}


#: how each engine's reader is told a field's type: (text, a struct of these fields, a field, a list of this)
_SCHEMA_WORDS = {"duckdb": ("VARCHAR", "STRUCT({})", "{} {}", "{}[]"),
                 "spark": ("STRING", "STRUCT<{}>", "{}: {}", "ARRAY<{}>")}
_ENVELOPE = ("link_key", "key_version", "org_code", "api", "x_api_tran_id", "collected_at")


def _struct(fields: list[str], lists: dict[str, tuple[str, ...]], engine: str) -> str:
    text, struct, field, array = _SCHEMA_WORDS[engine]
    parts = [field.format(f, text) for f in sorted(set(fields))]
    parts += [field.format(name, array.format(struct.format(", ".join(field.format(f, text) for f in items))))
              for name, items in lists.items()]
    return struct.format(", ".join(parts))


def _lists(apis: list) -> dict[str, tuple[str, ...]]:
    """Each list field with the union of its items' fields (two APIs may share a list's name)."""
    lists: dict[str, set[str]] = {}
    for a in apis:
        if a.is_list:
            lists.setdefault(a.list_field, set()).update(a.item_fields)
    return {name: tuple(sorted(fields)) for name, fields in sorted(lists.items())}


def _columns(source: str, engine: str) -> dict[str, str]:
    """The reader's columns for a source's lines: every field as text, lists as lists of structs."""
    apis = apis_of(source)
    columns = {name: _SCHEMA_WORDS[engine][0] for name in _ENVELOPE}
    columns["request"] = _struct([f for a in apis for f in a.request_fields] or ["_none"], {}, engine)
    columns["response"] = _struct(["rsp_code", "rsp_msg", *(f for a in apis for f in a.response_fields),
                                   *(a.count_field for a in apis if a.count_field)], _lists(apis), engine)
    return columns


def _shape(source: str) -> str:
    """read_json's columns for a source's lines."""
    return "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in _columns(source, "duckdb").items()) + "}"


def _spark_ddl(source: str) -> str:
    """spark.read.json's schema for a source's lines, as DDL."""
    return ", ".join(f"{name} {kind}" for name, kind in _columns(source, "spark").items())


def _raw(column: Column) -> str:
    return {"envelope": column.name, "request": f"request.{column.name}", "response": f"response.{column.name}",
            "item": f"_item.{column.name}", "position": "CAST(_pos AS STRING)"}[column.origin]


def _value(column: Column, engine: str = "duckdb") -> str:
    raw, typed = _raw(column), _SPARK_TYPED if engine == "spark" else _TYPED
    return typed[column.kind].format(v=raw) if column.kind in typed else raw


def _rule(column: Column, engine: str = "duckdb") -> str:
    """The column's first broken check, or NULL."""
    raw, value, name = _raw(column), _value(column, engine), column.name
    checks = [f"WHEN {raw} IS NULL OR {raw} = '' THEN '{name}.required'" if column.required else
              f"WHEN {raw} IS NULL OR {raw} = '' THEN NULL",
              f"WHEN {value} IS NULL THEN '{name}.format'"]
    if column.kind == "link_key":
        link_key = _FULL_MATCH[engine].format(v=raw, p="[A-Za-z0-9_-]{43}")
        checks.append(f"WHEN NOT {link_key} THEN '{name}.format'")
    if column.allowed is not None:
        checks.append(f"WHEN {raw} NOT IN ({', '.join(repr(v) for v in sorted(column.allowed))}) THEN '{name}.in_set'")
    if column.low is not None:
        checks.append(f"WHEN {value} < {column.low} THEN '{name}.low'")
    if column.high is not None:
        checks.append(f"WHEN {value} > {column.high} THEN '{name}.high'")
    if column.max_length is not None:
        checks.append(f"WHEN length({raw}) > {column.max_length} THEN '{name}.max_length'")
    return f"CASE {' '.join(checks)} END"


def table_sql(spec: TableSpec, lines: str, engine: str = "duckdb") -> str:
    """Typed rows of one bronze table with ``_rule``, the first broken check (NULL: accepted)."""
    api = next(a for a in apis_of(spec.source) if a.api == spec.api)
    rows = f"SELECT * FROM {lines} WHERE api = '{api.api}' AND response.rsp_code = '{SUCCESS_RSP_CODE}'"
    if api.is_list:
        items = (f"posexplode(response.{api.list_field}) AS (_pos, _item)" if engine == "spark" else
                 f"unnest(response.{api.list_field}) AS _item, generate_subscripts(response.{api.list_field}, 1) - 1 AS _pos")
        rows = f"SELECT *, {items} FROM ({rows}) r"
    values = ", ".join(f"{_value(c, engine)} AS {c.name}" for c in spec.columns)
    rules = ", ".join(_rule(c, engine) for c in spec.columns)
    return f"SELECT {values}, coalesce({rules}) AS _rule, dt FROM ({rows}) x"


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
        figures[source] = {"seconds": time.perf_counter() - started, **counts}
    con.close()
    return figures


def run_spark(spark, lake_root: Path, out: Path) -> dict:
    """Every MyData source of the landing zone, plainly in PySpark on a running session: each table
    one job from the files (caching the parsed lines took longer than reading them again)."""
    from pyspark.sql import functions as F

    figures: dict[str, dict] = {}
    for source in MYDATA_SOURCES:
        started = time.perf_counter()
        files = sorted(str(p) for p in (lake_root / "landing" / source).glob("dt=*/*.jsonl*"))
        lines = (spark.read.schema(_spark_ddl(source)).option("mode", "DROPMALFORMED").json(files)
                 .withColumn("dt", F.to_date(F.regexp_extract(F.col("_metadata.file_path"), "dt=([0-9-]+)", 1))))
        lines.createOrReplaceTempView("lines")
        for spec in tables_of(source):
            typed = spark.sql(table_sql(spec, "lines", "spark")).withColumn("accepted", F.col("_rule").isNull())
            typed.write.mode("overwrite").partitionBy("accepted").parquet(str(out / spec.name))
        seconds = time.perf_counter() - started
        counts = {"accepted": 0, "rejected": 0}  # counted from what was written, outside the time
        for spec in tables_of(source):
            for row in spark.read.parquet(str(out / spec.name)).groupBy("accepted").count().collect():
                # Spark reads a partition's true/false back as text, which is never falsy
                counts["accepted" if str(row["accepted"]).lower() == "true" else "rejected"] += row["count"]
        figures[source] = {"seconds": seconds, **counts}
    return figures
