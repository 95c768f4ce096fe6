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
4. bronze and quarantine partitions (``dt=``) are replaced atomically (see ``mydata.storage``).

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
from typing import Any

from jobs.landing import Delivery, check_landing, data_files, find_deliveries, text_bytes
from jobs.stage import StageRun, stage_run
from mydata import progress, storage
from mydata.config import Settings
from mydata.engines import Engine, UnreadableLanding
from mydata.holders import HolderRegistry, unregistered_message
from mydata.lake import Lake
from mydata.manifest import RunManifest, ingest_rows
from mydata.lock import writes_lake
from render.ingest import write_report
from schemas import codes
from schemas.bronze import TABLES, TableSpec, tables_of
from schemas.landing import APIS, CSV_SOURCES, MYDATA_SOURCES, SOURCES, ApiSpec, apis_of
from schemas.dialects import Dialect, Shape
from schemas.sql import parsed_values, typed_columns, violations

LINE_TABLE = "{source}_lines"  # quarantine table of whole lines that never became rows
FAILED_COLLECTIONS = "failed_collections"
COLLECTIONS = "collections"  # every accepted MyData response: the duplicate index, and lineage
FAILED_RULE = "failed_collection"  # how the quarantine gate names them beside the line rules
FAILED_EXAMPLE = "rsp_code is not 00000: the holder answered with an error (see bronze/failed_collections)"

# -- MyData JSON sources ---------------------------------------------------------------------------

def envelope_shape(source: str) -> Shape:
    """A MyData line's shape for one source: the envelope, the union of its APIs' fields."""
    apis = apis_of(source)
    request = {f: "string" for f in sorted({f for a in apis for f in a.request_fields})}
    response: Shape = {"rsp_code": "string", "rsp_msg": "string"}
    response.update({f: "string" for f in sorted({f for a in apis for f in a.response_fields}
                                                 | {a.count_field for a in apis if a.count_field})})
    lists: dict[str, set[str]] = {}
    for a in apis:
        if a.list_field:
            lists.setdefault(a.list_field, set()).update(a.item_fields)
    response.update({name: [{f: "string" for f in sorted(fields)}] for name, fields in sorted(lists.items())})
    return {"link_key": "string", "key_version": "string", "org_code": "string", "api": "string",
            "x_api_tran_id": "string", "collected_at": "string", "request": request, "response": response}


def _line_rule(d: Dialect, checks: str) -> str:
    """A rejected line's outcome: the first rule it breaks, with every reason."""
    return d.rule_of(f"{d.first(checks)}.rule", d.reasons(checks))


def _columns_of(spec: TableSpec, origin: str) -> TableSpec:
    return TableSpec(origin, spec.source, tuple(c for c in spec.columns if c.origin == origin), ())


def _split(spec: TableSpec, origins: tuple[str, ...]) -> tuple[TableSpec, TableSpec]:
    """The columns before those of ``origins``, and those: a list item's come after its line's."""
    first = next(i for i, c in enumerate(spec.columns) if c.origin in origins)
    if not all(c.origin in origins for c in spec.columns[first:]):  # rules are reported in column order
        raise ValueError(f"{spec.name}: a line's column comes after an item's")
    return (TableSpec(spec.name, spec.source, spec.columns[:first], ()),
            TableSpec(spec.name, spec.source, spec.columns[first:], ()))


