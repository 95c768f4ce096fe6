"""Ingest: landing deliveries -> typed bronze tables, with quarantine, and nothing lost.

Per source, one pass over the run's complete deliveries (those with ``_SUCCESS``):

1. lines are parsed (MyData JSON envelope, CSV row or consent event) as text, so a bad line keeps
   its original form for quarantine;
2. line-level outcomes: ``rejected`` (not JSON, unknown API, envelope broken, count mismatch),
   ``failed`` (rsp_code not 00000: a failed collection, counted and kept, not parsed),
   ``duplicate`` (an x_api_tran_id already delivered, in this run or an earlier delivery);
3. good lines become rows of their table (lists exploded), typed from the landing form by the
   rules of ``schemas.bronze``; a row breaking a rule goes to quarantine with the rule and a
   readable reason, as does a second row with the same natural key in a delivery;
4. bronze and quarantine partitions (``dt=``) are replaced atomically (see ``jobs.storage``).

Quarantine rows (``quarantine/<table>/dt=...``) hold: rule (the first broken), reason (all
broken, readable), record (the original line, or the list item), item_no, file_path, line_no.

Reconciliation, per delivery: lines read = lines parsed + rejected + failed + duplicate, and per
table: rows = accepted + quarantined. Both are in the run manifest.
"""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from functools import reduce

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from jobs import storage
from jobs.landing import Delivery, data_files, find_deliveries
from mydata.config import Settings
from mydata.holders import HolderRegistry, unregistered_message
from mydata.lake import Lake
from mydata.manifest import RunManifest
from mydata.spark import concurrently
from schemas import codes
from schemas.bronze import TABLES, Column, TableSpec, tables_of
from schemas.landing import APIS, CSV_SOURCES, LINK_KEY_PATTERN, MYDATA_SOURCES, SOURCES, ApiSpec, apis_of

LINE_TABLE = "{source}_lines"  # quarantine table of whole lines that never became rows
FAILED_COLLECTIONS = "failed_collections"
COLLECTIONS = "collections"  # every accepted MyData response: the duplicate index, and lineage
FAILED_RULE = "failed_collection"  # how the quarantine gate names them beside the line rules
FAILED_EXAMPLE = "rsp_code is not 00000: the holder answered with an error (see bronze/failed_collections)"
CONCURRENT_SOURCES = 2

_DTIME, _DATE = "yyyyMMddHHmmss", "yyyyMMdd"
_DECIMAL = r"^[0-9]+(\.[0-9]+)?$"
_SIGNED_DECIMAL = r"^-?[0-9]+(\.[0-9]+)?$"
_KIND_TEXT = {"dtime": "KST timestamp YYYYMMDDhhmmss", "date": "date YYYYMMDD",
              "month": "month YYYYMM", "amount": "non-negative decimal",
              "signed": "decimal",
              "rate": "non-negative decimal rate", "bool": "true/false", "int": "whole number",
              "count": "whole number", "day": "day of month", "year": "year",
              "number": "non-negative number", "ratio": "number", "version": "key version",
              "link_key": "43-character base64url link key"}


# -- parsing one value ---------------------------------------------------------------------------
# Row rules are written as Spark SQL text and handed to Spark whole (one ``selectExpr`` per table):
# built from Column objects they took tens of thousands of Py4J round trips per run, most of a
# small delivery's ingest time.

