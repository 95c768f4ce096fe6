"""The collection DAG through `airflow dags test`, against three holder simulators on loopback with
every fault on: what lands is what was served, refusals are failed collections, ingest reconciles."""
from __future__ import annotations

import json
import shutil
import urllib.parse
from datetime import date

import pytest

from jobs import consent, ingest
from jobs.collect import connection_id
from mydata.airflow_runner import dags_test
from mydata.config import Settings
from mydata.devtools.simulator import REFUSED_RSP_CODE, Faults, HolderSimulator, busiest_holder
from mydata.holders import Holder, HolderRegistry
from mydata.manifest import latest_manifest
from tests.holders import FAILED_CODES, FAULTS, kept


@pytest.mark.slow
def test_the_collect_dag_lands_what_the_holders_served(make_landing, tmp_path, monkeypatch):
    holders, summary = make_landing(tmp_path / "holders", subjects=80, months=2, seed=5, defect_rate=0.0,
                                    key_mismatch_rate=0.0)
    dt = summary.deliveries[-1]
    lake = Settings(data_root=tmp_path / "lake", max_quarantine_rate=0.5)
    for source in ("consent", "customer", "telecom_usage"):  # what arrives without the APIs
        shutil.copytree(holders.lake.landing / source, lake.lake.landing / source)
    ingest.run(lake)
    consent.run(lake)  # whom to collect: the ledger's consents
    registry = HolderRegistry.open(lake)
    simulators = {}
    for source in ("bank", "card", "telecom"):
        org = busiest_holder(holders.lake.landing / source / f"dt={dt}")
        registry.add(Holder(source, org, f"{source} holder", date(2026, 1, 1)))
        simulator = simulators[source] = HolderSimulator(holders.lake.landing, source, org, dt, faults=FAULTS,
                                                         token_lifetime=5.0).start()
        simulator.faults = Faults(**{**FAULTS.__dict__, "refused_subjects": frozenset(simulator.subjects[:2])})
        secret = urllib.parse.quote(simulator.client_secret, safe="")
        monkeypatch.setenv(f"AIRFLOW_CONN_{connection_id(org).upper()}",
                           f"http://{simulator.client_id}:{secret}@127.0.0.1:{simulator.server.server_address[1]}")
    try:
        log = tmp_path / "collect.log"
        result = dags_test(lake, "mydata_collect", date.fromisoformat(dt), log=log)
    finally:
        for simulator in simulators.values():
            simulator.stop()
    text = log.read_text(encoding="utf-8")
    assert result.returncode == 0, text[-3000:]
    refused = 0
    for source, simulator in simulators.items():
        delivery = lake.lake.landing / source / f"dt={dt}"
        assert (delivery / "_SUCCESS").is_file()
        landed = [json.loads(line) for line in open(delivery / f"{simulator.org_code}.jsonl", encoding="utf-8")]
        assert kept(r for r in landed if r["response"]["rsp_code"] == "00000") == kept(simulator.served), source
        failed = [r for r in landed if r["response"]["rsp_code"] != "00000"]
        # the refused subjects, and any call whose every attempt hit a fault (the collector's C0 codes)
        assert {r["response"]["rsp_code"] for r in failed} <= FAILED_CODES
        assert {r["link_key"] for r in failed if r["response"]["rsp_code"] == REFUSED_RSP_CODE} \
            == set(simulator.subjects[:2]) & {r["link_key"] for r in landed}
        refused += len(failed)
        collected = latest_manifest(lake.lake, "collect")
        assert collected["status"] == "succeeded"
    assert refused > 0 and all(s.client_secret not in text for s in simulators.values())  # none in the log
    landed_text = "".join(p.read_text(encoding="utf-8") for p in lake.lake.landing.glob("*/dt=*/*.jsonl"))
    tokens = [token for s in simulators.values() for token in s.tokens]
    assert tokens and not any(token in text or token in landed_text for token in tokens)  # nor any token
    ingested = ingest.run(lake)
    assert ingested["failed_collections"] == refused and ingested["rows_quarantined"] == 0
    manifest = latest_manifest(lake.lake, "ingest")
    assert all(e["balanced"] for by_dt in manifest["outputs"]["reconciliation"].values() for e in by_dt.values())
    front = (lake.lake.reports / "index.html").read_text(encoding="utf-8")  # the data-engineering group
    assert f"telecom on {dt}: 1 holder(s), " in front and 'href="collect/collect-' in front