def _outcome_ladder(d: Dialect, source: str, requests: list[ApiSpec]) -> str:
    """The first reason a line is rejected (NULL when it is not): bytes, JSON, API, envelope,
    then (for a successful collection) its count and, when it has no items, its request."""
    api = d.field("j", "api")
    apis = ", ".join(d.lit(a.api) for a in apis_of(source))
    not_an_api = f"concat('api=', coalesce({api}, ''), {d.lit(f' is not a {source} API')})"
    steps = [
        f"WHEN bad_bytes THEN {d.rule('encoding.utf8', d.lit('the line is not valid UTF-8'))}",
        f"WHEN _corrupt THEN {d.rule('json_parse', d.lit('line is not a valid JSON object'))}",
        f"WHEN NOT coalesce({api} IN ({apis}), false) THEN {d.rule('api.in_set', not_an_api)}",
        f"WHEN {d.size('_env')} > 0 THEN {_line_rule(d, '_env')}",
        f"WHEN coalesce({d.field('j', 'response', 'rsp_code')}, '') <> {d.lit(codes.SUCCESS_RSP_CODE)} THEN NULL",
        f"WHEN NOT _count_ok THEN "
        f"{d.rule('count_mismatch', d.lit('the response' + chr(39) + 's count field differs from its list length'))}",
    ]
    for i, spec in enumerate(requests):  # a response with no items yields no row: its request is checked here
        items = d.size(d.field("j", "response", spec.list_field))
        steps.append(f"WHEN {api} = {d.lit(spec.api)} AND coalesce({items}, 0) <= 0 AND {d.size(f'_req{i}')} > 0 "
                     f"THEN {_line_rule(d, f'_req{i}')}")
    return "CASE " + "\n".join(steps) + " END"


def parse_mydata(d: Dialect, source: str, lines: str) -> str:
    """SQL: every line of ``lines`` parsed, with its outcome before duplicates (``status``: ok,
    rejected or failed; ``line_rule`` for a rejected one) and its ``x_api_tran_id``."""
    parsed, corrupt = d.parse_json(envelope_shape(source))
    envelope = _columns_of(tables_of(source)[0], "envelope")
    lists = [a for a in apis_of(source) if a.is_list]
    count_ok = ("CASE " + " ".join(
        f"WHEN {d.field('j', 'api')} = {d.lit(a.api)} THEN coalesce(try_cast({d.field('j', 'response', a.count_field)} "
        f"AS {d.sql_type('int')}) = {d.size(d.field('j', 'response', a.list_field))}, false)" for a in lists)
        + " ELSE true END") if lists else "true"
    requests = [a for a in lists if a.request_fields]
    checked = ", ".join([f"{violations(d, {c.name: d.field('j', c.name) for c in envelope.columns}, envelope)} AS _env",
                         f"{count_ok} AS _count_ok",
                         *(f"{_request_checks(d, a)} AS _req{i}" for i, a in enumerate(requests))])
    rsp_code = d.field("j", "response", "rsp_code")
    # the line's text is kept where it is a record (a rejected line, a row of an API without a
    # list); a list's items carry their own JSON: the biggest lines need not be kept twice
    listed = ", ".join(d.lit(a.api) for a in lists) or "NULL"
    value = f"CASE WHEN line_rule IS NOT NULL OR NOT coalesce({d.field('j', 'api')} IN ({listed}), false) THEN value END"
    return f"""
SELECT {value} AS value, file_path, line_no, dt, j, line_rule, {d.field('j', 'x_api_tran_id')} AS x_api_tran_id,
       CASE WHEN line_rule IS NOT NULL THEN 'rejected'
            WHEN {rsp_code} <> {d.lit(codes.SUCCESS_RSP_CODE)} THEN 'failed' ELSE 'ok' END AS status
FROM (SELECT *, {_outcome_ladder(d, source, requests)} AS line_rule
      FROM (SELECT *, {checked}
            FROM (SELECT *, {corrupt} AS _corrupt FROM (SELECT *, {parsed} AS j FROM {lines}) l1) l2) l3) l4"""


def _request_checks(d: Dialect, spec: ApiSpec) -> str:
    """SQL of the violations of a list API's request fields (its items' rows carry them too)."""
    request = _columns_of(TABLES[_table_of(spec.api)], "request")
    return violations(d, {c.name: d.field("j", "request", c.name) for c in request.columns}, request)


def _table_of(api: str) -> str:
    return next(t.name for t in TABLES.values() if t.api == api)