def sql_str(value: str) -> str:
    """A Spark SQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_field(*path: str) -> str:
    """A (nested) column reference: ``sql_field("j", "response", "rsp_code")``."""
    return ".".join(f"`{part}`" for part in path)


def _sql_number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value!r}D"


def parse_value(raw: str, column: Column) -> str:
    """SQL for the typed value of a landing string, or null when it does not parse."""
    kind = column.kind
    if kind == "link_key":
        return f"CASE WHEN {raw} RLIKE {sql_str(LINK_KEY_PATTERN.pattern)} THEN {raw} END"
    if kind == "dtime":
        return f"CASE WHEN length({raw}) = 14 THEN try_to_timestamp({raw}, {sql_str(_DTIME)}) END"
    if kind == "date":
        return f"CASE WHEN length({raw}) = 8 THEN try_to_date({raw}, {sql_str(_DATE)}) END"
    if kind == "month":
        return f"CASE WHEN length({raw}) = 6 THEN try_to_date(concat({raw}, '01'), {sql_str(_DATE)}) END"
    if kind == "signed":
        return f"CASE WHEN {raw} RLIKE {sql_str(_SIGNED_DECIMAL)} THEN try_cast({raw} AS {column.spark_type}) END"
    if kind in ("amount", "rate", "number", "ratio"):
        return f"CASE WHEN {raw} RLIKE {sql_str(_DECIMAL)} THEN try_cast({raw} AS {column.spark_type}) END"
    if kind in ("int", "count", "day", "year", "version"):
        return f"CASE WHEN {raw} RLIKE {sql_str('^[0-9]{1,9}$')} THEN try_cast({raw} AS INT) END"
    if kind == "bool":
        return f"CASE WHEN lower({raw}) IN ('true', 'false') THEN lower({raw}) = 'true' END"
    return raw  # code, text, ref, str, sources


def rule_sql(rule: str, reason: str) -> str:
    """A ``struct<rule, reason>`` with a fixed rule name; ``reason`` is SQL."""
    return f"named_struct('rule', {sql_str(rule)}, 'reason', {reason})"


NO_VIOLATIONS = "CAST(array() AS array<struct<rule: string, reason: string>>)"
SHOWN_CHARACTERS = 64
#: a line whose bytes are not UTF-8 is rejected whole: its fields cannot be trusted
BAD_BYTES = "NOT is_valid_utf8(`value`)"
BAD_BYTES_RULE = rule_sql("encoding.utf8", sql_str("the line is not valid UTF-8"))
#: the original line as a quarantine record: invalid bytes replaced, so the record stays readable
RECORD = "make_valid_utf8(`value`)"


def _missing(value: str, column: Column) -> str:
    return f"({value} IS NULL)" if column.kind == "sources" else f"({value} IS NULL OR trim({value}) = '')"


def violations(raw: dict[str, str], parsed: dict[str, str], spec: TableSpec) -> str:
    """SQL for array<struct<rule, reason>> of every rule the row breaks (empty when it is good)."""
    checks = []
    for column in spec.columns:
        name, value, typed = column.name, raw[column.name], parsed[column.name]
        missing = _missing(value, column)
        if column.required:
            checks.append((missing, f"{name}.not_null", sql_str(f"{name} is missing")))
        if column.required_when is not None:
            other, values = column.required_when
            listed = ", ".join(sql_str(v) for v in sorted(values))
            checks.append((f"{missing} AND {raw[other]} IN ({listed})", f"{name}.not_null",
                           f"concat({sql_str(name + ' is missing although ' + other + '=')}, {raw[other]})"))
        if column.max_length is not None:
            checks.append((f"length({value}) > {column.max_length}", f"{name}.length",
                           f"concat({sql_str(name + ' is ')}, format_number(length({value}), 0), "
                           f"{sql_str(f' characters long, more than {column.max_length}')})"))
        # a value is shown in its reason only as far as a reader needs (a field may hold megabytes)
        shown = f"substring(coalesce(CAST({value} AS STRING), ''), 1, {SHOWN_CHARACTERS})"
        if column.kind in _KIND_TEXT:
            checks.append((f"NOT {missing} AND ({typed}) IS NULL", f"{name}.format",
                           f"concat({sql_str(name + '=')}, {shown}, {sql_str(' is not a ' + _KIND_TEXT[column.kind])})"))
        if column.allowed is not None:
            allowed = ", ".join(sql_str(code) for code in sorted(column.allowed))
            if column.kind == "sources":
                bad = f"NOT {missing} AND (size({typed}) = 0 OR NOT forall({typed}, s -> s IN ({allowed})))"
            else:
                bad = f"NOT {missing} AND NOT (({typed}) IN ({allowed}))"
            checks.append((bad, f"{name}.in_set",
                           f"concat({sql_str(name + '=')}, {shown}, ' is not a known code')"))
        if column.low is not None or column.high is not None:
            outside = " OR ".join([*([f"({typed}) < {_sql_number(column.low)}"] if column.low is not None else []),
                                   *([f"({typed}) > {_sql_number(column.high)}"] if column.high is not None else [])])
            bounds = f"[{column.low if column.low is not None else ''}, {column.high if column.high is not None else ''}]"
            checks.append((f"({typed}) IS NOT NULL AND ({outside})", f"{name}.range",
                           f"concat({sql_str(name + '=')}, {shown}, {sql_str(' is outside ' + bounds)})"))
    if not checks:
        return NO_VIOLATIONS
    # flatten of one-or-none arrays rather than filter(array(...), v -> v IS NOT NULL): a lambda
    # cannot be compiled, and Spark then interprets every check under it, row by row (a quarter
    # of ingest's CPU)
    found = ", ".join(f"CASE WHEN {cond} THEN array({rule_sql(rule, reason)}) ELSE {NO_VIOLATIONS} END"
                      for cond, rule, reason in checks)
    return f"flatten(array({found}))"


# -- reading lines ---------------------------------------------------------------------------------

def read_lines(spark: SparkSession, deliveries: list[Delivery]) -> DataFrame:
    """Raw non-empty lines with their file, 1-based line number in the file and delivery date."""
    files = [str(p) for d in deliveries for p in data_files(d)]
    if not files:
        return spark.createDataFrame([], "value string, file_path string, line_no long, dt date")
    lines = spark.read.text(files).select(
        "value", F.col("_metadata.file_path").alias("file_path"),
        F.col("_metadata.file_block_start").alias("_block"), F.monotonically_increasing_id().alias("_id"))
    # Spark reads a large file as blocks in different tasks; within a block ids are consecutive, so a
    # line's number is its place in its block plus the lines of the file's blocks before it
    blocks = (lines.groupBy("file_path", "_block")
              .agg(F.min("_id").alias("_first"), F.count(F.lit(1)).alias("_lines"))
              .withColumn("_before", F.sum("_lines").over(Window.partitionBy("file_path").orderBy("_block"))
                          - F.col("_lines")))
    return (lines.join(F.broadcast(blocks), ["file_path", "_block"])
            .select("value", "file_path", (F.col("_id") - F.col("_first") + F.col("_before") + 1).alias("line_no"))
            .where(F.trim("value") != "")
            .withColumn("dt", F.to_date(F.regexp_extract("file_path", r"/dt=(\d{4}-\d{2}-\d{2})/", 1))))


# -- MyData JSON sources ---------------------------------------------------------------------------

def envelope_schema(source: str) -> str:
    """from_json schema of a source's lines: every leaf a string, lists as arrays of structs."""
    apis = apis_of(source)
    request = sorted({f for a in apis for f in a.request_fields})
    flat = sorted({f for a in apis for f in a.response_fields}
                  | {a.count_field for a in apis if a.count_field})
    lists: dict[str, set[str]] = {}
    for a in apis:
        if a.list_field:
            lists.setdefault(a.list_field, set()).update(a.item_fields)
    response = ["rsp_code: string", "rsp_msg: string", *(f"{f}: string" for f in flat),
                *(f"{name}: array<struct<{', '.join(f'{f}: string' for f in sorted(fields))}>>"
                  for name, fields in sorted(lists.items()))]
    request_type = f"struct<{', '.join(f'{f}: string' for f in request)}>" if request else "map<string,string>"
    return (f"link_key string, key_version string, org_code string, api string, "
            f"x_api_tran_id string, collected_at string, request {request_type}, "
            f"response struct<{', '.join(response)}>, _corrupt_record string")


