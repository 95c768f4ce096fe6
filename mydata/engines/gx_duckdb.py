"""Great Expectations' SQL data source on DuckDB (GX 1.24, duckdb-engine 0.17), and two things GX lacks.

- GX closes its SQLAlchemy connection before fetching a query's rows; DuckDB's results die with
  their connection, so every metric came back empty (the ``IndexError`` on ``table.row_count``).
  Rows are fetched while the connection is open.
- GX knows no regular expressions for the ``duckdb`` dialect; DuckDB's are ``regexp_matches``.

``enable()`` applies both, once; the parity suite checks GX on DuckDB against GX on Spark.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from mydata import progress, storage
from mydata.validation import ExpectationOutcome, TableValidation, Written, combined, new_context, run_suite
from schemas.bronze import TABLES
from schemas.expectations import PARTITION
from schemas.sql import empty_table

if TYPE_CHECKING:
    from mydata.engines.duckdb import DuckDBEngine

_enabled = False


def enable() -> None:
    global _enabled
    if _enabled:
        return
    import sqlalchemy as sa
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine_module
    from great_expectations.expectations.metrics.column_map_metrics import column_values_match_regex as regex_module

    def execute_query(self, query):
        with self.get_connection() as connection:
            return self._execute_query_with_recovery(connection, query).freeze()()  # buffered before closing

    gx_regex = regex_module.get_dialect_regex_expression

    def regex_expression(column, regex, dialect, positive=True):
        if getattr(getattr(dialect, "dialect", dialect), "name", None) == "duckdb":
            matches = sa.func.regexp_matches(column, sa.literal(regex))
            return matches if positive else sa.not_(matches)
        return gx_regex(column, regex, dialect, positive)

    engine_module.SqlAlchemyExecutionEngine.execute_query = execute_query
    regex_module.get_dialect_regex_expression = regex_expression
    _enabled = True


def validate(engine: DuckDBEngine, written: list[Written], rows_at_once: int) -> list[TableValidation]:
    """The suites through Great Expectations' SQL data source on DuckDB: every table written, over
    the delivery dates it was written for, as a view in a database file under the spill folder that
    GX opens with its own connection (the engine's memory limit and spill folder); the checks run
    inside DuckDB, no row is handed to Python. A table is checked in batches of whole delivery
    dates of at most ``rows_at_once`` rows: uniqueness is per delivery, so the verdicts are those
    of the whole run."""
    import duckdb

    enable()
    database = Path(engine.config["temp_directory"]) / f"validation-{uuid.uuid4().hex[:12]}.duckdb"  # one per run
    database.parent.mkdir(parents=True, exist_ok=True)
    database.unlink(missing_ok=True)
    checked: dict[str, list[tuple[str, str]]] = {}  # table -> (view, its query) per batch of dates
    for table in written:
        scan = engine.parquet_sql(table.path) or empty_table(engine.dialect, TABLES[table.table])
        checked[table.table] = [(f"{table.table}_{i}", f"SELECT * FROM ({scan}) t WHERE {PARTITION} IN "
                                 f"({engine.dialect.dates(dts)})")
                                for i, dts in enumerate(storage.date_batches(table.accepted, rows_at_once))]
    with duckdb.connect(str(database), config=engine.config) as con:  # as GX will open it
        for view, query in (batch for batches in checked.values() for batch in batches):
            con.execute(f"CREATE VIEW {view} AS {query}")
    context = new_context()
    source = context.data_sources.add_sql("bronze", connection_string=f"duckdb:///{database}",
                                          kwargs={"connect_args": {"config": engine.config}})

    def check(table: str, view: str, query: str) -> list[ExpectationOutcome]:
        batch = source.add_table_asset(view, table_name=view).add_batch_definition_whole_table("all")
        return run_suite(table, context, batch.get_batch,
                         lambda: engine.rows(f"SELECT count(*) AS n FROM ({query}) c")[0]["n"])
    validations = []
    for table in written:
        with progress.step("validate", table.table) as shown:
            outcomes = combined([check(table.table, view, query) for view, query in checked[table.table]])
            rows = next((o.checked for o in outcomes if o.checked is not None), sum(table.accepted.values()))
            shown.advance(rows)
        validations.append(TableValidation(table.table, [d.isoformat() for d in sorted(table.accepted)], rows, outcomes))
    # GX keeps its engines (and their DuckDB connections) for the life of the process otherwise
    source.get_execution_engine().engine.dispose()
    source.get_engine().dispose()
    database.unlink(missing_ok=True)
    return validations
