"""Withdrawals honoured, measured: how long each withdrawal took to leave every derived table,
who is still waiting, and a check that no fusion run used a subject whose withdrawal was in force
at its as-of moment.

Reads the purge audit, the consent ledger, the record of use (``consent/fusion_members``) and the
fusion manifests; writes nothing. Its figures go to the consent review and to `mydata status`.
"""
from __future__ import annotations

import math
from datetime import datetime

from jobs import consent, purge
from jobs.pseudonym import pseudonym_sql, register_keys
from mydata import storage
from mydata.engines import Engine
from mydata.keys import KeyStore
from mydata.lake import Lake
from mydata.manifest import runs
from schemas.silver import FUSED_SOURCES


def _hours(start: str | datetime, end: str | datetime) -> float:
    start, end = (datetime.fromisoformat(t) if isinstance(t, str) else t for t in (start, end))
    return (end - start).total_seconds() / 3600


def _percentile(ordered: list[float], share: float) -> float:
    """The nearest-rank percentile of sorted values."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def purge_delays(audit: list[dict], purpose: str) -> list[float]:
    """Hours from each purged withdrawal to the last purge that removed the subject's rows."""
    done: dict[tuple[str, str], str] = {}
    for entry in audit:
        if entry["purpose"] == purpose:
            for pseudonym, withdrawn_at in entry.get("withdrawn_at", {}).items():
                done[(pseudonym, withdrawn_at)] = entry["at"]
    return sorted(_hours(withdrawn_at, at) for (_, withdrawn_at), at in done.items())


def sla(audit: list[dict], purpose: str, pending_since: list[str], moment: datetime) -> dict:
    """The withdrawal SLA: median, p95 and max hours to purge, and the subjects still waiting."""
    delays = purge_delays(audit, purpose)
    waiting = sorted(_hours(since, moment) for since in pending_since)
    return {"purged": len(delays), "median_hours": _percentile(delays, 0.5) if delays else None,
            "p95_hours": _percentile(delays, 0.95) if delays else None, "max_hours": delays[-1] if delays else None,
            "pending": len(waiting), "longest_pending_hours": waiting[-1] if waiting else None}


def unrecorded_runs(lake: Lake, purpose: str) -> list[str]:
    """Succeeded fusion runs of ``purpose`` with no record of use (made before records were kept):
    neither the check nor a subject trace can see whom they used."""
    return [run["run_id"] for run in runs(lake, "fuse")
            if run["status"] == "succeeded" and run["parameters"].get("purpose") == purpose
            and not (lake.fusion_members(purpose) / f"run={run['run_id']}").is_dir()]


def uses_after_withdrawal(engine: Engine, lake: Lake, keystore: KeyStore, purpose: str) -> list[dict]:
    """Every fusion run of ``purpose`` that used a subject whose withdrawal (for a fused source) was
    in force at the run's as-of moment: the run, the withdrawal event, and whether the run's ledger
    snapshot held that event (a violation) or it reached the ledger later (a late delivery)."""
    if not engine.parquet("members", lake.fusion_members(purpose)) or not engine.parquet("ledger", lake.ledger):
        return []
    d, fused, found = engine.dialect, ", ".join(engine.dialect.lit(s) for s in FUSED_SOURCES), []
    for run in runs(lake, "fuse"):
        if run["status"] != "succeeded" or run["parameters"].get("purpose") != purpose:
            continue
        snapshot = run["inputs"]["consent_snapshot"]
        engine.view("run_states", consent.consent_states_sql(d, "ledger", purpose,
                                                             datetime.fromisoformat(snapshot["as_of"])))
        register_keys(engine, "run_keys", keystore.purpose_secret(purpose, run["outputs"]["key_versions"]["purpose"]))
        rows = engine.rows(
            f"SELECT DISTINCT w.event_id, w.event_time, w.seq FROM run_states w CROSS JOIN run_keys k "
            f"JOIN members u ON u.run = {d.lit(run['run_id'])} AND u.pseudonym = {pseudonym_sql(d, 'w.link_key', 'k')} "
            f"WHERE w.state = 'withdrawn' AND w.source IN ({fused}) ORDER BY w.seq")
        found += [{"run_id": run["run_id"], "as_of": snapshot["as_of"], "event_id": r["event_id"],
                   "withdrawn_at": r["event_time"].isoformat(),
                   "in_snapshot": int(r["seq"]) < snapshot["ledger_head"]["events"]} for r in rows]
    engine.drop("members", "ledger", "run_states", "run_keys")
    return found


def violations_said(found: list[dict]) -> list[str]:
    """One line per use after withdrawal, naming the run and the withdrawal event."""
    return [f"fusion run {f['run_id']} (as of {f['as_of'][:10]}) used a subject who withdrew at "
            f"{f['withdrawn_at'][:16]} (event {f['event_id']}"
            + ("; it was in the run's consent snapshot)" if f["in_snapshot"] else "; delivered after the run)")
            for f in found]


def honoured(engine: Engine, lake: Lake, keystore: KeyStore, purpose: str, audit: list[dict],
             moment: datetime) -> dict:
    """Withdrawals of ``purpose`` as of ``moment``: how many, those still to purge, the SLA of the
    purges in ``audit``, every use after a withdrawal, and the fusion runs that cannot be checked."""
    pending = pending_withdrawals(engine, lake, keystore, purpose, moment)
    return {**{k: v for k, v in pending.items() if k != "since"},
            "sla": sla(audit, purpose, pending["since"], moment),
            "used_after_withdrawal": uses_after_withdrawal(engine, lake, keystore, purpose),
            "unrecorded_fusion_runs": len(unrecorded_runs(lake, purpose))}


def pending_withdrawals(engine: Engine, lake: Lake, keystore: KeyStore, purpose: str, moment: datetime) -> dict:
    """Withdrawn subjects of ``purpose`` and those a purge has still to remove: how many, where, since when."""
    partitions = purge.derived_partitions(lake, purpose)
    if not partitions or not storage.has_data(lake.ledger):
        return {"withdrawn_subjects": 0, "not_purged": 0, "rows": 0, "tables": [], "since": []}
    withdrawn = purge.register_withdrawn(engine, lake, keystore, purpose, moment)
    names = {partition.parent: name for name, partition in partitions}  # table folder -> zone/table
    found = {names[folder]: hits for i, folder in enumerate(sorted(names))
             if (hits := purge.table_hits(engine, f"pending_{i}", folder, "purged_pseudonyms"))}
    by_pseudonym = [counts for hits in found.values() for counts in hits.values()]
    waiting = sorted({p for counts in by_pseudonym for p in counts})
    return {"withdrawn_subjects": withdrawn, "not_purged": len(waiting),
            "rows": sum(n for counts in by_pseudonym for n in counts.values()), "tables": sorted(found),
            "since": sorted(purge.withdrawn_since(engine, waiting).values())}
