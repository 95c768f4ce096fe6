"""The front page, ``reports/index.html``: every run's status, key figures, report and manifest,
newest first, grouped by who reads them (data engineering, data science, compliance).

It is built from the run manifests alone, so it is rebuilt whenever a run finishes
(``RunManifest.finish``) and always says what the lake holds; links are relative, so the reports
folder can be copied or served as it is.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mydata.lake import Lake
from mydata.manifest import ingest_rows, runs
from render import html

#: runs shown per shelf; older ones stay in their manifests
SHOWN = 10


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.2%}" if whole else "–"


def _ingest(m: dict) -> str:
    accepted, quarantined = ingest_rows(m)
    return (f"{accepted:,} rows accepted, {quarantined:,} quarantined ({_share(quarantined, accepted + quarantined)}) "
            f"from {len(m['inputs'].get('deliveries', []))} deliveries")


def _quarantine(m: dict) -> str:
    rules = sorted(((n, f"{table}: {rule}") for table, by_rule in m.get("quarantined", {}).items()
                    for rule, n in by_rule.items()), reverse=True)
    return "; ".join(f"{what} {n:,}" for n, what in rules[:3]) or "nothing quarantined"


def _validate(m: dict) -> str:
    out = m["outputs"]
    failed = f", {len(out['failed'])} failed" if out.get("failed") else ""
    return f"{out.get('expectations', 0):,} expectations over {out.get('rows_checked', 0):,} bronze rows{failed}"


def _model(m: dict) -> str:
    out, metrics = m["outputs"], m["outputs"].get("metrics", {})
    truth = f", ARI vs truth {metrics['ari_vs_latent_types']:.3f}" if "ari_vs_latent_types" in metrics else ""
    return (f"{out['version']}{' (promoted)' if out.get('promoted') else ''}: k={metrics.get('k')}, silhouette "
            f"{metrics.get('silhouette', 0):.3f}, stability {metrics.get('stability_ari', 0):.3f}{truth}")


def _drift(m: dict) -> str:
    out = m["outputs"]
    verdict = f"RETRAIN: {', '.join(out['drifted'])}" if out.get("retrain") else "no retraining needed"
    return f"{m['parameters'].get('baseline')} → {m['parameters'].get('as_of')}: {verdict}"


def _fuse(m: dict) -> str:
    out = m["outputs"]
    left = sum(v for k, v in out.get("linkage", {}).items() if k != "fused")
    return f"{out.get('subjects_fused', 0):,} subjects fused, {left:,} left out"


def _release(m: dict) -> str:
    out = m["outputs"]
    if "published" not in out:
        return f"k={m['parameters'].get('k')} not reached: nothing published"
    blank = out.get("blank_features", {})
    return (f"k={m['parameters'].get('k')} at {out['level']}: {out['published']:,} published, "
            f"{out['suppressed']:,} suppressed, smallest group {out.get('smallest_group')}; "
            + (f"{len(blank)} BLANK FEATURE(S): {', '.join(blank)}" if blank else "no blank feature"))


def _review(m: dict) -> str:
    out = m["outputs"]
    ledger = "ledger verifies" if out.get("ledger_verifies") else "LEDGER DOES NOT VERIFY"
    honoured = out.get("withdrawals", {}).values()
    used = sum(w["uses_after_withdrawal"] for w in honoured)
    waiting = sum(w["sla"]["pending"] for w in honoured)
    return (f"{ledger} ({m['inputs'].get('ledger_events', 0):,} events), {m['inputs'].get('fusion_runs', 0)} "
            f"fusion runs, {m['inputs'].get('purges', 0)} purges; {waiting} withdrawal(s) waiting, "
            + (f"{used} USE(S) AFTER WITHDRAWAL" if used else "no use after withdrawal"))


def _purge(m: dict) -> str:
    out = m["outputs"]
    return (f"{m['inputs'].get('withdrawn_subjects', 0):,} withdrawn subjects, {out.get('pseudonyms_purged', 0):,} "
            f"purged, {out.get('rows_removed_total', 0):,} rows removed")


@dataclass(frozen=True)
class Shelf:
    """One kind of run on the front page."""

    role: str
    title: str
    job: str
    figures: Callable[[dict], str]
    #: the run's page (or file) to link, if it has one, and what the link says
    report: Callable[[Lake, dict], str | None] = lambda lake, m: m["outputs"].get("report")
    report_name: str = "report"


ROLES = ("Data engineering", "Data science", "Compliance")
SHELVES = (
    Shelf("Data engineering", "Deliveries (landing inventory)", "landing",
          lambda m: f"{m['inputs'].get('deliveries_complete', 0)} complete deliveries, "
                    f"{m['inputs'].get('deliveries_waiting', 0)} waiting, "
                    f"{m['outputs'].get('total_records', 0):,} records", lambda lake, m: None),
    Shelf("Data engineering", "Collections from the holders' APIs", "collect",
          lambda m: f"{m['parameters'].get('source')} on {m['parameters'].get('dt')}: "
                    f"{len(m['outputs'].get('holders', {}))} holder(s), "
                    f"{sum(h.get('calls', 0) for h in m['outputs'].get('holders', {}).values()):,} calls, "
                    f"{sum(sum(h.get('failures', {}).values()) for h in m['outputs'].get('holders', {}).values()):,} "
                    f"failed collections" + ("" if m["outputs"].get("complete") else ", NOT complete")),
    Shelf("Data engineering", "Ingest runs", "ingest", _ingest,
          lambda lake, m: str(lake.report("ingest") / f"{m['run_id']}.html")),
    Shelf("Data engineering", "Quarantine, by ingest run (top rules)", "ingest", _quarantine,
          lambda lake, m: str(lake.report("ingest") / f"{m['run_id']}.html")),
    Shelf("Data engineering", "Validation (Great Expectations)", "validate", _validate),
    Shelf("Data engineering", "Consent ledger appends", "consent",
          lambda m: f"{sum(m['outputs'].get('appended', {}).values()):,} events appended; ledger of "
                    f"{m['outputs'].get('ledger_head', {}).get('events', 0):,} events", lambda lake, m: None),
    Shelf("Data science", "Feature releases and their catalog", "privacy", _release,
          lambda lake, m: m["outputs"].get("catalog"), "catalog"),
    Shelf("Data science", "Feature candidates", "features",
          lambda m: f"{m['outputs'].get('features', 0)} features for {m['outputs'].get('subjects', 0):,} subjects",
          lambda lake, m: None),
    Shelf("Data science", "Models trained (profiles)", "train", _model),
    Shelf("Data science", "Drift", "drift", _drift),
    Shelf("Data science", "Scoring", "score",
          lambda m: f"{m['outputs'].get('rows', 0):,} subjects scored with {m['parameters'].get('model')}",
          lambda lake, m: None),
    Shelf("Compliance", "Consent review", "consent_review", _review),
    Shelf("Compliance", "Subject traces (right of access)", "subject_trace",
          lambda m: (f"{m['outputs'].get('why')}; " if m["outputs"].get("never_seen") else
                     f"{'in derived tables' if m['outputs'].get('in_derived_tables') else 'in no derived table'}: "
                     f"{m['outputs'].get('why')}; ") + f"{m['outputs'].get('fusion_runs', 0)} fusion runs, "
                    f"{m['outputs'].get('purges', 0)} purges", report_name="trace"),
    Shelf("Compliance", "Linkage (consent-gated fusion)", "fuse", _fuse),
    Shelf("Compliance", "Privacy (k-anonymity release gate)", "privacy", _release),
    Shelf("Compliance", "Partner statistics under differential privacy", "dp_stats",
          lambda m: f"{m['outputs'].get('segments', 0)} segments at ε {m['outputs'].get('epsilon', 0):g}; budget spent "
                    f"{m['outputs'].get('budget_spent', 0):g} of {m['outputs'].get('budget', 0):g}"),
    Shelf("Compliance", "Purge audit (withdrawals)", "purge", _purge,
          lambda lake, m: m["outputs"].get("audit"), "audit log"),
)


def _link(lake: Lake, target: str | None, text: str) -> html.Markup | str:
    """A relative link to ``target`` when it exists, else nothing: a page never links into the void."""
    if not target or not Path(target).exists():
        return ""
    return html.link(os.path.relpath(target, lake.reports), text)


def _parameters(m: dict) -> str:
    shown = ("purpose", "as_of", "dt", "model")
    return ", ".join(f"{k} {v}" for k, v in m.get("parameters", {}).items() if k in shown and v)


def _outcome(shelf: Shelf, m: dict) -> tuple:
    """A run's status, start and key figures (its error when it failed)."""
    return (html.status(m["status"] == "succeeded", m["status"], m["status"].upper()),
            m.get("started_at", "")[:16].replace("T", " "),
            shelf.figures(m) if m["status"] == "succeeded" else (m.get("error") or "no error recorded"))


