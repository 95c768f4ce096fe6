"""Validate an ingest run's bronze partitions with Great Expectations, and report the run in HTML.

Ingest checked every row against the rules of ``schemas.bronze`` and quarantined failures; this
job checks what it published, table by table, with the suites of ``schemas.expectations`` (an
independent engine over the same rules). Any failed expectation fails the run: downstream jobs
must not build on bronze that breaks its contract. Either way the run gets a page,
``reports/ingest/<ingest run id>.html`` (reconciliation, quarantine by rule, every expectation),
and ``reports/ingest/index.html`` lists the runs.
"""
from __future__ import annotations

import json
import logging
import sys
import threading
from typing import Any, Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from mydata import storage
from mydata import html
from mydata.config import Settings
from mydata.engines import open_engine
from mydata.lake import Lake
from mydata.manifest import RunManifest, latest_manifest
from mydata.spark import concurrently
from schemas.bronze import TABLES
from schemas.expectations import PARTITION, expectation_suite, gx

REPORT_FOLDER = "ingest"


class ValidationFailed(RuntimeError):
    """Published bronze breaks an expectation of its suite."""


@dataclass
class ExpectationOutcome:
    rule: str
    expectation: str
    column: str
    success: bool
    checked: int | None
    unexpected: int | None


@dataclass
class TableValidation:
    table: str
    dts: list[str]
    rows: int
    outcomes: list[ExpectationOutcome]

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)


def _context():
    """One ephemeral Great Expectations context, no progress bars."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _validator():
    """A context whose data source takes Spark DataFrames, and its batch definition."""
    context = _context()
    batch = context.data_sources.add_spark("bronze").add_dataframe_asset("partitions") \
        .add_batch_definition_whole_dataframe("run")
    return context, batch


def _is_row_check(expectation_type: str) -> bool:
    """Map expectations judge every row: passing one means no row broke it."""
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)
    from great_expectations.expectations.registry import get_expectation_impl

    return issubclass(get_expectation_impl(expectation_type),
                      (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation))


def run_suite(table: str, context, get_batch: Callable[[], Any], count_rows: Callable[[], int]
              ) -> list[ExpectationOutcome]:
    """Run the table's suite over the batch ``get_batch`` gives; keep counts only (never the
    unexpected values, which could be link keys), in the suite's order.

    The suite runs pass/fail first (about a quarter of the work of a run with counts), and again
    with counts only when something failed, so a failure says how many rows broke it. A row check
    that passed had no unexpected rows out of the batch's rows, counted once."""
    suite = context.suites.add(expectation_suite(TABLES[table]))
    order = {(e.expectation_type, (e.meta or {}).get("rule")): i for i, e in enumerate(suite.expectations)}
    try:
        result = get_batch().validate(suite, result_format="BOOLEAN_ONLY")
        counted = count_rows() if result.success else None
        if not result.success:
            result = get_batch().validate(suite, result_format="BASIC")
    finally:
        context.suites.delete(suite.name)
    outcomes = []
    for item in result.results:
        config, found = item.expectation_config, item.result or {}
        kwargs = config.kwargs
        checked, unexpected = found.get("element_count"), found.get("unexpected_count")
        if counted is not None and _is_row_check(config.type):
            checked, unexpected = counted, 0
        outcomes.append(ExpectationOutcome(
            rule=(config.meta or {}).get("rule", config.type), expectation=config.type,
            column=kwargs.get("column") or ", ".join(kwargs.get("column_list") or []),
            success=bool(item.success), checked=checked, unexpected=unexpected))
    return sorted(outcomes, key=lambda o: order[(o.expectation, o.rule)])


def validate_frame(frame, table: str, context=None, batch=None) -> list[ExpectationOutcome]:
    """``run_suite`` over a Spark DataFrame."""
    if context is None:
        context, batch = _validator()
    cached_by_caller = frame.is_cached
    try:
        return run_suite(table, context, lambda: batch.get_batch(batch_parameters={"dataframe": frame}), frame.count)
    finally:
        if not cached_by_caller:
            # the Spark data source caches each batch it validates and never releases it: without
            # this a run kept every table it checked in the driver's heap (2.6 GiB at 100k subjects)
            frame.unpersist()


