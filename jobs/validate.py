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
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from mydata import html, progress, storage
from mydata.config import Settings
from mydata.engines import open_engine
from mydata.lake import Lake
from mydata.manifest import RunManifest, latest_manifest
from mydata.spark import concurrently
from mydata.lock import writes_lake
from render import ingest as ingest_report
from schemas.bronze import TABLES
from schemas.expectations import PARTITION, expectation_suite, gx
from schemas.dialects import SPARK
from schemas.sql import empty_table



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
            frame = spark.sql(empty_table(SPARK, TABLES[table]))
        frame = frame.where(F.col(PARTITION).isin(*[date.fromisoformat(d) for d in dts]))
        with progress.step("validate", table) as shown:
            outcomes = validate_frame(frame, table, *contexts.validator)
            rows = next((o.checked for o in outcomes if o.checked is not None),
                        sum(v["accepted"] for v in by_dt.values()))
            shown.advance(rows)
        return TableValidation(table, dts, rows, outcomes)

    return concurrently([(check, table, by_dt) for table, by_dt in sorted(ingest["outputs"]["tables"].items())])


#: rows checked at once per byte of the embedded engine's memory cap: 6GB checks 15M rows at once.
#: At 100k subjects the largest table (13.3M card approvals) was checked whole without spilling;
#: at 1M, whole tables (133M card approvals) spilled 33 GB and took 40x as long
CHECKED_ROWS_PER_MEMORY_BYTE = 1 / 400


def combined(batches: list[list[ExpectationOutcome]]) -> list[ExpectationOutcome]:
    """A table's outcomes over its batches: met when met in every batch, counts added up."""
    def total(values: list[int | None]) -> int | None:
        return None if any(v is None for v in values) else sum(values)
    return [ExpectationOutcome(same[0].rule, same[0].expectation, same[0].column, all(o.success for o in same),
                               total([o.checked for o in same]), total([o.unexpected for o in same]))
            for same in zip(*batches)]


def validate_run_embedded(engine, lake: Lake, ingest: dict, rows_at_once: int | None = None) -> list[TableValidation]:
    """The same suites through Great Expectations' SQL data source on DuckDB: every table the run
    wrote, over the delivery dates it wrote, as a view in a database file under the spill folder
    that GX opens with its own connection (the engine's memory limit and spill folder); the
    checks run inside DuckDB, no row is handed to Python. A table is checked in batches of whole
    delivery dates of at most ``rows_at_once`` rows: uniqueness is per delivery, so the verdicts
    are those of the whole run."""
    import duckdb

    from mydata.engines import gx_duckdb

    gx_duckdb.enable()
    database = lake.spill / f"validation-{uuid.uuid4().hex[:12]}.duckdb"  # one per run: runs may share a process
    database.parent.mkdir(parents=True, exist_ok=True)
    database.unlink(missing_ok=True)
    tables = sorted(ingest["outputs"]["tables"].items())
    checked: dict[str, list[tuple[str, str]]] = {}  # table -> (view, its query) per batch of dates
    for table, by_dt in tables:
        scan = engine.parquet_sql(lake.bronze_table(table)) or empty_table(engine.dialect, TABLES[table])
        sizes = {date.fromisoformat(dt): counts["accepted"] for dt, counts in by_dt.items()}
        checked[table] = [(f"{table}_{i}", f"SELECT * FROM ({scan}) t WHERE {PARTITION} IN ({engine.dialect.dates(dts)})")
                          for i, dts in enumerate(storage.date_batches(sizes, rows_at_once))]
    with duckdb.connect(str(database), config=engine.config) as con:  # as GX will open it
        for view, query in (batch for batches in checked.values() for batch in batches):
            con.execute(f"CREATE VIEW {view} AS {query}")
    context = _context()
    source = context.data_sources.add_sql("bronze", connection_string=f"duckdb:///{database}",
                                          kwargs={"connect_args": {"config": engine.config}})
    validations = []
    def check(table: str, view: str, query: str) -> list[ExpectationOutcome]:
        batch = source.add_table_asset(view, table_name=view).add_batch_definition_whole_table("all")
        return run_suite(table, context, batch.get_batch,
                         lambda: engine.rows(f"SELECT count(*) AS n FROM ({query}) c")[0]["n"])
    for table, by_dt in tables:
        with progress.step("validate", table) as shown:
            outcomes = combined([check(table, view, query) for view, query in checked[table]])
            rows = next((o.checked for o in outcomes if o.checked is not None),
                        sum(v["accepted"] for v in by_dt.values()))
            shown.advance(rows)
        validations.append(TableValidation(table, sorted(by_dt), rows, outcomes))
    # GX keeps its engines (and their DuckDB connections) for the life of the process otherwise
    source.get_execution_engine().engine.dispose()
    source.get_engine().dispose()
    database.unlink(missing_ok=True)
    return validations


@writes_lake("validate")
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
                       else validate_run_embedded(engine, lake, ingest,
                                                  int(settings.duckdb_memory_bytes * CHECKED_ROWS_PER_MEMORY_BYTE)))
    finally:
        engine.close()
    report = ingest_report.write_report(lake, ingest, validations)
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
    index = html.write_page(lake.report(ingest_report.FOLDER) / "index.html", ingest_report.index(lake))
    if not passed:
        raise ValidationFailed(f"bronze breaks {len(failed)} expectation(s): {'; '.join(failed[:5])}; "
                               f"see {report}")
    return {"manifest": str(path), "report": str(report), "index": str(index),
            "expectations": manifest.outputs["expectations"], "rows_checked": manifest.outputs["rows_checked"]}


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load()), file=sys.stdout)
