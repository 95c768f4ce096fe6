"""Great Expectations over published bronze, whichever engine holds it: the outcomes, one
table's suite run, and batches combined. Each engine runs the suites its own way
(``mydata.engines.gx_spark``, ``mydata.engines.gx_duckdb``) behind ``Engine.validate``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from schemas.bronze import TABLES
from schemas.expectations import expectation_suite, gx


@dataclass(frozen=True)
class Written:
    """One bronze table a run wrote: its folder and the rows it accepted per delivery date."""

    table: str
    path: Path
    accepted: dict[date, int]


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


def new_context():
    """One ephemeral Great Expectations context, no progress bars."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _is_row_check(expectation_type: str) -> bool:
    """Map expectations judge every row: passing one means no row broke it."""
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )
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


def combined(batches: list[list[ExpectationOutcome]]) -> list[ExpectationOutcome]:
    """A table's outcomes over its batches: met when met in every batch, counts added up."""
    def total(values: list[int | None]) -> int | None:
        return None if any(v is None for v in values) else sum(values)
    return [ExpectationOutcome(same[0].rule, same[0].expectation, same[0].column, all(o.success for o in same),
                               total([o.checked for o in same]), total([o.unexpected for o in same]))
            for same in zip(*batches)]


