"""A data subject's full trace, the answer to a right-of-access request: everything the lake holds
and derived about one link key, and under which consent.

Reads the consent ledger, bronze and quarantine (counts only, never values), the record of use
(``consent/fusion_members``), silver, gold, the model registry and the purge audit; writes
``reports/subjects/<trace>.html`` and ``.json`` and a manifest. The subject's purpose pseudonyms
are computed for the trace and dropped: no output holds the link key or a pseudonym's value, so a
trace never becomes the link between them.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from jobs import purge
from jobs.consent_review import subject_status
from jobs.stage import StageResult, stage_run
from jobs.withdrawals import unrecorded_runs
from models import registry
from mydata.config import PURPOSES, SESSION_TIME_ZONE, Settings
from mydata.engines import Engine
from mydata.keys import KeyStore, purpose_pseudonym
from mydata.lake import Lake
from mydata.lock import writes_lake
from mydata.manifest import runs
from schemas import asof
from schemas.silver import FUSED_SOURCES

JOB = "subject_trace"


def validity_timeline(events: list[dict]) -> list[dict]:
    """Per purpose and source, the consent state over time from the subject's events in chain
    order: valid from a grant or renewal until its end date (expired after), withdrawn from a
    withdrawal; each period ends where the next event for the same purpose and source begins."""
    by_key: dict[tuple[str, str], list[dict]] = {}
    for event in events:
        for source in event["sources"]:
            by_key.setdefault((event["purpose"], source), []).append(event)
    periods = []
    for (purpose, source), chain in sorted(by_key.items()):
        for event, following in zip(chain, [*chain[1:], None]):
            until = following["event_time"] if following else None
            base = {"purpose": purpose, "source": source, "event_id": event["event_id"], "since": event["event_time"]}
            if event["event_type"] == "withdraw":
                periods.append({**base, "state": "withdrawn", "until": until})
                continue
            ends = datetime.combine(event["end_date"], datetime.min.time(), ZoneInfo(SESSION_TIME_ZONE))
            if until is None or ends < until:
                periods.append({**base, "state": "valid", "until": ends})
                periods.append({**base, "since": ends, "state": "expired", "until": until})
            else:
                periods.append({**base, "state": "valid", "until": until})
    return periods


def holdings_sql(engine: Engine, lake: Lake, link_key: str) -> str | None:
    """SQL: rows, first and last delivery and deliveries per bronze and quarantine table holding
    ``link_key`` (a quarantined record is matched in its original text); each table held is
    registered as ``held_<n>`` through the engine interface, so both engines run it."""
    d, parts = engine.dialect, []
    tables = [(zone, table) for zone, folder in (("bronze", lake.bronze), ("quarantine", lake.quarantine))
              for table in (sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("_"))
                            if folder.is_dir() else [])]
    for n, (zone, table) in enumerate(tables):
        view = f"held_{n}"
        if not engine.parquet(view, table):
            continue
        columns = engine.columns(view)
        if "link_key" in columns:
            match = f"link_key = {d.lit(link_key)}"
        elif "record" in columns:
            match = f"instr(record, {d.lit(link_key)}) > 0"
        else:  # failed collections and the like: no subject in them
            continue
        parts.append(f"SELECT {d.lit(zone)} AS zone, {d.lit(table.name)} AS tbl, count(*) AS n, "
                     f"min(dt) AS first, max(dt) AS last, count(DISTINCT dt) AS deliveries "
                     f"FROM {view} s WHERE {match} HAVING count(*) > 0")
    return " UNION ALL ".join(parts) or None


def register_pseudonyms(engine: Engine, keystore: KeyStore, purpose: str, link_key: str) -> dict[int, str]:
    """Register ``subject_pseudonyms``: the subject's pseudonym under every key version of
    ``purpose`` (computed here, kept by no one); returns them by version."""
    made = {v: purpose_pseudonym(keystore.purpose_secret(purpose, v), link_key)
            for v in keystore.purpose_versions(purpose)}
    engine.arrow("subject_pseudonyms", pa.table({"pseudonym": list(made.values()), "key_version": list(made)}))
    return made


def fusion_runs(engine: Engine, lake: Lake, purpose: str) -> list[dict]:
    """Every fusion run of ``purpose`` whose record of use holds the subject, with the consent snapshot it relied on."""
    if not engine.parquet("members", lake.fusion_members(purpose)):
        return []
    used = {r["run"] for r in engine.rows(
        "SELECT DISTINCT run FROM members WHERE pseudonym IN (SELECT pseudonym FROM subject_pseudonyms)")}
    engine.drop("members")
    return [{"run_id": m["run_id"], "purpose": purpose, "as_of": m["parameters"]["as_of"],
             "consent_snapshot": m["inputs"]["consent_snapshot"]["id"],
             "ledger_events": m["inputs"]["consent_snapshot"]["ledger_head"]["events"]}
            for m in runs(lake, "fuse") if m["run_id"] in used]


def derived_rows(engine: Engine, lake: Lake, purpose: str) -> list[dict]:
    """Rows of the subject per derived table and partition of ``purpose`` (silver and gold)."""
    found = []
    for i, folder in enumerate(sorted({partition.parent for _, partition in purge.derived_partitions(lake, purpose)})):
        for partition, by_pseudonym in sorted(purge.table_hits(engine, f"derived_{i}", folder, "subject_pseudonyms").items()):
            found.append({"purpose": purpose, "zone": folder.parent.parent.name, "table": folder.parent.name,
                          "partition": partition.name, "rows": sum(by_pseudonym.values())})
        engine.drop(f"derived_{i}")
    return found


def segment_assignments(engine: Engine, lake: Lake, purpose: str) -> list[dict]:
    """The subject's segment per scored snapshot: segment, label, model version."""
    if not engine.parquet("segments", lake.segments(purpose)):
        return []
    rows = engine.rows("SELECT as_of, segment, segment_label, model_version FROM segments "
                       "WHERE pseudonym IN (SELECT pseudonym FROM subject_pseudonyms) ORDER BY as_of")
    engine.drop("segments")
    return [{"purpose": purpose, **r} for r in rows]