def mark_duplicates(d: Dialect, parsed: str, delivered: str | None, dts: list[date],
                    earlier: str | None = None) -> str:
    """SQL: a good or failed line whose x_api_tran_id came before (an earlier line of the run, or
    an earlier delivery in ``delivered``, the collections index, whose partitions ``dts`` the run
    replaces) becomes ``duplicate``. ``earlier``: this run's ids read before ``parsed`` (x_api_tran_id, dt)."""
    kept = "status IN ('ok', 'failed')"
    nth = f"CASE WHEN {kept} THEN row_number() OVER (PARTITION BY {kept}, x_api_tran_id ORDER BY dt, file_path, line_no) END"
    before = ([f"SELECT x_api_tran_id, dt FROM {delivered} WHERE dt NOT IN ({d.dates(dts)})"] if delivered else []) \
        + ([f"SELECT x_api_tran_id, dt FROM {earlier}"] if earlier else [])
    if not before:
        seen, join = "false", ""
    else:  # one row per id (its first delivery), so the join cannot multiply lines
        seen = "coalesce(e._seen_dt < p.dt, false)"
        join = (f"LEFT JOIN (SELECT x_api_tran_id AS _seen_id, min(dt) AS _seen_dt FROM ({' UNION ALL '.join(before)}) b "
                f"GROUP BY x_api_tran_id) e ON p.x_api_tran_id = e._seen_id")
    return f"""
SELECT value, file_path, line_no, dt, j, line_rule, x_api_tran_id,
       CASE WHEN {kept} AND (_nth > 1 OR _seen) THEN 'duplicate' ELSE status END AS status
FROM (SELECT p.*, {nth} AS _nth, {seen} AS _seen FROM ({parsed}) p {join}) x"""


def _raw(d: Dialect, column_origin: str, name: str) -> str:
    """Where a bronze column's landing string is in a parsed MyData line (``j``) or item (``_item``)."""
    return {"envelope": d.field("j", name), "request": d.field("j", "request", name),
            "response": d.field("j", "response", name), "position": d.text("_pos"),
            "item": d.field("_item", name)}[column_origin]


def mydata_rows(d: Dialect, spec: TableSpec, parsed: str) -> str:
    """SQL: candidate rows of one MyData table from the good lines of ``parsed``."""
    api = APIS[spec.api]
    raw = {c.name: _raw(d, c.origin, c.name) for c in spec.columns}
    mine = f"SELECT * FROM {parsed} WHERE status = 'ok' AND {d.field('j', 'api')} = {d.lit(spec.api)}"
    if not api.is_list:
        return _candidates(d, raw, spec, mine, "value", "NULL")
    return _candidates(d, raw, spec, mine, None, "_pos", explode=d.posexplode(d.field("j", "response", api.list_field)))


def _items_listed(spec: TableSpec) -> bool:
    """A list item's record is rebuilt from its line for the few quarantined, not kept by every row."""
    return spec.api is not None and APIS[spec.api].is_list


def _candidates(d: Dialect, raw: dict[str, str], spec: TableSpec, rows: str, record: str | None, item_no: str,
                broken: str | None = None, explode: str | None = None) -> str:
    """Typed columns plus ``_violations`` and ``record`` (None: none); ``broken`` (SQL of a rule
    struct) overrides them when the line is unreadable, ``explode`` (SQL of items) makes rows of a
    line's list. One select: the whole table's rules in one call into the engine."""
    values = parsed_values(d, raw, spec)
    parsed = {name: d.ident(f"_p_{name}") for name in values}  # each landing string parsed once
    found = violations(d, raw, spec, parsed)
    if broken is not None:
        found = f"CASE WHEN ({broken}) IS NOT NULL THEN {d.array(broken)} ELSE {found} END"
    if explode is not None:  # a line's own fields are parsed and checked once per line, not per item
        line, item = _split(spec, ("item", "position"))
        rows = (f"SELECT *, {explode} FROM (SELECT l.*, {violations(d, raw, line, parsed)} AS _line_violations "
                f"FROM ({_with_values(d, rows, {c.name: values[c.name] for c in line.columns if c.name in values}, parsed)}) l) m")
        values = {c.name: values[c.name] for c in item.columns if c.name in values}
        found = f"flatten({d.array('_line_violations', violations(d, raw, item, parsed))})"
    with_values = _with_values(d, rows, values, parsed)
    kept = f"{record} AS record, " if record is not None else ""
    return (f"SELECT {', '.join(typed_columns(d, raw, spec, parsed))}, {found} AS _violations, {kept}"
            f"CAST({item_no} AS {d.sql_type('int')}) AS _item_no, file_path, line_no, dt FROM ({with_values}) r")


# -- CSV and consent ----------------------------------------------------------------------------

