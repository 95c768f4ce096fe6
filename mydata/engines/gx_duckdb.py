"""Great Expectations' SQL data source on DuckDB (GX 1.24, duckdb-engine 0.17): two things GX lacks.

- GX closes its SQLAlchemy connection before fetching a query's rows; DuckDB's results die with
  their connection, so every metric came back empty (the ``IndexError`` on ``table.row_count``).
  Rows are fetched while the connection is open.
- GX knows no regular expressions for the ``duckdb`` dialect; DuckDB's are ``regexp_matches``.

``enable()`` applies both, once; the parity suite checks GX on DuckDB against GX on Spark.
"""
from __future__ import annotations

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