def parse_mydata(lines: DataFrame, source: str) -> DataFrame:
    """Parse lines and decide each line's outcome (before duplicates): ok, rejected or failed."""
    j = F.from_json("value", envelope_schema(source),
                    {"columnNameOfCorruptRecord": "_corrupt_record", "mode": "PERMISSIVE"})
    parsed = lines.withColumn("j", j)
    apis = [a.api for a in apis_of(source)]
    count_ok = reduce(lambda acc, spec: acc.when(
        F.col("j.api") == spec.api,
        F.coalesce(F.col(f"j.response.{spec.count_field}").try_cast("int")
                   == F.size(F.col(f"j.response.{spec.list_field}")), F.lit(False))),
        [a for a in apis_of(source) if a.is_list], F).otherwise(F.lit(True))
    envelope = {name: sql_field("j", name) for name in ("link_key", "key_version", "org_code",
                                                        "x_api_tran_id", "collected_at")}
    env_spec = TABLES[next(t.name for t in tables_of(source))]
    env_columns = [c for c in env_spec.columns if c.origin == "envelope"]
    env_checks = F.expr(violations(envelope, {c.name: parse_value(envelope[c.name], c) for c in env_columns},
                                   TableSpec("envelope", source, tuple(env_columns), ())))
    rule = (F.when(F.expr(BAD_BYTES), F.expr(BAD_BYTES_RULE))
            .when(F.col("j._corrupt_record").isNotNull() | F.col("j").isNull(),
                  _rule("json_parse", "line is not a valid JSON object"))
            .when(~F.coalesce(F.col("j.api").isin(*apis), F.lit(False)),
                  F.struct(F.lit("api.in_set").alias("rule"),
                           F.concat(F.lit("api="), F.coalesce(F.col("j.api"), F.lit("")),
                                    F.lit(f" is not a {source} API")).alias("reason")))
            .when(F.size(env_checks) > 0, _line_rule(env_checks))
            .when(F.coalesce(F.col("j.response.rsp_code"), F.lit("")) != codes.SUCCESS_RSP_CODE,
                  F.lit(None))
            .when(~count_ok, _rule("count_mismatch", "the response's count field differs from its list length")))
    for spec in (a for a in apis_of(source) if a.is_list and a.request_fields):
        # a response with no items yields no row to quarantine: its request is checked on the line
        request = F.expr(_request_checks(spec))
        no_items = F.coalesce(F.size(f"j.response.{spec.list_field}"), F.lit(0)) <= 0
        rule = rule.when((F.col("j.api") == spec.api) & no_items & (F.size(request) > 0), _line_rule(request))
    status = (F.when(rule.isNotNull(), "rejected")
              .when(F.col("j.response.rsp_code") != codes.SUCCESS_RSP_CODE, "failed")
              .otherwise("ok"))
    return (parsed.withColumn("line_rule", rule)
            .withColumn("status", status)
            .withColumn("x_api_tran_id", F.col("j.x_api_tran_id")))


def _request_checks(spec: ApiSpec) -> str:
    """SQL of the violations of a list API's request fields (its items' rows carry them too)."""
    columns = tuple(c for c in TABLES[_table_of(spec.api)].columns if c.origin == "request")
    raw = {c.name: sql_field("j", "request", c.name) for c in columns}
    return violations(raw, {c.name: parse_value(raw[c.name], c) for c in columns},
                      TableSpec("request", spec.source, columns, ()))


