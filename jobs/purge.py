"""Withdrawal purge: every subject whose consent for a purpose is withdrawn (for any fused source)
leaves every derived table of that purpose in one run.

Derived tables are found, not listed: any ``silver/<table>/purpose=<p>/`` or
``gold/<table>/purpose=<p>/`` whose partitions carry a ``pseudonym`` column, so tables added
later (features, segment assignments) are purged without changing this job. Only partitions
holding a withdrawn subject are rewritten, each atomically. What was purged (pseudonyms and row
counts, never link keys) is appended to ``consent/purge_audit.jsonl``.
"""
from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa

from jobs import consent
from jobs.pseudonym import pseudonym_sql, register_keys
from jobs.stage import StageResult, StageRun, stage_run
from mydata import progress, storage
from mydata.config import SESSION_TIME_ZONE, Settings
from mydata.engines import Engine
from mydata.keys import KeyStore
from mydata.lake import Lake
from mydata.lock import writes_lake
from mydata.manifest import json_text
from schemas.dialects import Dialect
from schemas.silver import FUSED_SOURCES

JOB = "purge"


def withdrawn_sql(d: Dialect, states: str) -> str:
    """(link_key, key_version) whose latest event for some fused source is a withdrawal, and since
    when (the earliest such withdrawal still in force)."""
    fused = ", ".join(d.lit(s) for s in FUSED_SOURCES)
    return (f"SELECT link_key, key_version, min(event_time) AS withdrawn_at FROM {states} "
            f"WHERE state = 'withdrawn' AND source IN ({fused}) GROUP BY link_key, key_version")


def pseudonyms_sql(d: Dialect, withdrawn: str, keys: list[str]) -> str:
    """The pseudonyms of ``withdrawn`` under every purpose key in ``keys`` (a table may still be keyed
    with an older purpose secret: every version's pseudonyms go), with their ``withdrawn_at``."""
    return " UNION ".join(f"SELECT {pseudonym_sql(d, 'w.link_key', 'k')} AS pseudonym, w.withdrawn_at "
                          f"FROM {withdrawn} w CROSS JOIN {name} k" for name in keys)


def withdrawn_since(engine: Engine, pseudonyms: list[str]) -> dict[str, str]:
    """When each of ``pseudonyms`` (of the registered ``purged_pseudonyms``) withdrew, ISO 8601."""
    if not pseudonyms:
        return {}
    engine.arrow("found_pseudonyms", pa.table({"pseudonym": pseudonyms}))
    rows = engine.rows("SELECT p.pseudonym, min(p.withdrawn_at) AS withdrawn_at FROM purged_pseudonyms p "
                       "JOIN found_pseudonyms f ON f.pseudonym = p.pseudonym GROUP BY p.pseudonym")
    engine.drop("found_pseudonyms")
    return {r["pseudonym"]: r["withdrawn_at"].isoformat() for r in rows}


def hits_sql(table: str, key: str, pseudonyms: str) -> str:
    """Rows of ``pseudonyms`` per partition (``key``) and pseudonym in ``table``."""
    return (f"SELECT CAST({key} AS STRING) AS part, pseudonym, count(*) AS n FROM {table} "
            f"WHERE pseudonym IN (SELECT pseudonym FROM {pseudonyms}) GROUP BY {key}, pseudonym")


def kept_sql(table: str, columns: list[str], key: str, value: str, pseudonyms: str) -> str:
    """One partition of ``table`` without the rows of ``pseudonyms``."""
    return (f"SELECT {', '.join(columns)} FROM {table} t WHERE {key} = DATE '{value}' AND NOT EXISTS "
            f"(SELECT 1 FROM {pseudonyms} p WHERE p.pseudonym = t.pseudonym)")


def derived_partitions(lake: Lake, purpose: str) -> list[tuple[str, Path]]:
    """(table, partition folder) of every derived table of ``purpose``: ``<zone>/<table>/purpose=<p>/<key>=<v>``."""
    found = []
    for zone in (lake.silver, lake.gold):
        for table in sorted(p for p in zone.iterdir() if p.is_dir()) if zone.is_dir() else []:
            folder = table / f"purpose={purpose}"
            for partition in sorted(folder.glob("*=*")) if folder.is_dir() else []:
                if partition.is_dir() and any(partition.glob("*.parquet")):
                    found.append((f"{zone.name}/{table.name}", partition))
    return found


def table_hits(engine: Engine, name: str, folder: Path, pseudonyms: str) -> dict[Path, dict[str, int]]:
    """Rows of ``pseudonyms`` per partition and pseudonym in one table (``<zone>/<table>/purpose=<p>``,
    registered as ``name``); none for a table without a ``pseudonym`` column."""
    if not engine.parquet(name, folder) or "pseudonym" not in engine.columns(name):
        return {}
    key = next(part.name.split("=", 1)[0] for part in folder.glob("*=*"))
    hits: dict[Path, dict[str, int]] = {}
    for row in engine.rows(hits_sql(name, key, pseudonyms)):
        hits.setdefault(folder / f"{key}={row['part']}", {})[row["pseudonym"]] = int(row["n"])
    return hits