def _unreadable(d: Dialect, condition: str, rule: str, reason: str) -> str:
    return (f"CASE WHEN bad_bytes THEN {d.rule('encoding.utf8', d.lit('the line is not valid UTF-8'))} "
            f"WHEN {condition} THEN {d.rule(rule, d.lit(reason))} END")


def _with_values(d: Dialect, rows: str, values: dict[str, str], parsed: dict[str, str]) -> str:
    """``rows`` with typed values (of ``parsed_values``) as the columns ``parsed`` names."""
    if not values:
        return rows
    return f"SELECT r.*, {', '.join(f'{sql} AS {parsed[name]}' for name, sql in values.items())} FROM ({rows}) r"


def csv_rows(d: Dialect, spec: TableSpec, lines: str) -> str:
    """SQL: candidate rows of a CSV table; the header line is not a record."""
    columns = CSV_SOURCES[spec.source]
    rows = f"SELECT *, {d.parse_csv(columns)} AS j FROM {lines} WHERE value <> {d.lit(','.join(columns))}"
    broken = _unreadable(d, f"{d.field('j', '_corrupt_record')} IS NOT NULL", "csv_parse",
                         f"row does not have the {len(columns)} fields of the header")
    return _candidates(d, {c.name: d.field("j", c.name) for c in spec.columns}, spec, rows, "value", "NULL", broken)


def consent_rows(d: Dialect, spec: TableSpec, lines: str) -> str:
    """SQL: candidate rows of consent events (JSON lines, ``sources`` a list)."""
    parsed, corrupt = d.parse_json({c.name: ["string"] if c.kind == "sources" else "string" for c in spec.columns})
    rows = f"SELECT *, {corrupt} AS _corrupt FROM (SELECT *, {parsed} AS j FROM {lines}) l"
    broken = _unreadable(d, "_corrupt", "json_parse", "line is not a valid JSON object")
    return _candidates(d, {c.name: d.field("j", c.name) for c in spec.columns}, spec, rows, "value", "NULL", broken)


# -- accept or quarantine ------------------------------------------------------------------------

def ranked_rows(d: Dialect, spec: TableSpec, candidates: str) -> str:
    """SQL: candidates, a later row of a natural key already accepted in the delivery broken as
    ``natural_key.unique``. The first collection wins; the reason names the one it repeats."""
    keys = ", ".join(d.ident(name) for name in ("dt", *spec.natural_key))
    if spec.api is not None:
        order, original = "collected_at, x_api_tran_id, file_path, line_no, _item_no", "x_api_tran_id"
        named = "' from x_api_tran_id='"
    else:
        order, original = "file_path, line_no", f"concat(line_no, ' of ', {d.last_path_part('file_path')})"
        named = "' at line '"
    window = f"OVER (PARTITION BY {d.size('_violations')} = 0, {keys} ORDER BY {order})"
    said = d.lit(f"natural key ({', '.join(spec.natural_key)}) already accepted in this delivery")
    repeated = d.rule("natural_key.unique", f"concat({said}, {named}, _original)")
    columns = ", ".join(d.ident(c) for c in (*spec.column_names, *([] if _items_listed(spec) else ["record"])))
    return f"""
SELECT {columns}, _item_no, file_path, line_no, dt,
       CASE WHEN {d.size('_violations')} = 0 AND _nth > 1 THEN {d.array(repeated)} ELSE _violations END AS _violations
FROM (SELECT c.*, CASE WHEN {d.size('_violations')} = 0 THEN row_number() {window} END AS _nth,
             first_value({original}) {window} AS _original FROM ({candidates}) c) x"""


def accepted_rows(d: Dialect, spec: TableSpec, ranked: str) -> str:
    columns = ", ".join(d.ident(c) for c in spec.column_names)
    return f"SELECT {columns}, dt FROM {ranked} WHERE {d.size('_violations')} = 0"