def _line_rule(checks: SparkColumn) -> SparkColumn:
    """A rejected line's outcome: the first rule it breaks, with every reason."""
    return F.struct(checks[0]["rule"].alias("rule"),
                    F.array_join(F.transform(checks, lambda v: v["reason"]), "; ").alias("reason"))


def _table_of(api: str) -> str:
    return next(t.name for t in TABLES.values() if t.api == api)


def mark_duplicates(lines: DataFrame, delivered: DataFrame | None) -> DataFrame:
    """A good or failed line whose x_api_tran_id came before (earlier line, or earlier delivery)."""
    first = Window.partitionBy("x_api_tran_id").orderBy("dt", "file_path", "line_no")
    counted = lines.withColumn(
        "_nth", F.when(F.col("status").isin("ok", "failed"), F.row_number().over(first)))
    if delivered is not None:
        # one row per id (its first delivery), so the join cannot multiply lines
        earlier = delivered.groupBy(F.col("x_api_tran_id").alias("_seen_id")).agg(F.min("dt").alias("_seen_dt"))
        counted = counted.join(earlier, counted.x_api_tran_id == earlier._seen_id, "left")
        seen = F.coalesce(F.col("_seen_dt") < F.col("dt"), F.lit(False))
    else:
        seen = F.lit(False)
    duplicate = F.col("status").isin("ok", "failed") & ((F.col("_nth") > 1) | seen)
    return (counted.withColumn("status", F.when(duplicate, "duplicate").otherwise(F.col("status")))
            .drop("_nth", "_seen_id", "_seen_dt"))


def mydata_rows(lines: DataFrame, spec: TableSpec) -> DataFrame:
    """Candidate rows of one MyData table from its good lines: raw strings, typed, violations."""
    api = APIS[spec.api]
    mine = lines.where((F.col("status") == "ok") & (F.col("j.api") == spec.api))
    if api.is_list:
        mine = mine.select("*", F.posexplode(f"j.response.{api.list_field}").alias("_pos", "_item"))
    raw: dict[str, str] = {}
    for column in spec.columns:
        if column.origin == "envelope":
            raw[column.name] = sql_field("j", column.name)
        elif column.origin == "request":
            raw[column.name] = sql_field("j", "request", column.name)
        elif column.origin == "response":
            raw[column.name] = sql_field("j", "response", column.name)
        elif column.origin == "position":
            raw[column.name] = "CAST(`_pos` AS STRING)"
        else:
            raw[column.name] = sql_field("_item", column.name)
    return _typed(mine, raw, spec, "to_json(`_item`)" if api.is_list else RECORD,
                  "`_pos`" if api.is_list else "NULL")


def _typed(frame: DataFrame, raw: dict[str, str], spec: TableSpec, record: str, item_no: str,
           broken: str | None = None) -> DataFrame:
    """Typed columns plus ``_violations``; ``broken`` (SQL of a rule struct) overrides when the line
    is unreadable. One ``selectExpr``: the whole table's rules in one call into Spark."""
    parsed = {c.name: parse_value(raw[c.name], c) for c in spec.columns}
    found = violations(raw, parsed, spec)
    # an optional value left out (or empty) is null in bronze; a required one quarantines its row
    parsed = {c.name: typed if c.required else f"CASE WHEN NOT {_missing(raw[c.name], c)} THEN {typed} END"
              for c, typed in zip(spec.columns, parsed.values())}
    if broken is not None:
        found = f"CASE WHEN ({broken}) IS NOT NULL THEN array({broken}) ELSE {found} END"
    return frame.selectExpr(
        *[f"CAST({parsed[c.name]} AS {c.spark_type}) AS `{c.name}`" for c in spec.columns],
        f"{found} AS `_violations`",
        f"{record} AS `record`", f"CAST({item_no} AS INT) AS `_item_no`", "file_path", "line_no", "dt",
    )


def _rule(name: str, reason: str) -> SparkColumn:
    return F.expr(rule_sql(name, sql_str(reason)))


def _shown_reason() -> SparkColumn:
    """A reason fit for manifests and reports: a malformed link key is still a pseudonym."""
    return F.regexp_replace("reason", r"link_key=[^;]*", "link_key=<hidden>")


# -- CSV and consent ----------------------------------------------------------------------------

def csv_rows(lines: DataFrame, spec: TableSpec) -> DataFrame:
    """Candidate rows of a CSV table; the header line is not a record."""
    columns = CSV_SOURCES[spec.source]
    schema = ", ".join(f"{c} string" for c in columns) + ", _corrupt_record string"
    rows = (lines.where(F.col("value") != ",".join(columns))
            .withColumn("j", F.from_csv("value", schema, {"columnNameOfCorruptRecord": "_corrupt_record",
                                                          "mode": "PERMISSIVE"})))
    broken = (f"CASE WHEN {BAD_BYTES} THEN {BAD_BYTES_RULE} WHEN `j`.`_corrupt_record` IS NOT NULL THEN "
              f"{rule_sql('csv_parse', sql_str(f'row does not have the {len(columns)} fields of the header'))} END")
    return _typed(rows, {c.name: sql_field("j", c.name) for c in spec.columns}, spec, RECORD, "NULL", broken)


