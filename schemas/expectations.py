"""Great Expectations suites of the bronze tables, compiled from the same rules as ingest's checks.

Ingest applies the rules of ``schemas.bronze`` row by row (a failing row goes to quarantine); the
suite states them again for a whole table, in Great Expectations' terms, so that an independent
engine checks what was published. Each expectation carries the ingest rule it restates in
``meta["rule"]``, so a failed expectation names the same rule a quarantine row would.
"""
from __future__ import annotations

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no network, no usage statistics

import great_expectations as gx  # noqa: E402
import great_expectations.expectations as gxe  # noqa: E402

from schemas.bronze import TableSpec  # noqa: E402
from schemas.landing import LINK_KEY_PATTERN  # noqa: E402

PARTITION = "dt"


def expectation_suite(spec: TableSpec) -> gx.ExpectationSuite:
    """The table's suite: its columns in order, required values, code sets, bounds and natural key."""
    expectations: list[gxe.Expectation] = [
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=[*spec.column_names, PARTITION],
                                                 meta={"rule": "schema.columns"}),
    ]
    for column in spec.columns:
        name = column.name
        if column.required:
            expectations.append(gxe.ExpectColumnValuesToNotBeNull(
                column=name, meta={"rule": f"{name}.not_null"}))
        if column.kind == "link_key":
            expectations.append(gxe.ExpectColumnValuesToMatchRegex(
                column=name, regex=LINK_KEY_PATTERN.pattern, meta={"rule": f"{name}.format"}))
        if column.allowed is not None and column.kind != "sources":
            expectations.append(gxe.ExpectColumnValuesToBeInSet(
                column=name, value_set=sorted(column.allowed), meta={"rule": f"{name}.in_set"}))
        if column.max_length is not None:
            expectations.append(gxe.ExpectColumnValueLengthsToBeBetween(
                column=name, max_value=column.max_length, meta={"rule": f"{name}.length"}))
        if column.low is not None or column.high is not None:
            expectations.append(gxe.ExpectColumnValuesToBeBetween(
                column=name, min_value=column.low, max_value=column.high,
                meta={"rule": f"{name}.range"}))
    # natural keys are unique within a delivery (accounts, for one, are listed again each month)
    expectations.append(gxe.ExpectCompoundColumnsToBeUnique(
        column_list=[*spec.natural_key, PARTITION], meta={"rule": "natural_key.unique"}))
    return gx.ExpectationSuite(name=f"bronze.{spec.name}", expectations=expectations)
