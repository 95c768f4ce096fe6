"""The SQL of ingest, by the contract's shapes and one engine's dialect: MyData JSON lines parsed
into outcomes and rows, CSV and consent lines into rows, then each table's rows ranked into
accepted and quarantined. Pure functions from names of registered tables to SQL text."""
from __future__ import annotations

from datetime import date

from schemas import codes
from schemas.bronze import TABLES, TableSpec, tables_of
from schemas.dialects import Dialect, Shape
from schemas.landing import APIS, CSV_SOURCES, MYDATA_SOURCES, ApiSpec, apis_of
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


def duplicate_lines(d: Dialect, parsed: str, delivered: str | None, dts: list[date],
                    earlier: str | None = None) -> str:
    """SQL: the lines (file_path, line_no) of ``parsed`` that are duplicates: a good or failed
    line whose x_api_tran_id came before (an earlier line of the run, or an earlier delivery in
    ``delivered``, the collections index, whose partitions ``dts`` the run replaces). ``earlier``:
    this run's ids read before ``parsed`` (x_api_tran_id, dt). Few lines are: the ranking reads
    four narrow columns, never the parsed rows."""
    kept = "status IN ('ok', 'failed')"
    repeated = (f"SELECT file_path, line_no FROM (SELECT file_path, line_no, row_number() OVER "
                f"(PARTITION BY x_api_tran_id ORDER BY dt, file_path, line_no) AS _nth FROM {parsed} WHERE {kept}) r "
                "WHERE _nth > 1")
    before = ([f"SELECT x_api_tran_id, dt FROM {delivered} WHERE dt NOT IN ({d.dates(dts)})"] if delivered else []) \
        + ([f"SELECT x_api_tran_id, dt FROM {earlier}"] if earlier else [])
    if not before:
        return repeated
    first = (f"SELECT x_api_tran_id AS _seen_id, min(dt) AS _seen_dt FROM ({' UNION ALL '.join(before)}) b "
             "GROUP BY x_api_tran_id")
    return (f"{repeated} UNION SELECT p.file_path, p.line_no FROM {parsed} p JOIN ({first}) e "
            f"ON p.x_api_tran_id = e._seen_id WHERE p.{kept} AND e._seen_dt < p.dt")


def mark_duplicates(d: Dialect, parsed: str, duplicates: str) -> str:
    """SQL: ``parsed`` with the lines of ``duplicates`` (``duplicate_lines``) as ``duplicate``."""
    return f"""
SELECT p.value, p.file_path, p.line_no, p.dt, p.j, p.line_rule, p.x_api_tran_id,
       CASE WHEN u.line_no IS NOT NULL THEN 'duplicate' ELSE p.status END AS status
FROM {parsed} p LEFT JOIN {duplicates} u ON p.file_path = u.file_path AND p.line_no = u.line_no"""


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

def _ranking(d: Dialect, spec: TableSpec) -> tuple[str, str, str]:
    """(the order in which a natural key's rows of a delivery come, what names a row, how that is said)."""
    if spec.api is not None:
        return "collected_at, x_api_tran_id, file_path, line_no, _item_no", "x_api_tran_id", "' from x_api_tran_id='"
    return "file_path, line_no", f"concat(line_no, ' of ', {d.last_path_part('file_path')})", "' at line '"


def repeated_rows(d: Dialect, spec: TableSpec, candidates: str) -> str:
    """SQL: the good candidates (file_path, line_no, _item_no) whose natural key a row before them
    in the delivery had, with ``_original`` naming the first. Only keys seen twice are ranked:
    a delivery's rows are counted by key, never sorted whole."""
    keys = [d.ident(name) for name in ("dt", *spec.natural_key)]
    good = f"{d.size('_violations')} = 0"
    order, original, _ = _ranking(d, spec)
    window = f"OVER (PARTITION BY {', '.join(keys)} ORDER BY {order})"
    twice = f"SELECT {', '.join(keys)} FROM {candidates} WHERE {good} GROUP BY {', '.join(keys)} HAVING count(*) > 1"
    same = " AND ".join(f"c.{k} IS NOT DISTINCT FROM t.{k}" for k in keys)
    return f"""
SELECT file_path, line_no, _item_no, _original
FROM (SELECT file_path, line_no, _item_no, row_number() {window} AS _nth, first_value({original}) {window} AS _original
      FROM (SELECT c.* FROM {candidates} c JOIN ({twice}) t ON {same} WHERE {d.size('c._violations')} = 0) c) r
WHERE _nth > 1"""


def ranked_rows(d: Dialect, spec: TableSpec, candidates: str, repeated: str) -> str:
    """SQL: candidates, a later row of a natural key already accepted in the delivery (``repeated``,
    of ``repeated_rows``) broken as ``natural_key.unique``. The first collection wins; the reason
    names the one it repeats."""
    _, _, named = _ranking(d, spec)
    said = d.lit(f"natural key ({', '.join(spec.natural_key)}) already accepted in this delivery")
    repeats = d.rule("natural_key.unique", f"concat({said}, {named}, r._original)")
    columns = ", ".join(f"c.{d.ident(col)}" for col in (*spec.column_names, *([] if _items_listed(spec) else ["record"])))
    return f"""
SELECT {columns}, c._item_no, c.file_path, c.line_no, c.dt,
       CASE WHEN r.line_no IS NOT NULL THEN {d.array(repeats)} ELSE c._violations END AS _violations
FROM {candidates} c LEFT JOIN {repeated} r
  ON c.file_path = r.file_path AND c.line_no = r.line_no AND c._item_no IS NOT DISTINCT FROM r._item_no"""


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


def line_counts(d: Dialect, source: str, names: dict[str, str]) -> str:
    """SQL: lines per delivery, outcome and (for a line that is not rejected) holder."""
    if source in MYDATA_SOURCES:
        holder = f"CASE WHEN status <> 'rejected' THEN {d.field('j', 'org_code')} END"
        return (f"SELECT dt, status, {holder} AS org_code, count(*) AS count FROM {names['parsed']} "
                f"GROUP BY dt, status, {holder}")
    header = f" WHERE value <> {d.lit(','.join(CSV_SOURCES[source]))}" if source in CSV_SOURCES else ""
    return (f"SELECT dt, 'ok' AS status, CAST(NULL AS {d.sql_type('string')}) AS org_code, count(*) AS count "
            f"FROM {names['lines']}{header} GROUP BY dt")