def quarantined_rows(d: Dialect, spec: TableSpec, ranked: str, parsed: str | None = None) -> str:
    """SQL: the quarantine rows of a ranking; a list item's record is rebuilt from its line in
    ``parsed`` (the parsed lines, required for a list API's table)."""
    rows = f"SELECT * FROM {ranked} WHERE {d.size('_violations')} > 0"
    record = "record"
    if _items_listed(spec):
        if parsed is None:
            raise ValueError(f"{spec.name}: a list item's record needs the parsed lines")
        api = APIS[spec.api]
        item = d.element(d.field("p", "j", "response", api.list_field), "q._item_no")
        rows = (f"SELECT q.*, {item} AS _item FROM ({rows}) q JOIN {parsed} p "
                f"ON p.dt = q.dt AND p.file_path = q.file_path AND p.line_no = q.line_no")
        record = d.item_json(sorted(api.item_fields))
    return (f"SELECT {d.lit(spec.name)} AS {d.ident('table')}, {d.first('_violations')}.rule AS rule, "
            f"{d.reasons('_violations')} AS reason, {record} AS record, _item_no AS item_no, file_path, line_no, dt "
            f"FROM ({rows}) r")


def line_quarantine(d: Dialect, source: str, parsed: str) -> str:
    return (f"SELECT {d.lit(LINE_TABLE.format(source=source))} AS {d.ident('table')}, line_rule.rule AS rule, "
            f"line_rule.reason AS reason, value AS record, CAST(NULL AS {d.sql_type('int')}) AS item_no, "
            f"file_path, line_no, dt FROM {parsed} WHERE status = 'rejected'")


def failed_collections(d: Dialect, parsed: str) -> str:
    j = lambda *path: d.field("j", *path)  # noqa: E731
    return (f"SELECT {j('api')} AS api, {j('org_code')} AS org_code, x_api_tran_id, {j('link_key')} AS link_key, "
            f"{j('response', 'rsp_code')} AS rsp_code, {j('response', 'rsp_msg')} AS rsp_msg, "
            f"{d.timestamp(j('collected_at'))} AS collected_at, dt FROM {parsed} WHERE status = 'failed'")


def collections(d: Dialect, parsed: str) -> str:
    j = lambda *path: d.field("j", *path)  # noqa: E731
    return (f"SELECT {j('api')} AS api, {j('org_code')} AS org_code, x_api_tran_id, {j('link_key')} AS link_key, "
            f"try_cast({j('key_version')} AS {d.sql_type('int')}) AS key_version, dt "
            f"FROM {parsed} WHERE status = 'ok'")


def shown_reason(d: Dialect) -> str:
    """A reason fit for manifests and reports: a malformed link key is still a pseudonym."""
    return d.replace_all("reason", "link_key=[^;]*", "link_key=<hidden>")


def _per_source(lake: Lake, table: str, source: str):
    """Tables shared by the MyData sources are partitioned by source, then delivery date."""
    return lake.bronze_table(table) / f"source={source}"