def validate_run(spark: SparkSession, lake: Lake, ingest: dict) -> list[TableValidation]:
    """Every table the ingest run wrote, over the delivery dates it wrote.

    Tables are checked side by side (a small table's checks are mostly fixed per-job cost on the
    driver), each thread with a Great Expectations context of its own: a context's Spark engine
    holds one active batch at a time."""
    contexts = threading.local()

    def check(table: str, by_dt: dict[str, dict[str, int]]) -> TableValidation:
        if not hasattr(contexts, "validator"):
            contexts.validator = _validator()
        dts = sorted(by_dt)
        frame = storage.read_table(spark, lake.bronze_table(table))
        if frame is None:
            frame = spark.createDataFrame([], _empty_schema(table))
        frame = frame.where(F.col(PARTITION).isin(*[date.fromisoformat(d) for d in dts]))
        outcomes = validate_frame(frame, table, *contexts.validator)
        rows = next((o.checked for o in outcomes if o.checked is not None),
                    sum(v["accepted"] for v in by_dt.values()))
        return TableValidation(table, dts, rows, outcomes)

    return concurrently([(check, table, by_dt) for table, by_dt in sorted(ingest["outputs"]["tables"].items())])


def validate_run_embedded(engine, lake: Lake, ingest: dict) -> list[TableValidation]:
    """The same suites through Great Expectations' SQL data source on DuckDB: every table the run
    wrote, over the delivery dates it wrote, as a view in a database file under the spill folder
    that GX opens with its own connection (the engine's memory limit and spill folder); the
    checks run inside DuckDB, no row is handed to Python."""
    import duckdb

    from mydata.engines import gx_duckdb

    gx_duckdb.enable()
    database = lake.spill / "validation.duckdb"
    database.parent.mkdir(parents=True, exist_ok=True)
    database.unlink(missing_ok=True)
    tables = sorted(ingest["outputs"]["tables"].items())
    checked: dict[str, str] = {}  # table -> its partitions of the run, as a query
    for table, by_dt in tables:
        dts = ", ".join(f"DATE '{dt}'" for dt in sorted(by_dt))
        scan = engine.parquet_sql(lake.bronze_table(table)) or _empty_sql(table)
        checked[table] = f"SELECT * FROM ({scan}) t WHERE {PARTITION} IN ({dts})"
    with duckdb.connect(str(database)) as con:
        for table, query in checked.items():
            con.execute(f"CREATE VIEW {table} AS {query}")
    context = _context()
    source = context.data_sources.add_sql("bronze", connection_string=f"duckdb:///{database}",
                                          kwargs={"connect_args": {"config": engine.config}})
    validations = []
    for table, by_dt in tables:
        batch = source.add_table_asset(table, table_name=table).add_batch_definition_whole_table("all")
        outcomes = run_suite(table, context, batch.get_batch,
                             lambda: engine.rows(f"SELECT count(*) AS n FROM ({checked[table]}) c")[0]["n"])
        rows = next((o.checked for o in outcomes if o.checked is not None), sum(v["accepted"] for v in by_dt.values()))
        validations.append(TableValidation(table, sorted(by_dt), rows, outcomes))
    source.get_execution_engine().engine.dispose()
    database.unlink(missing_ok=True)
    return validations


def _empty_sql(table: str) -> str:
    """A table with the bronze columns and no rows (a run wrote no partition of it)."""
    from schemas.sql import DUCKDB

    spec = TABLES[table]
    columns = ", ".join(f"CAST(NULL AS {DUCKDB.kind_type(c.kind)}) AS {DUCKDB.ident(c.name)}" for c in spec.columns)
    return f"SELECT {columns}, CAST(NULL AS DATE) AS {PARTITION} WHERE 1 = 0"


def _empty_schema(table: str) -> str:
    spec = TABLES[table]
    return ", ".join(f"`{c.name}` {c.spark_type}" for c in spec.columns) + f", {PARTITION} date"


# -- the report ------------------------------------------------------------------------------------

def write_report(lake: Lake, ingest: dict, validations: list[TableValidation]) -> Path:
    """The ingest run's page, ``reports/ingest/<run id>.html`` (also for a run its gate stopped)."""
    return html.write_page(lake.report(REPORT_FOLDER) / f"{ingest['run_id']}.html",
                           render_report(ingest, validations))


