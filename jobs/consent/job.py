"""Consent: bronze consent events appended in chain order to the append-only ledger, each
delivery verified before it lands (reads ``bronze/consent_events``, writes ``consent/ledger``,
``consent/anchors.json`` and the run manifest, in one journaled publish)."""
from __future__ import annotations

from typing import Any

from jobs.consent.ledger import (
    JOB,
    ConsentChainBroken,
    anchors_path,
    delivery_in_chain_order,
    first_break,
    ledger_head,
    ledger_path,
    read_anchors,
)
from jobs.consent.verify import verify_ledger
from jobs.stage import StageResult, stage_run
from mydata import progress, storage
from mydata.config import Settings
from mydata.engines import Engine
from mydata.lake import Lake
from mydata.lock import writes_lake
from mydata.manifest import RunManifest, json_text


def append(engine: Engine, lake: Lake, manifest: RunManifest) -> dict:
    """Append every bronze consent delivery not yet in the ledger, oldest first, each verified; the
    ledger partitions, their signed heads and the run's manifest land in one journaled publish,
    so a run killed at any point leaves all of them or none (the next writer finishes it)."""
    from mydata.keys import KeyStore, sign_head

    keystore = KeyStore.open(Settings(data_root=lake.root))
    verification = verify_ledger(engine, lake, keystore, ingested=False)
    if not verification.ok:
        raise ConsentChainBroken(f"the consent ledger does not verify at {verification.problem}; "
                                 "nothing appended until a reviewer acts")
    has_bronze = engine.parquet("consent_bronze", lake.bronze_table("consent_events"))
    done = ({r["dt"] for r in engine.rows("SELECT DISTINCT dt FROM ledger_done")}
            if engine.parquet("ledger_done", ledger_path(lake)) else set())
    pending = sorted({r["dt"] for r in engine.rows("SELECT DISTINCT dt FROM consent_bronze")} - done) if has_bronze else []
    head, anchors = verification.head, read_anchors(lake)
    appended: dict[str, int] = {}
    held: dict[str, str] = {}
    staged: list[storage.Staged] = []
    with progress.step("consent", "append", unit="deliveries", total=len(pending)) as shown:
        for dt in pending:
            if held:  # nothing after a broken delivery is trusted
                held[dt.isoformat()] = "not appended: an earlier delivery broke the chain"
                shown.advance()
                continue
            engine.table("delivery", f"SELECT * FROM consent_bronze WHERE dt = DATE '{dt.isoformat()}'")
            problem = delivery_in_chain_order(engine, "delivery", head, "ordered")
            if problem is None:
                problem = first_break(engine, "ordered", head.hash, head.events)
            if problem is not None:
                held[dt.isoformat()] = f"chain breaks at {problem}"
                engine.drop("ordered", "chain_positions", "delivery")
                shown.advance()
                continue
            count = engine.rows("SELECT count(*) AS n FROM ordered")[0]["n"]
            staged.append(engine.stage("SELECT * FROM ordered", ledger_path(lake), [dt], manifest.run_id))
            head = ledger_head(engine, "ordered")
            appended[dt.isoformat()] = count
            anchors.append(sign_head(keystore, {**head.as_dict(), "dt": dt.isoformat(), "run_id": manifest.run_id}))
            engine.drop("ordered", "chain_positions", "delivery")
            shown.advance(rows=count)
    engine.drop("consent_bronze", "ledger_done")
    result = {"appended": appended, "held": held, "head": anchors[-1] if appended else verification.head.as_dict(),
              "verified_before": verification.events}
    manifest.inputs = {"bronze": "consent_events", "verified_events": result["verified_before"]}
    manifest.outputs = {"appended": result["appended"], "ledger_head": result["head"]}
    manifest.notes += [f"consent dt={dt}: {why}" for dt, why in result["held"].items()]
    if appended:
        staged.append(storage.stage_file(anchors_path(lake), json_text(anchors), manifest.run_id))
    staged.append(storage.stage_file(lake.manifest(JOB, manifest.run_id),
                                     json_text(manifest.finished("failed" if held else "succeeded")), manifest.run_id))
    try:
        storage.publish(staged, journal=lake.publish_journal)
    finally:
        storage.discard(staged)  # nothing is left after a publish; a failed one leaves no staging
    return result


@writes_lake(JOB)
def run(settings: Settings, spark: Any = None) -> StageResult:
    """Append new consent deliveries to the ledger on the configured engine; fails (and says where)
    when a chain breaks."""
    with stage_run(settings, JOB, spark=spark, engine=settings.engine) as run:
        result = append(run.engine, run.lake, run.manifest)
    path = run.manifest.landed(run.lake)
    if result["held"]:
        first = next(iter(result["held"].items()))
        raise ConsentChainBroken(f"consent delivery dt={first[0]} {first[1]}; "
                                 f"{len(result['held'])} delivery(ies) held back; see {path}")
    return run.result(**result)