def consent_rows(lines: DataFrame, spec: TableSpec) -> DataFrame:
    schema = (", ".join(f"{c.name} {'array<string>' if c.kind == 'sources' else 'string'}"
                        for c in spec.columns) + ", _corrupt_record string")
    rows = lines.withColumn("j", F.from_json("value", schema, {"columnNameOfCorruptRecord": "_corrupt_record",
                                                              "mode": "PERMISSIVE"}))
    broken = (f"CASE WHEN {BAD_BYTES} THEN {BAD_BYTES_RULE} WHEN `j`.`_corrupt_record` IS NOT NULL OR `j` IS NULL "
              f"THEN {rule_sql('json_parse', sql_str('line is not a valid JSON object'))} END")
    return _typed(rows, {c.name: sql_field("j", c.name) for c in spec.columns}, spec, RECORD, "NULL", broken)


# -- accept or quarantine ------------------------------------------------------------------------

def split_rows(candidates: DataFrame, spec: TableSpec, cached: list[DataFrame] | None = None) -> tuple[DataFrame, DataFrame]:
    """(accepted rows, quarantine rows): a rule broken, or a natural key seen before in the delivery.
    Both read one cached ranking, appended to ``cached`` for the caller to release."""
    keys = ", ".join(f"`{name}`" for name in ("dt", *spec.natural_key))
    if spec.api is not None:  # the first collection wins; a re-delivery names the one it repeats
        order, original = "`collected_at`, `x_api_tran_id`, `file_path`, `line_no`, `_item_no`", "`x_api_tran_id`"
        named = "' from x_api_tran_id='"
    else:
        order, original = "`file_path`, `line_no`", "concat(`line_no`, ' of ', regexp_extract(`file_path`, '[^/]*$', 0))"
        named = "' at line '"
    window = f"OVER (PARTITION BY size(`_violations`) = 0, {keys} ORDER BY {order})"
    nth = f"CASE WHEN size(`_violations`) = 0 THEN row_number() {window} END"
    said = sql_str(f"natural key ({', '.join(spec.natural_key)}) already accepted in this delivery")
    repeated = rule_sql("natural_key.unique", f"concat({said}, {named}, `_original`)")
    # both outputs read the ranking: cached, the window's shuffle runs once, not twice
    ranked = (candidates.withColumn("_nth", F.expr(nth))
              .withColumn("_original", F.expr(f"first_value({original}) {window}"))
              .withColumn("_violations", F.expr(f"CASE WHEN size(`_violations`) = 0 AND `_nth` > 1 "
                                                f"THEN array({repeated}) ELSE `_violations` END"))
              .cache())
    if cached is not None:
        cached.append(ranked)
    accepted = ranked.where("size(`_violations`) = 0").selectExpr(*[f"`{c}`" for c in spec.column_names], "dt")
    quarantined = ranked.where("size(`_violations`) > 0").selectExpr(
        f"{sql_str(spec.name)} AS `table`", "`_violations`[0].`rule` AS `rule`",
        "array_join(transform(`_violations`, v -> v.`reason`), '; ') AS `reason`",
        "`record`", "`_item_no` AS `item_no`", "`file_path`", "`line_no`", "`dt`")
    return accepted, quarantined


def line_quarantine(lines: DataFrame, source: str) -> DataFrame:
    return lines.where(F.col("status") == "rejected").select(
        F.lit(LINE_TABLE.format(source=source)).alias("table"), F.col("line_rule.rule").alias("rule"),
        F.col("line_rule.reason").alias("reason"), F.expr(RECORD).alias("record"),
        F.lit(None).cast("int").alias("item_no"), "file_path", "line_no", "dt")


def failed_collections(lines: DataFrame, source: str) -> DataFrame:
    return lines.where(F.col("status") == "failed").select(
        F.lit(source).alias("source"), F.col("j.api").alias("api"), F.col("j.org_code").alias("org_code"),
        "x_api_tran_id", F.col("j.link_key").alias("link_key"),
        F.col("j.response.rsp_code").alias("rsp_code"), F.col("j.response.rsp_msg").alias("rsp_msg"),
        F.try_to_timestamp(F.col("j.collected_at"), F.lit(_DTIME)).alias("collected_at"), "dt")


def collections(lines: DataFrame, source: str) -> DataFrame:
    return lines.where(F.col("status") == "ok").select(
        F.lit(source).alias("source"), F.col("j.api").alias("api"), F.col("j.org_code").alias("org_code"),
        "x_api_tran_id", F.col("j.link_key").alias("link_key"),
        F.col("j.key_version").try_cast("int").alias("key_version"), "dt")