def _gate_section(ingest: dict) -> str:
    gate = ingest["outputs"].get("quarantine_gate")
    if not gate:
        return ""
    rows = [[c["table"], c["dt"], c["rows"], c["quarantined"], f"{c['share']:.2%}",
             ", ".join(f"{rule} {n:,}" for rule, n in c["top_rules"].items()),
             html.status(c["passed"], "within", "ABOVE")]
            for c in sorted(gate["checks"], key=lambda c: (c["passed"], -c["share"]))]
    return html.section(f"Quarantine gate (at most {gate['threshold']:.1%} of a table's rows per delivery)",
                        html.table(["table", "delivery", "rows", "quarantined", "share", "top rules", ""], rows),
                        note="A table whose share of quarantined rows in a delivery is above the threshold "
                             "(MYDATA_MAX_QUARANTINE_RATE) fails the run, and nothing of it is published; for "
                             "a source's lines, rejected lines and failed collections count. A source that goes "
                             "bad as a whole is a problem to raise, not rows to drop.")


def render_report(ingest: dict, validations: list[TableValidation]) -> str:
    recon = ingest["outputs"]["reconciliation"]
    tables = ingest["outputs"]["tables"]
    examples = ingest["outputs"].get("rule_examples", {})
    passed = bool(validations) and all(v.success for v in validations)
    total = {key: sum(e.get(key, 0) for by_dt in recon.values() for e in by_dt.values())
             for key in ("records_read", "rows_accepted", "rows_quarantined", "lines_quarantined",
                         "failed_collections", "duplicates")}
    facts = {"run": ingest["run_id"], "status": ingest["status"],
             "deliveries": len(ingest["inputs"]["deliveries"]), "code": ingest["code_version"],
             "started": ingest["started_at"][:19].replace("T", " ") + " UTC"}
    summary = html.table(
        ["records read", "rows accepted", "rows quarantined", "lines quarantined",
         "failed collections", "duplicate deliveries", "expectations"],
        [[total["records_read"], total["rows_accepted"], total["rows_quarantined"],
          total["lines_quarantined"], total["failed_collections"], total["duplicates"],
          html.status(passed, f"all {sum(len(v.outcomes) for v in validations)} met",
                      "FAILED" if validations else "not checked: the run failed")]])
    recon_rows = []
    for source, by_dt in sorted(recon.items()):
        for dt, e in sorted(by_dt.items()):
            recon_rows.append([source, dt, e["records_read"], e.get("lines_parsed", ""),
                               e.get("lines_quarantined", ""), e.get("failed_collections", ""),
                               e.get("duplicates", ""), e["rows_accepted"], e["rows_quarantined"],
                               html.status(e["balanced"], "balanced", "NOT BALANCED")])
    by_table = {v.table: v for v in validations}
    table_rows = []
    for name, by_dt in sorted(tables.items()):
        accepted = sum(v["accepted"] for v in by_dt.values())
        quarantined = sum(v["quarantined"] for v in by_dt.values())
        check = by_table.get(name)
        met = sum(o.success for o in check.outcomes) if check else 0
        table_rows.append([name, accepted, quarantined,
                           f"{quarantined / (accepted + quarantined):.3%}" if accepted + quarantined else "",
                           html.status(bool(check and check.success),
                                       f"{met}/{len(check.outcomes)} met" if check else "",
                                       f"{met}/{len(check.outcomes)} met" if check else "not checked")])
    rule_rows = []
    most = max((n for rules in ingest["quarantined"].values() for n in rules.values()), default=0)
    for name, rules in sorted(ingest["quarantined"].items()):
        for rule, count in sorted(rules.items(), key=lambda kv: -kv[1]):
            rule_rows.append([name, html.code(rule), count, html.bar(count, most, 120, "#c2543c"),
                              examples.get(name, {}).get(rule, "")])
    failing = [[v.table, html.code(o.rule), o.expectation, o.column, o.checked, o.unexpected]
               for v in validations for o in v.outcomes if not o.success]
    detail = [[v.table, html.code(o.rule), o.expectation, o.column, o.checked, o.unexpected,
               html.status(o.success)] for v in validations for o in v.outcomes]
    if ingest.get("error"):
        facts["error"] = ingest["error"]
    sections = [
        html.section("Summary", summary),
        _gate_section(ingest),
        html.section("Reconciliation", html.table(
            ["source", "delivery", "records read", "lines parsed", "lines quarantined",
             "failed collections", "duplicates", "rows accepted", "rows quarantined", ""],
            recon_rows), note="Per delivery, every record read has exactly one outcome: for MyData "
                              "sources lines read = parsed + quarantined + failed collections + "
                              "duplicates; for CSV and consent, rows read = accepted + quarantined."),
        html.section("Bronze tables", html.table(
            ["table", "rows accepted", "rows quarantined", "quarantined share", "expectations"],
            table_rows)),
        html.section("Quarantine by rule", html.table(
            ["table", "rule", "rows", "", "an example reason"], rule_rows),
            note="Quarantined rows keep the original record, file and line under "
                 "quarantine/<table>/dt=…; link key values are never shown here."),
        html.section("Failed expectations", html.table(
            ["table", "rule", "expectation", "column", "rows checked", "unexpected"], failing)),
        html.section("All expectations (Great Expectations, on the published bronze partitions)",
                     html.table(["table", "rule", "expectation", "column", "rows checked",
                                 "unexpected", ""], detail)),
    ]
    return html.page("Ingest run report", facts, sections)


