"""Collecting from holders' MyData APIs against the simulator on loopback, every fault on: what
lands is what was served, the refusals land as failed collections, and ingest reconciles it."""
from __future__ import annotations

import json
from datetime import date

import pytest

from jobs import ingest
from mydata.collect.collector import HolderConnection, Limits, collect, mark_complete, period
from mydata.config import Settings
from mydata.devtools.simulator import REFUSED_RSP_CODE, Faults, HolderSimulator, busiest_holder
from mydata.holders import Holder, HolderRegistry
from mydata.manifest import latest_manifest
from tests.holders import FAILED_CODES, FAULTS, kept


def test_a_delivery_asks_for_the_month_before_it():
    assert period(date(2026, 1, 1)) == {
        "from_dtime": "20251201000000", "to_dtime": "20251231235959", "from_date": "20251201",
        "to_date": "20251231", "from_month": "202512", "to_month": "202512", "charge_month": "202512"}


@pytest.fixture(scope="module")
def holders_landing(make_landing, tmp_path_factory):
    """What the holders hold: a generated landing zone, defect-free (a holder serves good records)."""
    settings, summary = make_landing(tmp_path_factory.mktemp("holders"), subjects=80, months=2, seed=5,
                                     defect_rate=0.0, key_mismatch_rate=0.0)
    return settings, summary.deliveries[-1]


@pytest.mark.slow
def test_every_fault_on_what_lands_is_what_was_served_and_ingest_reconciles_it(holders_landing, tmp_path):
    holders, dt = holders_landing
    lake = Settings(data_root=tmp_path / "lake", max_quarantine_rate=0.2)
    registry = HolderRegistry.open(lake)
    for source in ("bank", "card", "telecom"):
        org = busiest_holder(holders.lake.landing / source / f"dt={dt}")
        registry.add(Holder(source, org, f"{source} holder", date(2026, 1, 1)))
        with HolderSimulator(holders.lake.landing, source, org, dt, faults=FAULTS, token_lifetime=5.0) as holder:
            holder.faults = Faults(**{**FAULTS.__dict__, "refused_subjects": frozenset(holder.subjects[:2])})
            connection = HolderConnection(source, org, holder.url, holder.client_id, holder.client_secret)
            done = collect(lake.lake.landing, connection, date.fromisoformat(dt),
                           [(subject, 1) for subject in holder.subjects], Limits(page_size=5, backoff=0.005))
            landed = [json.loads(line) for line in open(done["file"], encoding="utf-8")]
            assert kept(r for r in landed if r["response"]["rsp_code"] == "00000") == kept(holder.served), source
            failed = [r for r in landed if r["response"]["rsp_code"] != "00000"]
            # the refused subjects, and any call whose every attempt hit a fault (the collector's C0 codes)
            assert {r["response"]["rsp_code"] for r in failed} <= FAILED_CODES
            assert {r["link_key"] for r in failed if r["response"]["rsp_code"] == REFUSED_RSP_CODE} \
                == set(holder.subjects[:2]), source
            assert done["retries"] > 0 and done["throttles"] > 0 and done["token_refreshes"] > len(holder.subjects)
            assert len({r["x_api_tran_id"] for r in landed}) == len(landed)
            assert all(len(r["x_api_tran_id"]) == 25 for r in landed)
            again = collect(lake.lake.landing, connection, date.fromisoformat(dt), [], Limits())
            assert again["skipped"]  # a rerun of the day does not fetch what landed
            stale = lake.lake.landing / source / "_collecting" / f"dt={dt}" / f"{org}.dead.jsonl"
            stale.write_text('{"half": ', encoding="utf-8")  # a killed run's file, never in the delivery
            asked = collect(lake.lake.landing, connection, date.fromisoformat(dt), [(holder.subjects[-1], 1)],
                            Limits(), refetch=True)  # asked: the day is collected again
            assert not asked["skipped"] and asked["subjects"] == 1 and not stale.exists()

        mark_complete(lake.lake.landing, source, date.fromisoformat(dt))
    assert not list(lake.lake.landing.glob("*/_collecting/*/*"))  # nothing partial left aside

    refused_total = sum(json.loads(line)["response"]["rsp_code"] != "00000"
                        for path in lake.lake.landing.glob("*/dt=*/*.jsonl") for line in open(path, encoding="utf-8"))
    ingested = ingest.run(lake)
    manifest = latest_manifest(lake.lake, "ingest")
    assert ingested["failed_collections"] == refused_total and ingested["rows_quarantined"] == 0
    assert sum(e.get("lines_quarantined", 0) for by_dt in manifest["outputs"]["reconciliation"].values()
               for e in by_dt.values()) == 0  # every page, next_page and all, is a valid response
    assert all(e["balanced"] for by_dt in manifest["outputs"]["reconciliation"].values() for e in by_dt.values())