def models_trained(lake: Lake, purpose: str, derived: list[dict]) -> list[dict]:
    """Model versions trained on a feature snapshot that holds the subject."""
    snapshots = {r["partition"] for r in derived if r["zone"] == "gold" and r["table"] == "features"}
    return [{"purpose": purpose, "version": v.version, "snapshot": v.metadata["snapshot"].rsplit("/", 1)[-1]}
            for v in registry.versions(lake, purpose)
            if v.metadata.get("snapshot", "").rsplit("/", 1)[-1] in snapshots]


def purges(lake: Lake, pseudonyms: set[str]) -> list[dict]:
    """Every purge that removed the subject's rows (the audit names pseudonyms, read here and not shown)."""
    return [{"run_id": a["run_id"], "at": a["at"], "purpose": a["purpose"]}
            for a in purge.read_audit(lake) if pseudonyms & set(a.get("pseudonyms", []))]


def _withdrawn_on(states: list[dict], purpose: str) -> str | None:
    """The day of the subject's newest withdrawal in force for ``purpose``."""
    moments = sorted(str(s["since"])[:10] for s in states if s["state"] == "withdrawn" and s["purpose"] == purpose)
    return moments[-1] if moments else None


def verdict(states: list[dict], derived: list[dict], used: list[dict], purged: list[dict], seen: bool = True) -> dict:
    """Whether the subject is in any derived table now, and why, in words a reviewer reads."""
    held = sorted({r["purpose"] for r in derived})
    if not held:
        if not seen:
            return {"in_derived_tables": False, "attention": False, "never_seen": True,
                    "why": "the lake has never seen this link key: no consent event, no record, no derived row"}
        why = ("purged: " + ", ".join(f"{p['purpose']} on {p['at'][:10]}" + (
                   f" (withdrew on {day})" if (day := _withdrawn_on(states, p["purpose"])) else "") for p in purged)
               if purged
               else "used by fusion runs whose outputs were since replaced" if used else "never fused")
        return {"in_derived_tables": False, "why": why, "attention": False}
    reasons, attention = [], False
    for purpose in held:
        mine = {s["source"]: s for s in states if s["purpose"] == purpose and s["source"] in FUSED_SOURCES}
        withdrawn = sorted(s["source"] for s in mine.values() if s["state"] == "withdrawn")
        if withdrawn:
            attention = True
            reasons.append(f"{purpose}: a purge is pending (consent withdrawn for {', '.join(withdrawn)} on "
                           f"{_withdrawn_on(states, purpose)})")
        elif len(mine) == len(FUSED_SOURCES) and all(s["state"] == "valid" for s in mine.values()):
            reasons.append(f"{purpose}: valid consent for {', '.join(FUSED_SOURCES)}")
        else:
            attention = True
            reasons.append(f"{purpose}: consent no longer valid (expired or missing), kept in the snapshots made "
                           "while it was; the purge removes withdrawals only")
    return {"in_derived_tables": True, "why": "; ".join(reasons), "attention": attention}


