"""Ingest's accounting: what a source's deliveries became (lines by outcome, rows by table and
rule), the quarantine gate over it, the per-delivery reconciliation, and the manifest's record."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from jobs.ingest.sql import FAILED_EXAMPLE, FAILED_RULE, LINE_TABLE
from mydata import storage
from mydata.manifest import RunManifest
from schemas.landing import MYDATA_SOURCES

# -- the run -------------------------------------------------------------------------------------

@dataclass
class SourceResult:
    """What one source's deliveries became so far, and the staging that holds it."""

    lines: dict[str, dict[str, int]] = field(default_factory=dict)  # dt -> status -> count
    tables: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # table -> dt -> accepted/quarantined
    rules: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # table -> dt -> rule -> count
    examples: dict[str, dict[str, str]] = field(default_factory=dict)  # table -> rule -> a reason, keys hidden
    holders: dict[tuple[str, str], int] = field(default_factory=dict)  # (dt, org_code) -> lines of a MyData source
    staged: list[storage.Staged] = field(default_factory=list)

    def count_lines(self, rows: list[dict]) -> None:
        for row in rows:
            by_status = self.lines.setdefault(str(row["dt"]), {})
            by_status[row["status"]] = by_status.get(row["status"], 0) + int(row["count"])
            if row["org_code"] is not None:
                key = (str(row["dt"]), row["org_code"])
                self.holders[key] = self.holders.get(key, 0) + int(row["count"])

    def count_rows(self, tables: list[str], dts: list[date], accepted: list[dict], rules: list[dict]) -> None:
        for name in tables:
            self.tables.setdefault(name, {}).update({str(dt): {"accepted": 0, "quarantined": 0} for dt in dts})
        for row in accepted:
            self.tables[row["table"]][str(row["dt"])]["accepted"] = int(row["count"])
        for row in rules:
            table, dt, count = row["table"], str(row["dt"]), int(row["count"])
            by_dt = self.rules.setdefault(table, {}).setdefault(dt, {})
            by_dt[row["rule"]] = by_dt.get(row["rule"], 0) + count
            shown = self.examples.setdefault(table, {})  # the least reason, whichever order rows come in
            shown[row["rule"]] = min(shown.get(row["rule"], row["example"]), row["example"])
            if table in self.tables:
                self.tables[table][dt]["quarantined"] += count


@dataclass(frozen=True)
class GateCheck:
    """One (table, delivery)'s quarantined share against the threshold."""

    table: str
    dt: str
    rows: int
    quarantined: int
    top_rules: list[tuple[str, int]]
    example: str
    threshold: float

    @property
    def share(self) -> float:
        return self.quarantined / self.rows if self.rows else 0.0

    @property
    def passed(self) -> bool:
        return self.share <= self.threshold

    def __str__(self) -> str:
        rules = ", ".join(f"{rule} {count:,}" for rule, count in self.top_rules)
        what = "lines rejected or failed" if self.table.endswith("_lines") else "rows quarantined"
        return (f"{self.table} dt={self.dt}: {self.share:.1%} of {self.rows:,} {what} "
                f"(threshold {self.threshold:.1%}); top rules: {rules}; e.g. {self.example}")

    def as_dict(self) -> dict:
        return {"table": self.table, "dt": self.dt, "rows": self.rows, "quarantined": self.quarantined,
                "share": round(self.share, 6), "passed": self.passed,
                "top_rules": dict(self.top_rules), "example": self.example}


def quarantine_gate(source: str, result: SourceResult, threshold: float) -> list[GateCheck]:
    """Every table and delivery of a source: rows quarantined over rows read; for the
    ``<source>_lines`` table, lines rejected or failed collections over the lines read (a holder
    whose collections all fail has gone bad as a whole too)."""
    checks = []
    line_table = LINE_TABLE.format(source=source)
    sizes = {table: {dt: c["accepted"] + c["quarantined"] for dt, c in by_dt.items()}
             for table, by_dt in result.tables.items()}
    if source in MYDATA_SOURCES:
        sizes[line_table] = {dt: sum(statuses.values()) for dt, statuses in result.lines.items()}
    for table, by_dt in sorted(sizes.items()):
        for dt, rows in sorted(by_dt.items()):
            rules = dict(result.rules.get(table, {}).get(dt, {}))
            if table == line_table and result.lines[dt].get("failed"):
                rules[FAILED_RULE] = result.lines[dt]["failed"]
            top = sorted(rules.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
            example = (FAILED_EXAMPLE if top and top[0][0] == FAILED_RULE
                       else result.examples.get(table, {}).get(top[0][0], "") if top else "")
            checks.append(GateCheck(table, dt, rows, sum(rules.values()), top, example, threshold))
    return checks


def reconcile(source: str, result: SourceResult) -> dict[str, dict]:
    """Per delivery: lines read against their outcomes, rows against accepted + quarantined."""
    out = {}
    for dt, statuses in sorted(result.lines.items()):
        read = sum(statuses.values())
        rows = {t: by_dt.get(dt, {"accepted": 0, "quarantined": 0}) for t, by_dt in result.tables.items()}
        accepted = sum(r["accepted"] for r in rows.values())
        quarantined = sum(r["quarantined"] for r in rows.values())
        entry = {"records_read": read, "rows_accepted": accepted, "rows_quarantined": quarantined}
        if source in MYDATA_SOURCES:
            entry.update({"lines_parsed": statuses.get("ok", 0),
                          "lines_quarantined": statuses.get("rejected", 0),
                          "failed_collections": statuses.get("failed", 0),
                          "duplicates": statuses.get("duplicate", 0)})
            entry["balanced"] = read == sum(entry[k] for k in ("lines_parsed", "lines_quarantined",
                                                               "failed_collections", "duplicates"))
        else:
            entry["balanced"] = read == accepted + quarantined
        out[dt] = entry
    return out


def record(manifest: RunManifest, sources: list, results: list, threshold: float) -> None:
    """Reconciliation, tables, rules and the quarantine gate of every source into the manifest."""
    reconciliation, tables, rules, examples, gate = {}, {}, {}, {}, []
    for (source, _), result in zip(sources, results):
        reconciliation[source] = reconcile(source, result)
        tables.update(result.tables)
        for table, by_dt in result.rules.items():
            merged = rules.setdefault(table, {})
            for counts in by_dt.values():
                for rule, count in counts.items():
                    merged[rule] = merged.get(rule, 0) + count
        examples.update(result.examples)
        gate += quarantine_gate(source, result, threshold)
    manifest.inputs["records_read"] = {s: sum(e["records_read"] for e in by_dt.values())
                                       for s, by_dt in reconciliation.items()}
    manifest.outputs = {"reconciliation": reconciliation, "tables": tables, "rule_examples": examples,
                        "quarantine_gate": {"threshold": threshold, "checks": [c.as_dict() for c in gate]},
                        "gate_failures": [str(c) for c in gate if not c.passed]}
    manifest.quarantined = rules
