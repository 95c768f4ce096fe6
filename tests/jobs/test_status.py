"""`mydata status`: the lake at a glance, and what needs attention."""
from __future__ import annotations

import json
import shutil

import pytest

import cli
from jobs import consent, ingest, status
from mydata.config import Settings

LK = "A" * 43


def test_a_lake_whose_ingest_failed_needs_attention_and_the_command_exits_1(tmp_path, capsys):
    folder = tmp_path / "landing" / "card" / "dt=2026-11-01"
    folder.mkdir(parents=True)
    line = {"link_key": LK, "key_version": 1, "org_code": "D999999999", "api": "card.bills", "x_api_tran_id": "T1",
            "collected_at": "20261101093015", "request": {},
            "response": {"rsp_code": "00000", "rsp_msg": "ok", "bill_cnt": 0, "bill_list": []}}
    (folder / "part-0.jsonl").write_text(json.dumps(line) + "\n", encoding="utf-8")
    (folder / "_SUCCESS").touch()
    with pytest.raises(ingest.IngestFailed):
        ingest.run(Settings(data_root=tmp_path))

    found = status.run(Settings(data_root=tmp_path))
    assert [(r["job"], r["status"]) for r in found.runs] == [("ingest", "failed")]
    assert not found.healthy and len(found.attention) == 1
    assert found.attention[0].startswith("ingest: the latest run failed (HoldersRefused: 1 unregistered holder(s), "
                                         "nothing of this run was ingested: card delivery dt=2026-11-01: "
                                         "org_code D999999999 is not a registered card holder")
    assert found.ingest is None and found.model is None and found.ledger["verified"]

    assert cli.main(["--data-root", str(tmp_path), "status"]) == 1
    shown = capsys.readouterr().out
    assert "ingest     failed" in shown and "needs attention:\n  - ingest: the latest run failed" in shown
    assert cli.main(["--data-root", str(tmp_path), "status", "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["healthy"] is False and document["runs"][0]["status"] == "failed"


def test_a_fused_lake_is_healthy_until_its_ledger_loses_its_anchors(fused, tmp_path, capsys):
    settings, _ = fused
    shutil.copytree(settings.data_root, tmp_path / "lake")
    settings = settings.replace(data_root=tmp_path / "lake", purpose="marketing")

    found = status.run(settings)
    assert found.healthy, found.attention
    assert {r["job"] for r in found.runs} >= {"ingest", "consent", "fuse"}
    assert found.ledger["verified"] and found.ledger["events"] > 0
    assert found.tables["silver"]["subjects"] > 0 and found.tables["bronze"]["consent_events"] == found.ledger["events"]
    assert 0 < found.ingest["quarantine_share"] < 0.05
    assert cli.main(["--data-root", str(settings.data_root), "status"]) == 0
    assert "healthy: nothing needs attention" in capsys.readouterr().out

    consent.anchors_path(settings.lake).unlink()
    found = status.run(settings)
    assert [said.split(":")[0] for said in found.attention] == ["consent ledger"]
    assert "anchors" in found.attention[0] and "missing" in found.attention[0]
