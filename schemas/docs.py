"""The bronze contract as a page people read: every table's columns, where each comes from in the
landing form, its type, whether it is required, and the rules it meets. Rendered from the
declarations in ``schemas.bronze``, never written by hand: ``python -m schemas.docs > docs/contract.md``
(a test fails when the committed page differs from the declarations).
"""
from __future__ import annotations

import sys

from schemas.bronze import TABLES, Column, TableSpec
from schemas.landing import MYDATA_SOURCES

_ORIGINS = {"envelope": "envelope", "request": "request", "response": "response", "item": "list item",
            "position": "list position", "csv": "CSV column"}


def _requirement(column: Column) -> str:
    if column.required:
        return "required"
    if column.required_when is not None:
        other, values = column.required_when
        return f"optional; required when {other} is {', '.join(sorted(values))}"
    return "optional (null when absent)"


def _rules(column: Column) -> str:
    rules = []
    if column.allowed is not None:
        codes = sorted(column.allowed)
        rules.append("one of " + (", ".join(codes) if len(codes) <= 12 else f"{codes[0]}…{codes[-1]} ({len(codes)} codes)"))
    if column.low is not None or column.high is not None:
        rules.append(f"within [{'' if column.low is None else column.low}, {'' if column.high is None else column.high}]")
    if column.max_length is not None:
        rules.append(f"at most {column.max_length} characters")
    if column.kind == "signed":
        rules.append("signed")
    return "; ".join(rules)


def render_table(spec: TableSpec) -> str:
    rows = [f"| `{c.name}` | {_ORIGINS[c.origin]} | {c.kind} ({c.spark_type}) | {_requirement(c)} | {_rules(c)} |"
            for c in spec.columns]
    origin = f"`{spec.api}` responses" if spec.api else f"`{spec.source}` deliveries"
    timing = {"event": f" An **event** table: a row counts by its own time, `{spec.time_column}`.",
              "state": f" A **state** table: a row is what the holder reported about an item "
                       f"({', '.join(f'`{c}`' for c in spec.item)}) when it was collected; the newest collection "
                       "known at the as-of date is the state."}.get(spec.timing or "", "")
    return "\n".join([f"### `{spec.name}`", "", f"{spec.description.capitalize()}, from {origin}. Natural key: "
                      f"{', '.join(f'`{k}`' for k in spec.natural_key)} (unique within a delivery).{timing}", "",
                      "| column | from | kind (type) | required | rules |", "|---|---|---|---|---|", *rows, ""])


def render_contract() -> str:
    mydata = [t for t in TABLES.values() if t.source in MYDATA_SOURCES]
    others = [t for t in TABLES.values() if t.source not in MYDATA_SOURCES]
    return "\n".join([
        "# The bronze contract", "",
        "Generated from `schemas/bronze.py` by `python -m schemas.docs`; do not edit by hand. What holders",
        "deliver is `../shared/LANDING.md`; this page is how ingest reads it. A row that breaks a rule is",
        "quarantined with the rule and a reason; an optional value that is absent or empty is null in bronze.",
        "Every line must be valid UTF-8. Which holders (`org_code`) are accepted is configuration:",
        "`mydata holders`.", "",
        "## MyData API responses", "", *[render_table(t) for t in mydata],
        "## Other deliveries", "", *[render_table(t) for t in others]])


if __name__ == "__main__":
    sys.stdout.write(render_contract())