def _shelf(lake: Lake, shelf: Shelf, found: list[dict]) -> str:
    rows = []
    for m in found[:SHOWN]:
        status, started, figures = _outcome(shelf, m)
        rows.append((status, started, _parameters(m), figures, _link(lake, shelf.report(lake, m), shelf.report_name),
                     _link(lake, str(lake.manifest(shelf.job, m["run_id"])), "manifest")))
    older = len(found) - SHOWN
    note = f"{older} older runs are in manifests/{shelf.job}/." if older > 0 else None
    return html.section(shelf.title, html.table(("status", "started (UTC)", "for", "key figures", "", ""), rows),
                        note=note, level=3)


def _glance(lake: Lake, found: dict[str, list[dict]]) -> str:
    """The latest run of every shelf, one row each: what a person looks at first."""
    rows = [(shelf.role, shelf.title, *_outcome(shelf, m), _link(lake, shelf.report(lake, m), shelf.report_name))
            for shelf in SHELVES if (m := next(iter(found[shelf.job]), None)) is not None]
    return html.section("At a glance: the latest run of each", html.table(
        ("for", "what", "status", "started (UTC)", "key figures", ""), rows),
        note="Each role's runs follow, newest first. `mydata status` checks the lake itself (ledger, "
             "withdrawals, drift) from the command line.")


def page(lake: Lake) -> str:
    found = {job: runs(lake, job) for job in {shelf.job for shelf in SHELVES}}  # a job on two shelves is read once
    latest = [by_job[0] for by_job in found.values() if by_job]
    failed = sorted({m["job"] for m in latest if m["status"] != "succeeded"})
    facts = {"lake": lake.root, "updated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
             "runs": sum(len(by_job) for by_job in found.values()),
             "latest runs": f"not succeeded: {', '.join(failed)}" if failed else "all succeeded"}
    sections = [_glance(lake, found)]
    for role in ROLES:
        sections.append(html.role_heading(role))
        sections += [_shelf(lake, shelf, found[shelf.job]) for shelf in SHELVES if shelf.role == role]
    return html.page("MyData fusion: reports", facts, sections)


def refresh(lake: Lake) -> Path:
    """Rebuild ``reports/index.html`` from the lake's manifests."""
    return html.write_page(lake.reports / "index.html", page(lake))
