"""The front page: every kind of run under its role, newest first, its status and figures, and
links (relative) only to what exists."""
import re

from mydata.config import Settings
from mydata.manifest import RunManifest
from render import front, html


def _finish(lake, job: str, started: str, status: str = "succeeded", **fields) -> RunManifest:
    manifest = RunManifest.start(job, purpose="marketing", as_of="2026-11-01")
    manifest.started_at = started
    for name, value in fields.items():
        setattr(manifest, name, value)
    manifest.finish(lake, status)
    return manifest


def test_runs_show_under_their_role_newest_first_with_figures_and_links(tmp_path):
    lake = Settings(data_root=tmp_path).lake
    tables = {"card_bills": {"2026-11-01": {"accepted": 990, "quarantined": 10}}}
    old = _finish(lake, "ingest", "2026-11-01T01:00:00", inputs={"deliveries": ["card dt=2026-11-01"]},
                  outputs={"tables": tables}, quarantined={"card_bills": {"amount.not_negative": 10}})
    report = html.write_page(lake.report("ingest") / f"{old.run_id}.html", html.page("ingest", {}, []))
    new = _finish(lake, "ingest", "2026-11-02T01:00:00", "failed", error="IngestFailed: quarantine gate")
    _finish(lake, "fuse", "2026-11-02T02:00:00",
            outputs={"subjects_fused": 1_234, "linkage": {"fused": 1_234, "no_consent": 66}})

    text = front.refresh(lake).read_text(encoding="utf-8")
    assert [m.group(1) for m in re.finditer(r'<h2 class="role">([^<]+)</h2>', text)] == list(front.ROLES)
    assert text.index("Ingest runs") < text.index("Linkage") and "Data science" in text
    ingest = text[text.index("<h3>Ingest runs</h3>"):text.index("<h3>Quarantine")]
    assert ingest.index(new.run_id) < ingest.index(old.run_id)  # newest first
    assert "FAILED" in ingest and "IngestFailed: quarantine gate" in ingest
    assert "990 rows accepted, 10 quarantined (1.00%) from 1 deliveries" in ingest
    assert f'href="ingest/{report.name}"' in ingest  # relative, so the folder can move
    assert f'href="ingest/{new.run_id}.html"' not in ingest  # the failed run has no page: no dead link
    assert f'href="../manifests/ingest/{new.run_id}.json"' in ingest
    assert "card_bills: amount.not_negative 10" in text
    assert "marketing as of 2026-11-01: 1,234 subjects fused (left out: no_consent 66)" in text
    assert "not succeeded: ingest" in text  # the latest ingest failed


def test_older_runs_are_counted_not_listed(tmp_path):
    lake = Settings(data_root=tmp_path).lake
    for day in range(1, front.SHOWN + 4):
        _finish(lake, "score", f"2026-11-{day:02d}T00:00:00", outputs={"rows": day})
    text = front.refresh(lake).read_text(encoding="utf-8")
    assert text.count("subjects scored") == front.SHOWN + 1  # the shelf's and the glance's latest
    assert "3 older runs are in manifests/score/." in text