def render_index(lake: Lake) -> str:
    rows = []
    for path in sorted((lake.manifests / "validate").glob("*.json"), reverse=True):
        doc = json.loads(path.read_text(encoding="utf-8"))
        out = doc["outputs"]
        report = Path(out.get("report", ""))
        rows.append([html.Markup(f'<a href="{html.escape(report.name)}">{html.escape(out["ingest_run"])}</a>'),
                     ", ".join(out.get("delivery_dates", [])), doc["started_at"][:19].replace("T", " "),
                     out.get("rows_checked", 0), html.status(doc["status"] == "succeeded", "passed", "FAILED")])
    return html.page("Ingest runs", {"runs": len(rows)}, [html.section("Runs, newest first", html.table(
        ["ingest run", "delivery dates", "validated (UTC)", "rows checked", "expectations"], rows))])


def run(settings: Settings, spark: SparkSession | None = None, ingest_run: str | None = None) -> dict:
    """Validate the latest ingest run (or ``ingest_run``) on the configured engine and write its report."""
    lake = settings.lake
    ingest = (json.loads(lake.manifest("ingest", ingest_run).read_text(encoding="utf-8"))
              if ingest_run else latest_manifest(lake, "ingest"))
    if ingest is None:
        raise FileNotFoundError(f"no ingest run to validate under {lake.manifests / 'ingest'}")
    if ingest["status"] != "succeeded":  # it published nothing: there is no bronze of it to check
        raise ValidationFailed(f"ingest run {ingest['run_id']} {ingest['status']} and published nothing "
                               f"({ingest.get('error') or 'no error recorded'}); fix it and ingest again")
    manifest = RunManifest.start("validate", ingest_run=ingest["run_id"], engine=settings.engine)
    engine = open_engine(settings, spark)
    try:
        validations = (validate_run(engine.spark, lake, ingest) if engine.name == "spark"
                       else validate_run_embedded(engine, lake, ingest))
    finally:
        engine.close()
    report = write_report(lake, ingest, validations)
    passed = all(v.success for v in validations)
    failed = [f"{v.table}: {o.rule} ({o.unexpected} of {o.checked} rows)"
              for v in validations for o in v.outcomes if not o.success]
    manifest.inputs = {"ingest_run": ingest["run_id"]}
    manifest.outputs = {
        "ingest_run": ingest["run_id"], "report": str(report),
        "delivery_dates": sorted({dt for v in validations for dt in v.dts}),
        "rows_checked": sum(v.rows for v in validations),
        "expectations": sum(len(v.outcomes) for v in validations),
        "failed": failed,
        "tables": {v.table: {"rows": v.rows, "met": sum(o.success for o in v.outcomes),
                             "evaluated": len(v.outcomes)} for v in validations}}
    path = manifest.finish(lake, "succeeded" if passed else "failed")
    index = html.write_page(lake.report(REPORT_FOLDER) / "index.html", render_index(lake))
    if not passed:
        raise ValidationFailed(f"bronze breaks {len(failed)} expectation(s): {'; '.join(failed[:5])}; "
                               f"see {report}")
    return {"manifest": str(path), "report": str(report), "index": str(index),
            "expectations": manifest.outputs["expectations"], "rows_checked": manifest.outputs["rows_checked"]}


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load()), file=sys.stdout)
