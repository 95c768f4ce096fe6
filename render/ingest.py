"""The ingest run's page (reconciliation, quarantine gate and rules, every expectation) and the
index of runs: ``reports/ingest/<run id>.html`` and ``reports/ingest/index.html``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mydata.lake import Lake
from mydata.manifest import reconciled
from render import html

FOLDER = "ingest"


def write_report(lake: Lake, ingest: dict, validations: list[Any]) -> Path:
    """The ingest run's page, ``reports/ingest/<run id>.html`` (also for a run its gate stopped)."""
    return html.write_page(lake.report(FOLDER) / f"{ingest['run_id']}.html",
                           page(ingest, validations))


def gate_section(ingest: dict) -> str:
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


def page(ingest: dict, validations: list[Any]) -> str:
    recon = ingest["outputs"]["reconciliation"]
    tables = ingest["outputs"]["tables"]
    examples = ingest["outputs"].get("rule_examples", {})
    passed = bool(validations) and all(v.success for v in validations)
    totals = reconciled(ingest)
    total = {key: totals.get(key, 0) for key in ("records_read", "rows_accepted", "rows_quarantined",
                                                  "lines_quarantined", "failed_collections", "duplicates")}
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
        gate_section(ingest),
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
    if problems := ingest.get("outputs", {}).get("landing_problems"):
        sections.insert(0, html.section("Under landing/, not deliveries (skipped, not read)", html.table(
            ["what and why"], [[p] for p in problems]),
            note="MYDATA_SKIP_BAD_LANDING let the run go on without them; without it the run fails on them."))
    return html.page("Ingest run report", facts, sections)


def index(lake: Lake) -> str:
    rows = []
    for path in sorted((lake.manifests / "validate").glob("*.json"), reverse=True):
        doc = json.loads(path.read_text(encoding="utf-8"))
        out = doc["outputs"]
        report = Path(out.get("report", ""))
        rows.append([html.link(report.name, out["ingest_run"]),
                     ", ".join(out.get("delivery_dates", [])), doc["started_at"][:19].replace("T", " "),
                     out.get("rows_checked", 0), html.status(doc["status"] == "succeeded", "passed", "FAILED")])
    return html.page("Ingest runs", {"runs": len(rows)}, [html.section("Runs, newest first", html.table(
        ["ingest run", "delivery dates", "validated (UTC)", "rows checked", "expectations"], rows))])
