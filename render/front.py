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
from mydata.manifest import runs
from render import html, summaries

#: runs shown per shelf; older ones stay in their manifests
SHOWN = 10


@dataclass(frozen=True)
class Shelf:
    """One kind of run on the front page."""

    role: str
    title: str
    job: str
    #: the run's figures in a line (default: the job's line, the one the CLI and the demo print)
    figures: Callable[[dict], str] = summaries.summary
    #: the run's page (or file) to link, if it has one, and what the link says
    report: Callable[[Lake, dict], str | None] = lambda lake, m: m["outputs"].get("report")
    report_name: str = "report"


ROLES = ("Data engineering", "Data science", "Compliance")
SHELVES = (
    Shelf("Data engineering", "Deliveries (landing inventory)", "landing", report=lambda lake, m: None),
    Shelf("Data engineering", "Collections from the holders' APIs", "collect"),
    Shelf("Data engineering", "Ingest runs", "ingest",
          report=lambda lake, m: str(lake.report("ingest") / f"{m['run_id']}.html")),
    Shelf("Data engineering", "Quarantine, by ingest run (top rules)", "ingest", summaries.quarantine,
          report=lambda lake, m: str(lake.report("ingest") / f"{m['run_id']}.html")),
    Shelf("Data engineering", "Validation (Great Expectations)", "validate"),
    Shelf("Data engineering", "Consent ledger appends", "consent", report=lambda lake, m: None),
    Shelf("Data science", "Feature releases and their catalog", "privacy",
          report=lambda lake, m: m["outputs"].get("catalog"), report_name="catalog"),
    Shelf("Data science", "Feature candidates", "features", report=lambda lake, m: None),
    Shelf("Data science", "Models trained (profiles)", "train"),
    Shelf("Data science", "Drift", "drift"),
    Shelf("Data science", "Scoring", "score", report=lambda lake, m: None),
    Shelf("Compliance", "Consent review", "consent_review"),
    Shelf("Compliance", "Subject traces (right of access)", "subject_trace", report_name="trace"),
    Shelf("Compliance", "Linkage (consent-gated fusion)", "fuse"),
    Shelf("Compliance", "Privacy (k-anonymity release gate)", "privacy"),
    Shelf("Compliance", "Partner statistics under differential privacy", "dp_stats"),
    Shelf("Compliance", "Purge audit (withdrawals)", "purge",
          report=lambda lake, m: m["outputs"].get("audit"), report_name="audit log"),
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