def read_quarantine(spark, lake: Lake):
    """Every quarantine table as one Spark frame with a ``table`` column (for review and reports)."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

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

    def count_lines(self, rows: list[dict]) -> None:
        for row in rows:
            by_status = self.lines.setdefault(str(row["dt"]), {})
            by_status[row["status"]] = by_status.get(row["status"], 0) + int(row["count"])
            if row["org_code"] is not None:
                key = (str(row["dt"]), row["org_code"])
                self.holders[key] = self.holders.get(key, 0) + int(row["count"])

    def count_rows(self, tables: list[str], dts: list[date], accepted: list[dict], rules: list[dict]) -> None:
        for name in tables:
            self.tables.setdefault(name, {}).update({str(dt): {"accepted": 0, "quarantined": 0} for dt in dts})
        for row in accepted:
            self.tables[row["table"]][str(row["dt"])]["accepted"] = int(row["count"])
        for row in rules:
            table, dt, count = row["table"], str(row["dt"]), int(row["count"])
            by_dt = self.rules.setdefault(table, {}).setdefault(dt, {})
            by_dt[row["rule"]] = by_dt.get(row["rule"], 0) + count
            shown = self.examples.setdefault(table, {})  # the least reason, whichever order rows come in
            shown[row["rule"]] = min(shown.get(row["rule"], row["example"]), row["example"])
            if table in self.tables:
                self.tables[table][dt]["quarantined"] += count


def _line_counts(d: Dialect, source: str, names: dict[str, str]) -> str:
    """SQL: lines per delivery, outcome and (for a line that is not rejected) holder."""
    if source in MYDATA_SOURCES:
        holder = f"CASE WHEN status <> 'rejected' THEN {d.field('j', 'org_code')} END"
        return (f"SELECT dt, status, {holder} AS org_code, count(*) AS count FROM {names['parsed']} "
                f"GROUP BY dt, status, {holder}")
    header = f" WHERE value <> {d.lit(','.join(CSV_SOURCES[source]))}" if source in CSV_SOURCES else ""
    return (f"SELECT dt, 'ok' AS status, CAST(NULL AS {d.sql_type('string')}) AS org_code, count(*) AS count "
            f"FROM {names['lines']}{header} GROUP BY dt")


def ingest_source(engine: Engine, lake: Lake, source: str, deliveries: list[Delivery],
                  run_id: str) -> SourceResult:
    """Parse, type and split one source's deliveries, as many delivery dates at a time as the
    engine holds (``landing_bytes_at_once``); stage (not publish) its bronze and quarantine (a
    failure discards what was staged)."""
    dts = sorted({delivery.dt for delivery in deliveries})
    batches = storage.date_batches({dt: sum(text_bytes(p) for x in deliveries if x.dt == dt for p in data_files(x))
                            for dt in dts}, engine.landing_bytes_at_once)
    result = SourceResult({}, {}, {}, {}, {}, [])
    delivered = source in MYDATA_SOURCES and engine.parquet(f"{source}_delivered", _per_source(lake, COLLECTIONS, source))
    earlier = None  # this run's ids of the dates read so far
    try:
        with progress.step("ingest", source, unit="files",
                           total=sum(len(data_files(x)) for x in deliveries)) as shown:
            for i, batch in enumerate(batches):
                mine = [x for x in deliveries if x.dt in batch]
                earlier = _ingest_dates(engine, lake, source, mine, dts, run_id,
                                        f"{source}_delivered" if delivered else None, earlier, i + 1 < len(batches),
                                        result)
                shown.advance(sum(len(data_files(x)) for x in mine),
                              rows=sum(sum(result.lines.get(str(dt), {}).values()) for dt in batch))
            shown.outcome = "staged"  # published only once every source of the run passed
    except BaseException as exc:
        storage.discard(result.staged)
        if isinstance(exc, UnreadableLanding):
            raise IngestFailed(f"{source}: {exc}; nothing of this run was published") from exc
        raise
    finally:
        engine.drop(f"{source}_delivered", *([earlier] if earlier else []))
    return result


def _ingest_dates(engine: Engine, lake: Lake, source: str, deliveries: list[Delivery], run_dts: list[date],
                  run_id: str, delivered: str | None, earlier: str | None, more: bool,
                  result: SourceResult) -> str | None:
    """Ingest some delivery dates of a source into ``result``; with ``more`` dates to come, returns
    the name of the run's ids read so far (a MyData source's), for their duplicates."""
    d, dts = engine.dialect, sorted({delivery.dt for delivery in deliveries})
    names = {"lines": f"{source}_lines", "parsed": f"{source}_parsed"}
    # a MyData source's lines are read once, by the parse: streamed, they are never all held
    engine.lines(names["lines"], [p for delivery in deliveries for p in data_files(delivery)],
                 streamed=source in MYDATA_SOURCES)
    outputs: dict[str, str] = {}
    quarantines: list[str] = []
    seen = None
    if source in MYDATA_SOURCES:
        engine.table(names["parsed"], mark_duplicates(d, parse_mydata(d, source, names["lines"]), delivered,
                                                      run_dts, earlier))
        if engine.materializes:  # every later step reads the parsed lines: the raw ones can go now
            engine.drop(names["lines"])
        if more:
            seen = f"{source}_seen_{dts[-1]:%Y%m%d}"
            engine.table(seen, " UNION ALL ".join([*([f"SELECT x_api_tran_id, dt FROM {earlier}"] if earlier else []),
                                                    f"SELECT x_api_tran_id, dt FROM {names['parsed']} "
                                                    "WHERE status IN ('ok', 'failed')"]))
        if earlier:
            engine.drop(earlier)
        quarantines.append(line_quarantine(d, source, names["parsed"]))
        outputs[FAILED_COLLECTIONS] = failed_collections(d, names["parsed"])
        outputs[COLLECTIONS] = collections(d, names["parsed"])
        candidates = {spec.name: mydata_rows(d, spec, names["parsed"]) for spec in tables_of(source)}
    else:
        builder = consent_rows if source == "consent" else csv_rows
        candidates = {spec.name: builder(d, spec, names["lines"]) for spec in tables_of(source)}
    result.count_lines(engine.rows(_line_counts(d, source, names)))
    _check_holders(lake, source, result.holders)  # before these dates are written
    ranked = {name: f"{name}_ranked" for name in candidates}
    for name, sql in candidates.items():
        engine.table(ranked[name], ranked_rows(d, TABLES[name], sql))
        outputs[name] = accepted_rows(d, TABLES[name], ranked[name])
        quarantines.append(quarantined_rows(d, TABLES[name], ranked[name], names["parsed"]))
    shared = (COLLECTIONS, FAILED_COLLECTIONS)
    result.staged += engine.concurrently([
        (engine.stage, sql, _per_source(lake, name, source) if name in shared else lake.bronze_table(name), dts, run_id)
        for name, sql in outputs.items()])
    # the quarantine reads every ranking, beside the counts, which read the same kept rankings
    # rather than the written tables
    quarantined, table = " UNION ALL ".join(quarantines), d.ident("table")
    accepted_counts = " UNION ALL ".join(
        f"SELECT {d.lit(name)} AS {table}, dt, count(*) AS count FROM {ranked[name]} "
        f"WHERE {d.size('_violations')} = 0 GROUP BY dt" for name in candidates)
    rule_counts = (f"SELECT {table}, dt, rule, count(*) AS count, min({shown_reason(d)}) AS example "
                   f"FROM ({quarantined}) q GROUP BY {table}, dt, rule")
    tables = sorted(set(candidates) | ({LINE_TABLE.format(source=source)} if source in MYDATA_SOURCES else set()))
    staged_quarantine, accepted, rules = engine.concurrently([
        (engine.stage, quarantined, lake.quarantine, dts, run_id, tables),
        (engine.rows, accepted_counts), (engine.rows, rule_counts)])
    result.staged.append(staged_quarantine)
    result.count_rows(list(candidates), dts, accepted, rules)
    engine.drop(*names.values(), *ranked.values())
    return seen


class NoDeliveryError(RuntimeError):
    """Nothing complete to ingest: said plainly, not as a stack trace."""


class IngestFailed(RuntimeError):
    """A delivery cannot be ingested as it is (an unregistered holder, too much quarantined): the
    run publishes nothing, and its manifest says why."""


class HoldersRefused(IngestFailed):
    """Deliveries from holders the registry does not allow (for those dates): one message per holder."""

    def __init__(self, messages: list[str]) -> None:
        self.messages = messages
        super().__init__(f"{len(messages)} unregistered holder(s), nothing of this run was ingested: "
                         + "; ".join(messages))


def _check_holders(lake: Lake, source: str, seen: dict[tuple[str, str], int]) -> None:
    """Every line's holder must be registered for the source since the delivery's date."""
    registry = HolderRegistry.open(Settings(data_root=lake.root))
    refused: dict[str, list[tuple[str, int]]] = {}
    for (dt, org_code), count in sorted(seen.items()):
        holder = registry.get(source, org_code)
        if holder is None or holder.since > date.fromisoformat(dt):
            refused.setdefault(org_code, []).append((dt, count))
    if refused:
        raise HoldersRefused([unregistered_message(source, [dt for dt, _ in dts], org_code, sum(n for _, n in dts),
                                                   registry.get(source, org_code))
                              for org_code, dts in refused.items()])


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


@writes_lake("ingest")
def run(settings: Settings, spark: Any = None) -> dict:
    """Ingest every complete delivery (or those of ``settings.delivery_date``) into bronze on the
    configured engine (``spark``: a running SparkSession to use): all of the run's partitions are
    published together at the end, or none are."""
    lake = settings.lake
    deliveries = find_deliveries(lake, settings.delivery_date)
    complete = [d for d in deliveries if d.complete]
    when = f" for dt={settings.delivery_date}" if settings.delivery_date else ""
    if not complete:
        check_landing(lake, settings.skip_bad_landing)  # what is there may be no delivery at all: say what
        waiting = ", ".join(f"{d.source} dt={d.dt}" for d in deliveries) or "none"
        raise NoDeliveryError(f"no complete delivery{when} under {lake.landing} "
                              f"(deliveries waiting for _SUCCESS: {waiting})")
    sources = [(source, mine) for source in SOURCES
               if (mine := [d for d in complete if d.source == source and data_files(d)])]
    with stage_run(settings, "ingest", spark=spark, dt=settings.delivery_date, engine=settings.engine,
                   max_quarantine_rate=settings.max_quarantine_rate) as run:
        run.manifest.notes += [f"waiting for _SUCCESS, not read: {d.source} dt={d.dt}"
                               for d in deliveries if not d.complete]
        run.manifest.notes += [f"empty delivery (no data files): {d.source} dt={d.dt}"
                               for d in complete if not data_files(d)]
        run.manifest.inputs = {"deliveries": [f"{d.source} dt={d.dt}" for d in complete]}
        _ingest(run, sources)
    recon = run.manifest.outputs["reconciliation"]
    accepted, quarantined = ingest_rows({"outputs": run.manifest.outputs})
    return {"manifest": str(run.manifest_path), "run_id": run.manifest.run_id, "rows_accepted": accepted,
            "rows_quarantined": quarantined,
            "failed_collections": sum(e.get("failed_collections", 0) for s in recon.values() for e in s.values()),
            "duplicates": sum(e.get("duplicates", 0) for s in recon.values() for e in s.values())}


def _ingest(run: StageRun, sources: list) -> None:
    """Every source's deliveries into staging, side by side where the engine gains, then one publish."""
    settings, lake, manifest = run.settings, run.lake, run.manifest
    # what is not a well-formed delivery fails the run, unless skipped: never read, never silent
    manifest.outputs["landing_problems"] = [p.said() for p in check_landing(lake, settings.skip_bad_landing)]
    engine = run.engine
    # on Spark two sources at a time: one's driver-side work overlaps the other's jobs
    with ThreadPoolExecutor(max_workers=engine.sources_at_once) as pool:
        futures = [pool.submit(ingest_source, engine, lake, source, mine, manifest.run_id)
                   for source, mine in sources]
    outcomes = [future.exception() or future.result() for future in futures]
    run.close_engine()
    staged = [write for outcome in outcomes if isinstance(outcome, SourceResult) for write in outcome.staged]
    try:
        with progress.step("ingest", "publish", unit="tables") as shown:
            _publish(lake, manifest, sources, outcomes, staged, settings.max_quarantine_rate)
            shown.advance(len(staged))
    finally:
        storage.discard(staged)  # a failed run's staging; nothing left after a publish


