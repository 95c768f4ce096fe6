"""The consent review page: the ledger's verification, consent by purpose, source and channel, grants
and withdrawals over time, consents ending soon, the fusion runs and the consent they relied on,
and the purges (``reports/consent/as_of=<date>.html``)."""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from mydata.config import PURPOSES
from mydata.lake import Lake
from render import html
from schemas.codes import CONSENT_SOURCES

EXPIRY_WINDOWS = (30, 60, 90)


def report_path(lake: Lake, as_of: date) -> Path:
    return lake.report("consent") / f"as_of={as_of.isoformat()}.html"


def _consent_sections(figures: dict) -> list[str]:
    by_state, monthly, expiring = figures["by_state"], figures["monthly"], figures["expiring"]
    rows = [(html.code(p), s, by_state.get((p, s, "valid"), 0), by_state.get((p, s, "withdrawn"), 0),
             by_state.get((p, s, "expired"), 0)) for p in PURPOSES for s in CONSENT_SOURCES]
    most = max((max(r["grants"], r["withdraws"]) for r in monthly), default=0)
    return [
        html.section("Consent by purpose and source", html.table(
            ("purpose", "source", "valid", "withdrawn", "expired"), rows),
            note="Subjects per state of their latest event at or before the as-of date."),
        html.section("Valid consent by channel", html.table(
            ("purpose", "channel", "subjects"),
            [(html.code(r["purpose"]), r["channel"], r["n"]) for r in figures["channels"]])),
        html.section("Grants and withdrawals over time", html.table(
            ("month", "grants", "", "renewals", "withdrawals", ""),
            [(r["month"], r["grants"], html.bar(r["grants"], most), r["renews"], r["withdraws"],
              html.bar(r["withdraws"], most, colour="#b00020")) for r in monthly])),
        html.section("Consents ending soon", html.table(
            ("purpose", *[f"within {n} days" for n in EXPIRY_WINDOWS]),
            [(html.code(p), *[int(expiring[p][f"d{n}"]) if p in expiring else 0 for n in EXPIRY_WINDOWS])
             for p in PURPOSES]), note="Valid (subject, source) consents whose end date falls in the window."),
    ]


def _hours(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f} h"


def _withdrawal_section(by_purpose: dict[str, dict]) -> str:
    rows = [(html.code(p), w["withdrawn_subjects"], w["sla"]["purged"], _hours(w["sla"]["median_hours"]),
             _hours(w["sla"]["p95_hours"]), _hours(w["sla"]["max_hours"]), w["sla"]["pending"],
             _hours(w["sla"]["longest_pending_hours"]),
             html.status(not w["violations"], "none", f"{len(w['violations'])} USE(S)"),
             w["unrecorded_fusion_runs"] or "")
            for p, w in by_purpose.items()]
    said = [line for w in by_purpose.values() for line in w["violations"]]
    return html.section("Withdrawals honoured", html.table(
        ("purpose", "withdrawn now", "purged", "median to purge", "p95", "max", "waiting now", "longest waiting",
         "fusion runs that used a withdrawn subject", "runs without a record of use (not checked)"), rows),
        html.table(("use after withdrawal",), [(line,) for line in said]) if said else "",
        note="Hours from each withdrawal (its event time) to the purge that removed the subject from every "
             "derived table; subjects whose rows are still in a derived table now are waiting. The check reads "
             "every fusion run's record of use against the consent ledger at the run's as-of moment.")


def write_page(lake: Lake, as_of: date, verification: Any, consents: dict | None, runs: list[dict],
               audits: list[dict], withdrawals: dict[str, dict]) -> Path:
    """The page of ``jobs.consent_review.write_report``'s figures."""
    facts = {"as of": as_of.isoformat(), "ledger events": f"{verification.events:,}",
             "ledger": html.status(verification.ok, "verifies", "BROKEN")}
    sections = [html.section("Ledger", html.table(("", ""), [
        ("events", verification.events), ("head hash", html.code(verification.head.hash)),
        ("verification", html.status(verification.ok, "every event's hash and link verify, and the head "
                                     "is the one the last append recorded", str(verification.problem)))]))]
    if consents is not None:
        sections += _consent_sections(consents)
    sections.append(html.section("Fusion runs and the consent they relied on", html.table(
        ("run", "status", "purpose", "as of", "snapshot", "ledger events", "ledger head", "subjects used"),
        [(html.code(m["run_id"]), html.status(m["status"] == "succeeded", m["status"], m["status"]),
          m["parameters"].get("purpose"), m["parameters"].get("as_of"),
          html.code(m["inputs"].get("consent_snapshot", {}).get("id", "")),
          m["inputs"].get("consent_snapshot", {}).get("ledger_head", {}).get("events", ""),
          html.code(m["inputs"].get("consent_snapshot", {}).get("ledger_head", {}).get("hash", "")[:16] + "…"),
          m["outputs"].get("subjects_fused", "")) for m in runs])))
    sections.append(_withdrawal_section(withdrawals))
    sections.append(html.section("Purges", html.table(
        ("run", "at", "purpose", "withdrawn subjects", "pseudonyms purged", "rows removed", "tables"),
        [(html.code(a["run_id"]), a["at"], a["purpose"], a["withdrawn_subjects"], len(a["pseudonyms"]),
          sum(a["rows_removed"].values()), ", ".join(sorted({k.rsplit("/", 1)[0] for k in a["rows_removed"]})))
         for a in audits]), note="Each purge's pseudonyms are listed in consent/purge_audit.jsonl."))
    return html.write_page(report_path(lake, as_of), html.page(f"Consent review as of {as_of.isoformat()}",
                                                                facts, sections))
