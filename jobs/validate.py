"""Validate an ingest run's bronze partitions with Great Expectations, and report the run in HTML.

Ingest checked every row against the rules of ``schemas.bronze`` and quarantined failures; this
job checks what it published, table by table, with the suites of ``schemas.expectations`` (an
independent engine over the same rules), run inside whichever engine the run uses
(``Engine.validate``). Any failed expectation fails the run: downstream jobs must not build on
bronze that breaks its contract. Either way the run gets a page,
``reports/ingest/<ingest run id>.html`` (reconciliation, quarantine by rule, every expectation),
and ``reports/ingest/index.html`` lists the runs.
"""
from __future__ import annotations

import json
import sys
from datetime import date

from jobs.stage import StageResult, StageRun, stage_run
from mydata.config import Settings
from mydata.errors import MissingInput, StageFailed
from mydata.lake import Lake
from mydata.lock import writes_lake
from mydata.manifest import latest_manifest
from mydata.validation import Written
from render import html
from render import ingest as ingest_report


class ValidationFailed(StageFailed):
    """Published bronze breaks an expectation of its suite."""


def written(lake: Lake, ingest: dict) -> list[Written]:
    """Every bronze table an ingest run wrote, with the rows it accepted per delivery date."""
    return [Written(table, lake.bronze_table(table),
                    {date.fromisoformat(dt): counts["accepted"] for dt, counts in by_dt.items()})
            for table, by_dt in sorted(ingest["outputs"]["tables"].items())]


@writes_lake("validate")
def run(settings: Settings, spark=None, ingest_run: str | None = None) -> StageResult:
    """Validate the latest ingest run (or ``ingest_run``) on the configured engine and write its report."""
    lake = settings.lake
    ingest = (json.loads(lake.manifest("ingest", ingest_run).read_text(encoding="utf-8"))
              if ingest_run else latest_manifest(lake, "ingest"))
    if ingest is None:
        raise MissingInput(f"no ingest run to validate under {lake.manifests / 'ingest'}")
    if ingest["status"] != "succeeded":  # it published nothing: there is no bronze of it to check
        raise ValidationFailed(f"ingest run {ingest['run_id']} {ingest['status']} and published nothing "
                               f"({ingest.get('error') or 'no error recorded'}); fix it and ingest again")
    with stage_run(settings, "validate", spark=spark, ingest_run=ingest["run_id"], engine=settings.engine) as run:
        figures = _validate(run, ingest)
    return run.result(**figures)


def _validate(run: StageRun, ingest: dict) -> dict:
    """The engine's checks of what the ingest run wrote, its report, and the gate."""
    lake, manifest = run.lake, run.manifest
    validations = run.engine.validate(written(lake, ingest))
    run.close_engine()
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
    manifest.finish(lake, "succeeded" if passed else "failed")
    index = html.write_page(lake.report(ingest_report.FOLDER) / "index.html", ingest_report.index(lake))
    if not passed:
        raise ValidationFailed(f"bronze breaks {len(failed)} expectation(s): {'; '.join(failed[:5])}; "
                               f"see {report}")
    return {"report": str(report), "index": str(index),
            "expectations": manifest.outputs["expectations"], "rows_checked": manifest.outputs["rows_checked"]}


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load()), file=sys.stdout)