def _publish(lake: Lake, manifest: RunManifest, sources: list, outcomes: list, staged: list, threshold: float) -> None:
    """Publish every source's staging together, or nothing: a source that failed, the quarantine
    gate or a reconciliation that does not balance stops the whole run."""
    refused = [o for o in outcomes if isinstance(o, HoldersRefused)]
    if refused:  # every unregistered holder of the run at once, whichever source met it
        raise HoldersRefused([message for o in refused for message in o.messages])
    failed = next((outcome for outcome in outcomes if isinstance(outcome, BaseException)), None)
    if failed is not None:
        raise failed
    _record(manifest, sources, outcomes, threshold)
    if manifest.outputs["gate_failures"]:
        _report_failed(lake, manifest)
        raise IngestFailed(f"quarantine gate: {'; '.join(manifest.outputs['gate_failures'][:5])}; "
                           "nothing of this run was published")
    if not all(e["balanced"] for by_dt in manifest.outputs["reconciliation"].values() for e in by_dt.values()):
        raise IngestFailed("ingest did not reconcile: input rows differ from accepted + quarantined")
    storage.publish(staged, journal=lake.publish_journal)


def _report_failed(lake: Lake, manifest: RunManifest) -> None:
    """A run the gate stopped gets its report page too (validation never sees it)."""
    from dataclasses import asdict


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