def _per_source(lake: Lake, table: str, source: str):
    """Tables shared by the MyData sources are partitioned by source, then delivery date."""
    return lake.bronze_table(table) / f"source={source}"


def read_quarantine(spark: SparkSession, lake: Lake) -> DataFrame | None:
    """Every quarantine table as one frame with a ``table`` column (for review and reports)."""
    frames = []
    for folder in sorted(p for p in lake.quarantine.iterdir() if p.is_dir() and not p.name.startswith("_")) \
            if lake.quarantine.is_dir() else []:
        frame = storage.read_table(spark, folder)
        if frame is not None:
            frames.append(frame.withColumn("table", F.lit(folder.name)))
    return reduce(DataFrame.unionByName, frames) if frames else None


# -- the run -------------------------------------------------------------------------------------

@dataclass
class SourceResult:
    lines: dict[str, dict[str, int]]  # dt -> status -> count
    tables: dict[str, dict[str, dict[str, int]]]  # table -> dt -> accepted/quarantined
    rules: dict[str, dict[str, dict[str, int]]]  # table -> dt -> rule -> count
    examples: dict[str, dict[str, str]]  # table -> rule -> one reason, link keys hidden
    holders: dict[tuple[str, str], int]  # (dt, org_code) -> lines of a MyData source
    staged: list[storage.Staged]


def ingest_source(spark: SparkSession, lake: Lake, source: str, deliveries: list[Delivery],
                  run_id: str) -> SourceResult:
    """Parse, type and split one source's deliveries; stage (not publish) its bronze and quarantine."""
    dts = sorted({d.dt for d in deliveries})
    lines = read_lines(spark, deliveries)
    outputs: dict[str, DataFrame] = {}
    quarantine_parts: list[DataFrame] = []
    cached: list[DataFrame] = []
    if source in MYDATA_SOURCES:
        delivered = storage.read_table(spark, _per_source(lake, COLLECTIONS, source))
        if delivered is not None:
            delivered = delivered.where(~F.col("dt").isin(*dts))
        parsed = mark_duplicates(parse_mydata(lines, source), delivered).cache()
        cached.append(parsed)
        # the holder of every line that is not rejected: checked against the registry before any write
        holder = F.when(F.col("status") != "rejected", F.col("j.org_code")).alias("org_code")
        line_counts = parsed.groupBy("dt", "status", holder).count().collect()
        quarantine_parts.append(line_quarantine(parsed, source))
        outputs[FAILED_COLLECTIONS] = failed_collections(parsed, source)
        outputs[COLLECTIONS] = collections(parsed, source)
        candidates = {spec.name: mydata_rows(parsed, spec) for spec in tables_of(source)}
    else:
        lines = lines.cache()
        cached.append(lines)
        header = ",".join(CSV_SOURCES[source]) if source in CSV_SOURCES else None
        counted = lines.where(F.col("value") != header) if header else lines
        line_counts = (counted.groupBy("dt").count().withColumn("status", F.lit("ok"))
                       .withColumn("org_code", F.lit(None).cast("string")).collect())
        spec = tables_of(source)[0]
        builder = consent_rows if source == "consent" else csv_rows
        candidates = {spec.name: builder(lines, spec)}
    result = SourceResult({}, {}, {}, {}, {}, [])
    for row in line_counts:
        by_status = result.lines.setdefault(str(row["dt"]), {})
        by_status[row["status"]] = by_status.get(row["status"], 0) + int(row["count"])
        if row["org_code"] is not None:
            key = (str(row["dt"]), row["org_code"])
            result.holders[key] = result.holders.get(key, 0) + int(row["count"])
    _check_holders(lake, source, result.holders)
    for name, frame in candidates.items():
        accepted, quarantined = split_rows(frame, TABLES[name], cached)
        outputs[name] = accepted
        quarantine_parts.append(quarantined)
    tables = set(candidates) | ({LINE_TABLE.format(source=source)} if source in MYDATA_SOURCES else set())
    quarantined = reduce(DataFrame.unionByName, quarantine_parts)
    # the writes first: each computes (and caches) one table's ranking; then the quarantine, which
    # reads every ranking, beside the counts, which come from the same cached rankings rather than
    # from reading each written table back
    result.staged += concurrently([
        (storage.stage, frame.drop("source"), _per_source(lake, name, source), dts, run_id)
        if name in (COLLECTIONS, FAILED_COLLECTIONS) else
        (storage.stage, frame, lake.bronze_table(name), dts, run_id)
        for name, frame in outputs.items()])
    accepted_counts = reduce(DataFrame.unionByName, [
        outputs[name].select(F.lit(name).alias("table"), "dt") for name in candidates]).groupBy("table", "dt").count()
    rule_counts = (quarantined.groupBy("table", "dt", "rule")
                   .agg(F.count(F.lit(1)).alias("count"), F.min(_shown_reason()).alias("example")))
    staged_quarantine, accepted_rows, rule_rows = concurrently([
        (storage.stage, quarantined, lake.quarantine, dts, run_id, sorted(tables)),
        (accepted_counts.collect,), (rule_counts.collect,)])
    result.staged.append(staged_quarantine)
    for name in candidates:
        result.tables[name] = {str(dt): {"accepted": 0, "quarantined": 0} for dt in dts}
    for row in accepted_rows:
        result.tables[row["table"]][str(row["dt"])]["accepted"] = int(row["count"])
    for row in rule_rows:
        table, dt, count = row["table"], str(row["dt"]), int(row["count"])
        by_dt = result.rules.setdefault(table, {}).setdefault(dt, {})
        by_dt[row["rule"]] = by_dt.get(row["rule"], 0) + count
        result.examples.setdefault(table, {}).setdefault(row["rule"], row["example"])
        if table in result.tables:
            result.tables[table][dt]["quarantined"] += count
    for frame in cached:
        frame.unpersist()
    return result


