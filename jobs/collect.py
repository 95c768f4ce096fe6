"""Collect one source's delivery of a day from every registered holder's MyData API.

Reads the holder registry, each holder's Airflow connection (``mydata_holder_<org_code>``: base
URL as host, client id as login, client secret as password), and the consent ledger (whom to
collect: subjects with valid consent for the source at the delivery date, under any purpose);
writes ``landing/<source>/dt=<date>/<org_code>.jsonl`` per holder, ``_SUCCESS`` once every holder
has landed, a manifest and a report per source and day. Holders already landed are not fetched
again unless ``refetch``.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date

from jobs import consent
from jobs.stage import StageResult, stage_run
from mydata import progress
from mydata.collect.collector import HolderConnection, Limits, collect, mark_complete
from mydata.config import PURPOSES, ConfigError, Settings
from mydata.engines import Engine
from mydata.holders import HolderRegistry
from mydata.lake import Lake
from mydata.lock import writes_lake
from render.collect import write_report

JOB = "collect"
SOURCES = ("bank", "card", "telecom")


def connection_id(org_code: str) -> str:
    return f"mydata_holder_{org_code.lower()}"


def airflow_connection(source: str, org_code: str) -> HolderConnection:
    """The holder's connection from Airflow (its metadata DB, a secrets backend, or AIRFLOW_CONN_*)."""
    from airflow.sdk import BaseHook

    found = BaseHook.get_connection(connection_id(org_code))
    scheme = found.schema or "http"
    base = found.host if "://" in (found.host or "") else f"{scheme}://{found.host}"
    allowed = {k: v for k, v in (found.extra_dejson or {}).items() if k in ("concurrency", "calls_per_second")}
    return HolderConnection(source, org_code, base.rstrip("/") + (f":{found.port}" if found.port else ""),
                            found.login or "", found.password or "", Limits(**allowed))


def consented_subjects(engine: Engine, lake: Lake, source: str, dt: date) -> list[tuple[str, int]]:
    """(link key, key version) of every subject with valid consent for ``source`` at ``dt``, any purpose."""
    if not engine.parquet("ledger", lake.ledger):
        return []
    d = engine.dialect
    states = " UNION ".join(f"SELECT link_key, key_version FROM ({consent.consent_states_sql(d, 'ledger', p, dt)}) s "
                            f"WHERE state = 'valid' AND source = {d.lit(source)}" for p in PURPOSES)
    found = engine.rows(f"SELECT link_key, key_version FROM ({states}) u ORDER BY link_key, key_version")
    engine.drop("ledger")
    return [(r["link_key"], int(r["key_version"])) for r in found]


@writes_lake("collect")
def run(settings: Settings, source: str, connections: Callable[[str, str], HolderConnection] = airflow_connection,
        limits: Limits | None = None, refetch: bool = False) -> StageResult:
    """Collect ``source``'s delivery of ``settings.delivery_date`` from every registered holder."""
    if source not in SOURCES:
        raise ConfigError(f"collect: source must be one of {', '.join(SOURCES)}, got {source!r}")
    if settings.delivery_date is None:
        raise ConfigError("collect needs a delivery date (--dt YYYY-MM-DD or MYDATA_DT)")
    lake, dt = settings.lake, settings.delivery_date
    holders = [h for h in HolderRegistry.open(settings).holders() if h.source == source and h.since <= dt]
    with stage_run(settings, JOB, source=source, dt=dt.isoformat(), refetch=refetch) as run:
        manifest = run.manifest
        subjects = consented_subjects(run.engine, lake, source, dt)
        run.close_engine()
        manifest.inputs = {"subjects": len(subjects), "holders": [h.org_code for h in holders]}
        manifest.outputs = {"holders": {}, "complete": False}
        for holder in holders:
            with progress.step("collect", f"{source} {holder.org_code}", unit="subjects", total=len(subjects)) as shown:
                done = collect(lake.landing, connections(source, holder.org_code), dt, subjects, limits,
                               refetch=refetch)
                shown.advance(len(subjects) if not done["skipped"] else 0)
            manifest.outputs["holders"][holder.org_code] = {k: v for k, v in done.items() if k != "file"}
        if holders:
            mark_complete(lake.landing, source, dt)
            manifest.outputs["complete"] = True
        manifest.outputs["report"] = write_report(lake, manifest)
    return run.result()

