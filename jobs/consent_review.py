"""Compliance review of consent: one subject's history and state, and the consent report.

The report (``reports/consent/as_of=<date>.html``) answers what a reviewer asks: does the ledger
verify, who may be used for what (by purpose, source and channel), how grants and withdrawals
moved over time, which consents end soon, which runs relied on which snapshot and how many
subjects each used, and which purges were done.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import consent, purge
from mydata import html
from mydata.config import PURPOSES, Settings
from mydata.lake import Lake
from schemas.codes import CONSENT_SOURCES
from schemas.sql import SPARK

EXPIRY_WINDOWS = (30, 60, 90)


@dataclass(frozen=True)
class SubjectStatus:
    events: list[dict]
    states: list[dict]  # purpose, source, state, since (event time), until (end date)


def subject_status(spark: SparkSession, lake: Lake, link_key: str, moment: date | datetime) -> SubjectStatus:
    """A subject's events in chain order and, per purpose and source, its consent at ``moment``."""
    ledger = consent.read_ledger(spark, lake)
    if ledger is None:
        return SubjectStatus([], [])
    mine = ledger.where(F.col("link_key") == link_key).cache()
    events = [r.asDict() for r in mine.orderBy("seq").select(
        "seq", "event_id", "event_type", "event_time", "purpose", "sources", "end_date", "channel",
        "notice_version", "key_version").collect()]
    states = []
    for purpose in PURPOSES:
        for r in consent.consent_states(mine, purpose, moment).orderBy("source").collect():
            states.append({"purpose": purpose, "source": r["source"], "state": r["state"],
                           "event_id": r["event_id"], "since": r["event_time"], "until": r["end_date"]})
    mine.unpersist()
    return SubjectStatus(events, states)


def _manifests(lake: Lake, job: str) -> list[dict]:
    folder = lake.manifests / job
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.json")] if folder.is_dir() else []
    return sorted(docs, key=lambda d: d.get("started_at", ""))


def report_path(lake: Lake, as_of: date):
    return lake.report("consent") / f"as_of={as_of.isoformat()}.html"


def write_report(settings: Settings, spark: SparkSession, as_of: date) -> dict:
    """Write the consent report for ``as_of``; returns its path and the headline figures."""
    lake = settings.lake
    verification = consent.verify_ledger(spark, lake)
    ledger = consent.read_ledger(spark, lake)
    facts = {"as of": as_of.isoformat(), "ledger events": f"{verification.events:,}",
             "ledger": html.status(verification.ok, "verifies", "BROKEN")}
    sections = [html.section("Ledger", html.table(("", ""), [
        ("events", verification.events), ("head hash", html.code(verification.head.hash)),
        ("verification", html.status(verification.ok, "every event's hash and link verify, and the head "
                                     "is the one the last append recorded", str(verification.problem)))]))]
    figures: dict = {"ledger_ok": verification.ok, "events": verification.events}
    if ledger is not None:
        ledger = ledger.cache()
        states = None
        for purpose in PURPOSES:
            part = consent.consent_states(ledger, purpose, as_of).withColumn("purpose", F.lit(purpose))
            states = part if states is None else states.unionByName(part)
        states = states.cache()
        by_state = {(r["purpose"], r["source"], r["state"]): int(r["count"])
                    for r in states.groupBy("purpose", "source", "state").count().collect()}
        figures["valid"] = {p: {s: by_state.get((p, s, "valid"), 0) for s in CONSENT_SOURCES} for p in PURPOSES}
        rows = [(html.code(p), s, by_state.get((p, s, "valid"), 0), by_state.get((p, s, "withdrawn"), 0),
                 by_state.get((p, s, "expired"), 0)) for p in PURPOSES for s in CONSENT_SOURCES]
        sections.append(html.section("Consent by purpose and source", html.table(
            ("purpose", "source", "valid", "withdrawn", "expired"), rows),
            note="Subjects per state of their latest event at or before the as-of date."))
        channels = sorted(states.where(F.col("state") == "valid").groupBy("purpose", "channel")
                          .agg(F.countDistinct("link_key", "key_version").alias("n")).collect(),
                          key=lambda r: (r["purpose"], r["channel"]))
        sections.append(html.section("Valid consent by channel", html.table(
            ("purpose", "channel", "subjects"), [(html.code(r["purpose"]), r["channel"], r["n"]) for r in channels])))
        monthly = ledger.where(F.expr(f"event_time < {SPARK.moment(consent.as_of_moment(as_of))}")).groupBy(
            F.date_format("event_time", "yyyy-MM").alias("month")).pivot("event_type", ["grant", "renew", "withdraw"]) \
            .count().na.fill(0).orderBy("month").collect()
        most = max((max(r["grant"], r["withdraw"]) for r in monthly), default=0)
        sections.append(html.section("Grants and withdrawals over time", html.table(
            ("month", "grants", "", "renewals", "withdrawals", ""),
            [(r["month"], r["grant"], html.bar(r["grant"], most), r["renew"], r["withdraw"],
              html.bar(r["withdraw"], most, colour="#b00020")) for r in monthly])))
        valid = states.where(F.col("state") == "valid")
        ends = [F.sum(F.when(F.col("end_date") < F.lit(as_of + timedelta(days=d)), 1).otherwise(0)).alias(f"d{d}")
                for d in EXPIRY_WINDOWS]
        expiring = {r["purpose"]: r for r in valid.groupBy("purpose").agg(*ends).collect()}
        sections.append(html.section("Consents ending soon", html.table(
            ("purpose", *[f"within {d} days" for d in EXPIRY_WINDOWS]),
            [(html.code(p), *[int(expiring[p][f"d{d}"]) if p in expiring else 0 for d in EXPIRY_WINDOWS])
             for p in PURPOSES]), note="Valid (subject, source) consents whose end date falls in the window."))
        ledger.unpersist()
        states.unpersist()
    runs = _manifests(lake, "fuse")
    sections.append(html.section("Fusion runs and the consent they relied on", html.table(
        ("run", "status", "purpose", "as of", "snapshot", "ledger events", "ledger head", "subjects used"),
        [(html.code(m["run_id"]), html.status(m["status"] == "succeeded", m["status"], m["status"]),
          m["parameters"].get("purpose"), m["parameters"].get("as_of"),
          html.code(m["inputs"].get("consent_snapshot", {}).get("id", "")),
          m["inputs"].get("consent_snapshot", {}).get("ledger_head", {}).get("events", ""),
          html.code(m["inputs"].get("consent_snapshot", {}).get("ledger_head", {}).get("hash", "")[:16] + "…"),
          m["outputs"].get("subjects_fused", "")) for m in runs])))
    audits = purge.read_audit(lake)
    sections.append(html.section("Purges", html.table(
        ("run", "at", "purpose", "withdrawn subjects", "pseudonyms purged", "rows removed", "tables"),
        [(html.code(a["run_id"]), a["at"], a["purpose"], a["withdrawn_subjects"], len(a["pseudonyms"]),
          sum(a["rows_removed"].values()), ", ".join(sorted({k.rsplit("/", 1)[0] for k in a["rows_removed"]})))
         for a in audits]), note="Each purge's pseudonyms are listed in consent/purge_audit.jsonl."))
    figures.update({"fusion_runs": len(runs), "purges": len(audits)})
    path = html.write_page(report_path(lake, as_of), html.page(f"Consent review as of {as_of.isoformat()}",
                                                                facts, sections))
    return {"report": str(path), **figures}
