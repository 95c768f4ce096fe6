"""The subject trace page (``reports/subjects/<trace>.html``): the verdict first, then consent,
what is held, who used it, what was derived, and what was purged. No link key, no pseudonym."""
from __future__ import annotations

from pathlib import Path

from render import html


def _when(value: object) -> str:
    return str(value)[:16].replace("T", " ") if value is not None else "open"


def write_page(path: Path, trace: dict) -> Path:
    consent, verdict = trace["consent"], trace["verdict"]
    held_now = html.status(not verdict["attention"], "in derived tables" if verdict["in_derived_tables"]
                           else "in no derived table", "IN DERIVED TABLES")
    sections = [
        html.section("Verdict", html.table(("now", "why"), [(held_now, verdict["why"])])),
        html.section("Consent events, in chain order", html.table(
            ("chain position", "event", "time", "type", "purpose", "sources", "until", "channel"),
            [(e["seq"], e["event_id"], _when(e["event_time"]), e["event_type"], e["purpose"], ", ".join(e["sources"]),
              e["end_date"], e["channel"]) for e in consent["events"]])),
        html.section("Consent over time, per purpose and source", html.table(
            ("purpose", "source", "state", "since", "until", "by event"),
            [(p["purpose"], p["source"], p["state"], _when(p["since"]), _when(p["until"]), p["event_id"])
             for p in consent["timeline"]])),
        html.section(f"Consent as of {trace['as_of'][:10]}", html.table(
            ("purpose", "source", "state", "since", "until"),
            [(s["purpose"], s["source"], s["state"], _when(s["since"]), s["until"]) for s in consent["states"]])),
        html.section("Held in bronze and quarantine (counts only)", html.table(
            ("zone", "table", "rows", "first delivery", "last delivery", "deliveries"),
            [(h["zone"], h["tbl"], h["n"], h["first"], h["last"], h["deliveries"]) for h in trace["held"]])),
        html.section("Purpose pseudonyms", html.table(
            ("purpose", "key versions"), [(p["purpose"], ", ".join(f"v{v}" for v in p["key_versions"]))
                                          for p in trace["pseudonyms"]]),
            note="Computed from the purpose keys for this trace only, to find the subject in derived tables; "
                 "their values are kept nowhere, so no page or file links them to the link key."),
        html.section("Fusion runs that used the subject", html.table(
            ("run", "purpose", "as of", "consent snapshot", "ledger events"),
            [(r["run_id"], r["purpose"], r["as_of"], r["consent_snapshot"], r["ledger_events"])
             for r in trace["fusion_runs"]]),
            note=(f"{trace['unrecorded_fusion_runs']} older fusion run(s) kept no record of use: whether they used "
                  "the subject cannot be told." if trace.get("unrecorded_fusion_runs") else None)),
        html.section("Derived tables holding the subject now", html.table(
            ("purpose", "zone", "table", "partition", "rows"),
            [(d["purpose"], d["zone"], d["table"], d["partition"], d["rows"]) for d in trace["derived"]])),
        html.section("Segments and models", html.table(
            ("purpose", "as of", "segment", "label", "model"),
            [(s["purpose"], s["as_of"], s["segment"], s["segment_label"], s["model_version"]) for s in trace["segments"]]),
            html.table(("purpose", "model trained with the subject", "on snapshot"),
                       [(m["purpose"], m["version"], m["snapshot"]) for m in trace["models"]])),
        html.section("Purges that removed the subject", html.table(
            ("run", "at", "purpose"), [(p["run_id"], p["at"], p["purpose"]) for p in trace["purges"]])),
    ]
    facts = {"trace": trace["trace_id"], "as of": trace["as_of"][:16], "purposes": ", ".join(trace["purposes"])}
    return html.write_page(path, html.page("Subject trace", facts, sections))
