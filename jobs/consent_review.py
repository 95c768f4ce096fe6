"""Compliance review of consent: one subject's history and state, and the consent report.

The report (``reports/consent/as_of=<date>.html``) answers what a reviewer asks: does the ledger
verify, who may be used for what (by purpose, source and channel), how grants and withdrawals
moved over time, which consents end soon, which runs relied on which snapshot and how many
subjects each used, and which purges were done.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jobs import consent, purge, withdrawals
from jobs.stage import StageResult, stage_run
from mydata.config import PURPOSES, SESSION_TIME_ZONE, Settings
from mydata.engines import Engine
from mydata.keys import KeyStore
from mydata.lake import Lake
from mydata.lock import writes_lake
from mydata.manifest import runs
from render.consent import EXPIRY_WINDOWS, write_page
from schemas import asof
from schemas.asof import as_of_moment
from schemas.codes import CONSENT_SOURCES
from schemas.dialects import Dialect

JOB = "consent_review"


@dataclass(frozen=True)
class SubjectStatus:
    events: list[dict]
    states: list[dict]  # purpose, source, state, since (event time), until (end date)


def subject_status(engine: Engine, lake: Lake, link_key: str, moment: date | datetime) -> SubjectStatus:
    """A subject's events in chain order and, per purpose and source, its consent at ``moment``."""
    if not engine.parquet("ledger", lake.ledger):
        return SubjectStatus([], [])
    d = engine.dialect
    engine.table("mine", f"SELECT * FROM ledger WHERE link_key = {d.lit(link_key)}")
    events = engine.rows("SELECT seq, event_id, event_type, event_time, purpose, sources, end_date, channel, "
                         "notice_version, key_version FROM mine ORDER BY seq")
    states = [{"purpose": purpose, "source": r["source"], "state": r["state"], "event_id": r["event_id"],
               "since": r["event_time"], "until": r["end_date"]}
              for purpose in PURPOSES
              for r in engine.rows(f"{consent.consent_states_sql(d, 'mine', purpose, moment)} ORDER BY source")]
    engine.drop("mine", "ledger")
    return SubjectStatus(events, states)


def states_sql(d: Dialect, ledger: str, as_of: date) -> str:
    """Every purpose's consent states at ``as_of``, with a ``purpose`` column."""
    return " UNION ALL ".join(f"SELECT *, {d.lit(p)} AS purpose FROM ({consent.consent_states_sql(d, ledger, p, as_of)}) s"
                              for p in PURPOSES)


def monthly_sql(d: Dialect, ledger: str, as_of: date) -> str:
    """Grants, renewals and withdrawals per month before ``as_of``."""
    counted = ", ".join(f"sum(CASE WHEN event_type = '{kind}' THEN 1 ELSE 0 END) AS {kind}s"
                        for kind in ("grant", "renew", "withdraw"))
    return (f"SELECT {d.strftime('event_time', '%Y-%m')} AS month, {counted} FROM {ledger} "
            f"WHERE event_time < {d.moment(as_of_moment(as_of))} GROUP BY {d.strftime('event_time', '%Y-%m')} "
            "ORDER BY month")


def expiring_sql(states: str, as_of: date) -> str:
    """Per purpose, valid consents whose end date falls within each of ``EXPIRY_WINDOWS`` days."""
    ends = ", ".join(f"sum(CASE WHEN end_date < DATE '{(as_of + timedelta(days=n)).isoformat()}' THEN 1 ELSE 0 END) "
                     f"AS d{n}" for n in EXPIRY_WINDOWS)
    return f"SELECT purpose, {ends} FROM {states} WHERE state = 'valid' GROUP BY purpose"


def consent_figures(engine: Engine, as_of: date) -> dict:
    """Consent by purpose, source and channel, over time, and ending soon, from the registered ``ledger``."""
    d = engine.dialect
    engine.table("states", states_sql(d, "ledger", as_of))
    figures = {
        "by_state": {(r["purpose"], r["source"], r["state"]): int(r["n"]) for r in engine.rows(
            "SELECT purpose, source, state, count(*) AS n FROM states GROUP BY purpose, source, state")},
        "channels": engine.rows("SELECT purpose, channel, count(*) AS n FROM (SELECT DISTINCT purpose, channel, "
                                "link_key, key_version FROM states WHERE state = 'valid') v GROUP BY purpose, channel "
                                "ORDER BY purpose, channel"),
        "monthly": engine.rows(monthly_sql(d, "ledger", as_of)),
        "expiring": {r["purpose"]: r for r in engine.rows(expiring_sql("states", as_of))}}
    engine.drop("states")
    return figures


def withdrawal_figures(engine: Engine, settings: Settings, audits: list[dict]) -> dict[str, dict]:
    """Per purpose: withdrawn subjects, the SLA of their purges, and any fusion run that used one after withdrawing."""
    keystore, moment = KeyStore.open(settings), datetime.now(ZoneInfo(SESSION_TIME_ZONE))
    figures = {}
    for purpose in PURPOSES:
        found = withdrawals.honoured(engine, settings.lake, keystore, purpose, audits, moment)
        figures[purpose] = {**found, "violations": withdrawals.violations_said(found["used_after_withdrawal"])}
    return figures


def write_report(settings: Settings, engine: Engine, as_of: date) -> dict:
    """Write the consent report for ``as_of``; returns its path and the headline figures."""
    lake = settings.lake
    verification = consent.verify_ledger(engine, lake)
    consents = None
    if engine.parquet("ledger", lake.ledger):
        consents = consent_figures(engine, as_of)
        engine.drop("ledger")
    fusions, audits = runs(lake, "fuse")[::-1], purge.read_audit(lake)
    honoured = withdrawal_figures(engine, settings, audits)
    path = write_page(lake, as_of, verification, consents, fusions, audits, honoured)
    figures = {"ledger_ok": verification.ok, "events": verification.events, "fusion_runs": len(fusions),
               "purges": len(audits), "withdrawals": {p: {"sla": w["sla"], "uses_after_withdrawal": len(w["violations"])}
                                                      for p, w in honoured.items()}}
    if consents is not None:
        figures["valid"] = {p: {s: consents["by_state"].get((p, s, "valid"), 0) for s in CONSENT_SOURCES}
                            for p in PURPOSES}
    return {"report": str(path), **figures}


@writes_lake(JOB)
def run(settings: Settings, spark: Any = None) -> StageResult:
    """The consent review as of ``settings.as_of`` (default: the purpose's newest snapshot, else today)
    on the configured engine, with its manifest: the review succeeds even when the ledger does not
    verify, and says so."""
    as_of = asof.report_as_of(settings.as_of, settings.lake.silver_table("subjects", settings.purpose), date.today())
    with stage_run(settings, JOB, spark=spark, as_of=as_of.isoformat(), engine=settings.engine) as run:
        result = write_report(settings, run.engine, as_of)
        run.manifest.inputs = {"ledger_events": result["events"], "fusion_runs": result["fusion_runs"],
                               "purges": result["purges"]}
        run.manifest.outputs = {"report": result["report"], "ledger_verifies": result["ledger_ok"],
                                "valid": result.get("valid", {}), "withdrawals": result["withdrawals"]}
    return run.result(as_of=as_of.isoformat(), **result)


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load()), file=sys.stdout)