class NoDeliveryError(RuntimeError):
    """Nothing complete to ingest: said plainly, not as a stack trace."""


class IngestFailed(RuntimeError):
    """A delivery cannot be ingested as it is (an unregistered holder, too much quarantined): the
    run publishes nothing, and its manifest says why."""


def _check_holders(lake: Lake, source: str, seen: dict[tuple[str, str], int]) -> None:
    """Every line's holder must be registered for the source since the delivery's date."""
    registry = HolderRegistry.open(Settings(data_root=lake.root))
    refused = []
    for (dt, org_code), count in sorted(seen.items()):
        holder = registry.get(source, org_code)
        if holder is None or holder.since > date.fromisoformat(dt):
            refused.append(unregistered_message(source, dt, org_code, count, holder))
    if refused:
        raise IngestFailed("; ".join(refused))


@dataclass(frozen=True)
class GateCheck:
    """One (table, delivery)'s quarantined share against the threshold."""

    table: str
    dt: str
    rows: int
    quarantined: int
    top_rules: list[tuple[str, int]]
    example: str
    threshold: float

    @property
    def share(self) -> float:
        return self.quarantined / self.rows if self.rows else 0.0

    @property
    def passed(self) -> bool:
        return self.share <= self.threshold

    def __str__(self) -> str:
        rules = ", ".join(f"{rule} {count:,}" for rule, count in self.top_rules)
        what = "lines rejected or failed" if self.table.endswith("_lines") else "rows quarantined"
        return (f"{self.table} dt={self.dt}: {self.share:.1%} of {self.rows:,} {what} "
                f"(threshold {self.threshold:.1%}); top rules: {rules}; e.g. {self.example}")

    def as_dict(self) -> dict:
        return {"table": self.table, "dt": self.dt, "rows": self.rows, "quarantined": self.quarantined,
                "share": round(self.share, 6), "passed": self.passed,
                "top_rules": dict(self.top_rules), "example": self.example}