def purge_table(engine: Engine, name: str, folder: Path, pseudonyms: str, run_id: str
                ) -> tuple[dict[Path, dict[str, int]], list[storage.Staged]]:
    """Stage the partitions of one table (``<zone>/<table>/purpose=<p>``, registered as ``name``)
    that hold any of ``pseudonyms``, each without them: rows removed per partition and pseudonym,
    and the staged rewrites (published with the audit, all or none)."""
    hits = table_hits(engine, name, folder, pseudonyms)
    if not hits:
        return {}, []
    columns, key = engine.columns(name), next(iter(hits)).name.split("=", 1)[0]
    values = sorted(partition.name.split("=", 1)[1] for partition in hits)
    return hits, [engine.stage(kept_sql(name, columns, key, value, pseudonyms), folder, [date.fromisoformat(value)],
                               run_id, key=key) for value in values]


def read_audit(lake: Lake) -> list[dict]:
    path = lake.purge_audit
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if path.is_file() else []


def register_withdrawn(engine: Engine, lake: Lake, keystore: KeyStore, purpose: str, moment: datetime) -> int:
    """Register ``purged_pseudonyms`` (the withdrawn subjects under every purpose key version);
    return how many subjects have withdrawn."""
    d = engine.dialect
    engine.parquet("ledger", lake.ledger)
    engine.view("consent_states", consent.consent_states_sql(d, "ledger", purpose, moment))
    engine.table("withdrawn", withdrawn_sql(d, "consent_states"))
    keys = []
    for version in keystore.purpose_versions(purpose):
        register_keys(engine, f"purpose_keys_{version}", keystore.purpose_secret(purpose, version))
        keys.append(f"purpose_keys_{version}")
    engine.table("purged_pseudonyms", pseudonyms_sql(d, "withdrawn", keys))
    return int(engine.rows("SELECT count(*) AS n FROM withdrawn")[0]["n"])


@writes_lake("purge")
def run(settings: Settings, spark=None, moment: datetime | None = None) -> StageResult:
    """Purge withdrawn subjects of ``settings.purpose`` from silver and gold, as of now (or ``moment``)."""
    moment = moment or datetime.now(ZoneInfo(SESSION_TIME_ZONE))
    with stage_run(settings, JOB, spark=spark, purpose=settings.purpose, moment=moment.isoformat(),
                   engine=settings.engine) as run:
        figures = _purge(run, moment)
    return run.result(**figures)


def _purge(run: StageRun, moment: datetime) -> dict:
    """Find every withdrawn subject's rows in every derived partition, rewrite those partitions, and
    land the rewrites, the audit line and the manifest in one journaled publish."""
    settings, lake, manifest = run.settings, run.lake, run.manifest
    purpose = settings.purpose
    keystore = KeyStore.open(settings)
    versions = keystore.purpose_versions(purpose)
    partitions = derived_partitions(lake, purpose)
    tables = sorted({partition.parent for _, partition in partitions})
    hits_of: dict[Path, dict[str, int]] = {}
    withdrawn_count, found, since, staged = 0, [], {}, []
    engine = run.engine
    try:
        if partitions and storage.has_data(lake.ledger):
            withdrawn_count = register_withdrawn(engine, lake, keystore, purpose, moment)
            # tables side by side; each table's partitions one after another (they share its folder)
            with progress.step("purge", purpose, unit="tables", total=len(tables)) as shown:
                for hits, writes in engine.concurrently([(purge_table, engine, f"derived_{i}", folder,
                                                          "purged_pseudonyms", manifest.run_id)
                                                         for i, folder in enumerate(tables)]):
                    hits_of.update(hits)
                    staged += writes
                    shown.advance(rows=sum(n for by_key in hits.values() for n in by_key.values()))
            found = sorted({p for hits in hits_of.values() for p in hits})
            since = withdrawn_since(engine, found)  # the withdrawal SLA's start, per subject removed
    except BaseException:
        storage.discard(staged)
        raise
    run.close_engine()
    removed = {f"{table}/{partition.name}": sum(hits_of[partition].values())
               for table, partition in partitions if hits_of.get(partition)}
    entry = {"run_id": manifest.run_id, "at": moment.isoformat(), "purpose": purpose,
             "purpose_key_versions": versions, "withdrawn_subjects": withdrawn_count,
             "rows_removed": removed, "pseudonyms": found, "withdrawn_at": since}
    manifest.inputs = {"partitions_checked": len(partitions), "withdrawn_subjects": withdrawn_count}
    manifest.outputs = {"rows_removed": removed, "rows_removed_total": sum(removed.values()),
                        "pseudonyms_purged": len(found), "audit": str(lake.purge_audit) if removed else None}
    if removed:  # the audit line lands with the rewrites it describes: a kill leaves both or neither
        before = lake.purge_audit.read_text(encoding="utf-8") if lake.purge_audit.is_file() else ""
        staged.append(storage.stage_file(lake.purge_audit, before + json.dumps(entry, ensure_ascii=False) + "\n",
                                         manifest.run_id))
    staged.append(storage.stage_file(lake.manifest(JOB, manifest.run_id), json_text(manifest.finished()),
                                     manifest.run_id))
    try:
        storage.publish(staged, journal=lake.publish_journal)
    finally:
        storage.discard(staged)
    manifest.landed(lake)
    return {}


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load()), file=sys.stdout)
