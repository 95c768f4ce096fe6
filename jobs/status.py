"""The lake at a glance, from what its runs left behind: reads, never writes.

Every job's latest run (its manifest), ingest's rows and quarantine share, the rows of each zone's
tables (from Parquet footers), the consent ledger's head and whether it verifies, the purpose's
current model and its latest drift check, and withdrawn subjects still in the purpose's derived
tables. ``attention`` says what a person should look at; a healthy lake has none.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq

from features import health
from jobs import consent, purge, withdrawals
from models import registry
from mydata import storage
from mydata.config import SESSION_TIME_ZONE, Settings
from mydata.engines import Engine, open_engine
from mydata.keys import KeyStore
from mydata.lake import Lake
from mydata.manifest import ingest_rows, latest_manifest, latest_matching


@dataclass(frozen=True)
class LakeStatus:
    root: str
    purpose: str
    runs: list[dict]  # per job: the latest run's status, when it finished, why it failed
    ingest: dict | None  # the latest succeeded ingest: records read, rows accepted and quarantined
    tables: dict[str, dict[str, int]]  # zone -> table -> rows
    ledger: dict  # events, head hash, verified, the problem found
    model: dict | None  # the purpose's current model and its latest drift check
    withdrawals: dict  # withdrawn subjects, and those still in derived tables
    release: dict | None  # the purpose's latest feature release and its blank features
    unfinished: dict[str, list[str]]  # publishes begun and not finished: run -> partitions
    attention: list[str]

    @property
    def healthy(self) -> bool:
        return not self.attention

    def as_dict(self) -> dict:
        return {**asdict(self), "healthy": self.healthy}


def latest_runs(lake: Lake) -> list[dict]:
    jobs = sorted(p.name for p in lake.manifests.iterdir() if p.is_dir()) if lake.manifests.is_dir() else []
    runs = []
    for job in jobs:
        if (m := latest_manifest(lake, job)) is not None:
            runs.append({"job": job, "status": m["status"], "run_id": m["run_id"],
                         "finished_at": m.get("finished_at"), "error": m.get("error")})
    return runs


def ingest_figures(lake: Lake) -> dict | None:
    m = latest_matching(lake, "ingest")
    if m is None:
        return None
    accepted, quarantined = ingest_rows(m)
    return {"run_id": m["run_id"], "records_read": sum(m["inputs"]["records_read"].values()),
            "rows_accepted": accepted, "rows_quarantined": quarantined,
            "quarantine_share": quarantined / (accepted + quarantined) if accepted + quarantined else 0.0}


def table_rows(lake: Lake) -> dict[str, dict[str, int]]:
    """Rows of every table in bronze, silver and gold, from the Parquet footers alone."""
    def rows(folder: Path) -> int:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in folder.rglob("*.parquet")
                   if not any(part.startswith((".", "_")) for part in f.relative_to(folder).parts))
    return {zone.name: {t.name: rows(t) for t in sorted(zone.iterdir()) if t.is_dir() and not t.name.startswith(("_", "."))}
            for zone in (lake.bronze, lake.silver, lake.gold) if zone.is_dir()}


def ledger_figures(engine: Engine, lake: Lake) -> dict:
    checked = consent.verify_ledger(engine, lake)
    return {"events": checked.events, "head": checked.head.hash, "verified": checked.ok,
            "problem": None if checked.ok else str(checked.problem), "pending": checked.pending}


def model_figures(lake: Lake, purpose: str) -> dict | None:
    version = registry.current_version(lake, purpose)
    if version is None:
        return None
    metadata = registry.get(lake, purpose, version).metadata
    drift = latest_matching(lake, "drift", purpose=purpose)
    return {"version": version, "created_at": metadata.get("created_at"), "k": metadata.get("metrics", {}).get("k"),
            "drift": None if drift is None else {"run_id": drift["run_id"], "retrain": drift["outputs"]["retrain"],
                                                 "drifted": drift["outputs"]["drifted"]}}


def withdrawal_figures(engine: Engine, settings: Settings, moment: datetime) -> dict:
    """Withdrawn subjects of the purpose, those a purge has still to remove, the time purges took,
    and any fusion run that used a subject after their withdrawal."""
    lake = settings.lake
    return withdrawals.honoured(engine, lake, KeyStore.open(settings), settings.purpose, purge.read_audit(lake), moment)


def release_figures(lake: Lake, purpose: str) -> dict | None:
    m = latest_matching(lake, "privacy", purpose=purpose)
    if m is None:
        return None
    return {"run_id": m["run_id"], "as_of": m["parameters"]["as_of"], "published": m["outputs"].get("published"),
            "blank_features": m["outputs"].get("blank_features", {})}


def needing_attention(status: dict) -> list[str]:
    said = [f"{r['job']}: the latest run failed ({r['error'] or 'no reason recorded'})"
            for r in status["runs"] if r["status"] == "failed"]
    if not status["ledger"]["verified"]:
        said.append(f"consent ledger: does not verify: {status['ledger']['problem']}")
    if status["ledger"].get("pending"):
        said.append(f"consent ledger: {status['ledger']['pending']:,} delivered event(s) are not in it yet: run "
                    "`mydata consent append` (were they cut from its end, only an export of the heads to write-once "
                    "storage would tell: docs/stages/consent.md)")
    if status["model"] and status["model"]["drift"] and status["model"]["drift"]["retrain"]:
        said.append(f"model {status['model']['version']}: drift calls for retraining "
                    f"(drifted: {', '.join(status['model']['drift']['drifted'])})")
    if (pending := status["withdrawals"])["not_purged"]:
        said.append(f"{pending['not_purged']} withdrawn subject(s) still in {', '.join(pending['tables'])} "
                    f"({pending['rows']} rows): run `mydata --purpose {status['purpose']} purge`")
    said += withdrawals.violations_said([f for f in pending.get("used_after_withdrawal", []) if f["in_snapshot"]])
    for run, partitions in status["unfinished"].items():
        said.append(f"an unfinished publish of run {run} ({len(partitions)} partition(s)): readers may see a mix of "
                    "old and new; the next writing stage finishes it (or run `mydata recover`)")
    if status["release"] and (blank := status["release"]["blank_features"]):
        said.append(f"feature release as of {status['release']['as_of']}: {len(blank)} feature(s) blank for every "
                    f"subject: {health.named(blank)}; see the catalog")
    return said


def run(settings: Settings, moment: datetime | None = None) -> LakeStatus:
    """The status of ``settings``' lake for ``settings.purpose``, as of now (or ``moment``)."""
    lake, purpose = settings.lake, settings.purpose
    engine = open_engine(settings)
    try:
        figures = {"root": str(lake.root), "purpose": purpose, "runs": latest_runs(lake),
                   "ingest": ingest_figures(lake), "tables": table_rows(lake),
                   "ledger": ledger_figures(engine, lake), "model": model_figures(lake, purpose),
                   "release": release_figures(lake, purpose),
                   "unfinished": storage.unfinished(lake.publish_journal),
                   "withdrawals": withdrawal_figures(engine, settings,
                                                     moment or datetime.now(ZoneInfo(SESSION_TIME_ZONE)))}
    finally:
        engine.close()
    return LakeStatus(**figures, attention=needing_attention(figures))