def quarantine_gate(source: str, result: SourceResult, threshold: float) -> list[GateCheck]:
    """Every table and delivery of a source: rows quarantined over rows read; for the
    ``<source>_lines`` table, lines rejected or failed collections over the lines read (a holder
    whose collections all fail has gone bad as a whole too)."""
    checks = []
    line_table = LINE_TABLE.format(source=source)
    sizes = {table: {dt: c["accepted"] + c["quarantined"] for dt, c in by_dt.items()}
             for table, by_dt in result.tables.items()}
    if source in MYDATA_SOURCES:
        sizes[line_table] = {dt: sum(statuses.values()) for dt, statuses in result.lines.items()}
    for table, by_dt in sorted(sizes.items()):
        for dt, rows in sorted(by_dt.items()):
            rules = dict(result.rules.get(table, {}).get(dt, {}))
            if table == line_table and result.lines[dt].get("failed"):
                rules[FAILED_RULE] = result.lines[dt]["failed"]
            top = sorted(rules.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
            example = (FAILED_EXAMPLE if top and top[0][0] == FAILED_RULE
                       else result.examples.get(table, {}).get(top[0][0], "") if top else "")
            checks.append(GateCheck(table, dt, rows, sum(rules.values()), top, example, threshold))
    return checks


def reconcile(source: str, result: SourceResult) -> dict[str, dict]:
    """Per delivery: lines read against their outcomes, rows against accepted + quarantined."""
    out = {}
    for dt, statuses in sorted(result.lines.items()):
        read = sum(statuses.values())
        rows = {t: by_dt.get(dt, {"accepted": 0, "quarantined": 0}) for t, by_dt in result.tables.items()}
        accepted = sum(r["accepted"] for r in rows.values())
        quarantined = sum(r["quarantined"] for r in rows.values())
        entry = {"records_read": read, "rows_accepted": accepted, "rows_quarantined": quarantined}
        if source in MYDATA_SOURCES:
            entry.update({"lines_parsed": statuses.get("ok", 0),
                          "lines_quarantined": statuses.get("rejected", 0),
                          "failed_collections": statuses.get("failed", 0),
                          "duplicates": statuses.get("duplicate", 0)})
            entry["balanced"] = read == sum(entry[k] for k in ("lines_parsed", "lines_quarantined",
                                                               "failed_collections", "duplicates"))
        else:
            entry["balanced"] = read == accepted + quarantined
        out[dt] = entry
    return out


def run(settings: Settings, spark: SparkSession | None = None) -> dict:
    """Ingest every complete delivery (or those of ``settings.delivery_date``) into bronze: all of
    the run's partitions are published together at the end, or none are."""
    from mydata.spark import spark_session

    lake = settings.lake
    deliveries = find_deliveries(lake, settings.delivery_date)
    complete = [d for d in deliveries if d.complete]
    when = f" for dt={settings.delivery_date}" if settings.delivery_date else ""
    if not complete:
        waiting = ", ".join(f"{d.source} dt={d.dt}" for d in deliveries) or "none"
        raise NoDeliveryError(f"no complete delivery{when} under {lake.landing} "
                              f"(deliveries waiting for _SUCCESS: {waiting})")
    manifest = RunManifest.start("ingest", dt=settings.delivery_date,
                                 max_quarantine_rate=settings.max_quarantine_rate)
    manifest.notes += [f"waiting for _SUCCESS, not read: {d.source} dt={d.dt}"
                       for d in deliveries if not d.complete]
    manifest.notes += [f"empty delivery (no data files): {d.source} dt={d.dt}"
                       for d in complete if not data_files(d)]
    manifest.inputs = {"deliveries": [f"{d.source} dt={d.dt}" for d in complete]}
    sources = [(source, mine) for source in SOURCES
               if (mine := [d for d in complete if d.source == source and data_files(d)])]
    with manifest.recorded(lake):
        manifest.notes += storage.roll_forward(lake.publish_journal)
        spark = spark or spark_session(settings, "ingest")
        # two sources at a time: one's driver-side work overlaps the other's jobs
        with ThreadPoolExecutor(max_workers=CONCURRENT_SOURCES) as pool:
            futures = [pool.submit(ingest_source, spark, lake, source, mine, manifest.run_id)
                       for source, mine in sources]
        outcomes = [future.exception() or future.result() for future in futures]
        staged = [write for outcome in outcomes if isinstance(outcome, SourceResult) for write in outcome.staged]
        try:
            failed = next((outcome for outcome in outcomes if isinstance(outcome, BaseException)), None)
            if failed is not None:
                raise failed
            _record(manifest, sources, outcomes, settings.max_quarantine_rate)
            if manifest.outputs["gate_failures"]:
                _report_failed(lake, manifest)
                raise IngestFailed(f"quarantine gate: {'; '.join(manifest.outputs['gate_failures'][:5])}; "
                                   "nothing of this run was published")
            if not all(e["balanced"] for by_dt in manifest.outputs["reconciliation"].values() for e in by_dt.values()):
                raise IngestFailed("ingest did not reconcile: input rows differ from accepted + quarantined")
            storage.publish(staged, journal=lake.publish_journal)
        finally:
            storage.discard(staged)  # a failed run's staging; nothing left after a publish
    recon, tables = manifest.outputs["reconciliation"], manifest.outputs["tables"]
    return {"manifest": str(manifest.path),
            "rows_accepted": sum(v["accepted"] for t in tables.values() for v in t.values()),
            "rows_quarantined": sum(v["quarantined"] for t in tables.values() for v in t.values()),
            "failed_collections": sum(e.get("failed_collections", 0) for s in recon.values() for e in s.values()),
            "duplicates": sum(e.get("duplicates", 0) for s in recon.values() for e in s.values())}


def _report_failed(lake: Lake, manifest: RunManifest) -> None:
    """A run the gate stopped gets its report page too (validation never sees it)."""
    from dataclasses import asdict

    from jobs.validate import write_report

    manifest.outputs["report"] = str(write_report(lake, {**asdict(manifest), "status": "failed"}, []))


def _record(manifest: RunManifest, sources: list, results: list, threshold: float) -> None:
    """Reconciliation, tables, rules and the quarantine gate of every source into the manifest."""
    reconciliation, tables, rules, examples, gate = {}, {}, {}, {}, []
    for (source, _), result in zip(sources, results):
        reconciliation[source] = reconcile(source, result)
        tables.update(result.tables)
        for table, by_dt in result.rules.items():
            merged = rules.setdefault(table, {})
            for counts in by_dt.values():
                for rule, count in counts.items():
                    merged[rule] = merged.get(rule, 0) + count
        examples.update(result.examples)
        gate += quarantine_gate(source, result, threshold)
    manifest.inputs["records_read"] = {s: sum(e["records_read"] for e in by_dt.values())
                                       for s, by_dt in reconciliation.items()}
    manifest.outputs = {"reconciliation": reconciliation, "tables": tables, "rule_examples": examples,
                        "quarantine_gate": {"threshold": threshold, "checks": [c.as_dict() for c in gate]},
                        "gate_failures": [str(c) for c in gate if not c.passed]}
    manifest.quarantined = rules


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load()), file=sys.stdout)