def trace(engine: Engine, lake: Lake, keystore: KeyStore, link_key: str, purposes: list[str],
          moment: datetime) -> dict:
    """Everything held and derived about ``link_key`` for ``purposes``, its consent at ``moment``."""
    status = subject_status(engine, lake, link_key, moment)
    holdings_query = holdings_sql(engine, lake, link_key)
    document: dict[str, Any] = {
        "consent": {"events": status.events, "timeline": validity_timeline(status.events), "states": status.states},
        "held": engine.rows(f"{holdings_query} ORDER BY zone, tbl") if holdings_query else [],
        "pseudonyms": [], "fusion_runs": [], "derived": [], "segments": [], "models": []}
    pseudonyms: set[str] = set()
    for purpose in purposes:
        made = register_pseudonyms(engine, keystore, purpose, link_key)
        pseudonyms |= set(made.values())
        derived = derived_rows(engine, lake, purpose)
        document["pseudonyms"].append({"purpose": purpose, "key_versions": list(made)})
        document["fusion_runs"] += fusion_runs(engine, lake, purpose)
        document["derived"] += derived
        document["segments"] += segment_assignments(engine, lake, purpose)
        document["models"] += models_trained(lake, purpose, derived)
        engine.drop("subject_pseudonyms")
    document["purges"] = purges(lake, pseudonyms)
    document["unrecorded_fusion_runs"] = sum(len(unrecorded_runs(lake, p)) for p in purposes)
    seen = bool(status.events or any(r.get("n") for r in document["held"]))
    document["verdict"] = verdict(status.states, document["derived"], document["fusion_runs"], document["purges"], seen)
    return document


@writes_lake(JOB)
def run(settings: Settings, link_key: str, purposes: list[str] | None = None, spark: Any = None) -> StageResult:
    """Trace ``link_key`` for ``purposes`` (default every purpose), its consent as of
    ``settings.as_of`` (default now); writes the page and the JSON, never the link key."""
    from render.subject import write_page

    lake, purposes = settings.lake, purposes or list(PURPOSES)
    zone = ZoneInfo(SESSION_TIME_ZONE)
    moment = (asof.as_of_moment(settings.as_of).replace(tzinfo=zone) if settings.as_of
              else datetime.now(zone))
    with stage_run(settings, JOB, spark=spark, as_of=moment.isoformat(), purposes=purposes,
                   engine=settings.engine) as run:
        document = trace(run.engine, lake, KeyStore.open(settings), link_key, purposes, moment)
        run.close_engine()
        document = {"trace_id": run.manifest.run_id, "as_of": moment.isoformat(), "purposes": purposes, **document}
        path = lake.subject_traces / f"{run.manifest.run_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        report = write_page(lake.subject_traces / f"{run.manifest.run_id}.html", document)
        run.manifest.outputs = {"report": str(report), "json": str(path), **document["verdict"],
                                **{k: len(document[k]) for k in ("held", "fusion_runs", "derived", "segments", "purges")}}
    return run.result()

