"""A real Airflow DAG run (`airflow dags test`, SQLite, Spark local mode) over a generated
10,000-subject sample: every stage, and segments that find the generator's latent types again."""
import json
import re
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from cli.demo import print_summary
from jobs import status
from mydata import progress
from mydata.airflow_runner import RunProgress, dags_test
from mydata.config import Settings
from mydata.devtools.airflow_stack import start_ui, ui_login
from mydata.devtools.cluster import free_port
from mydata.devtools.synth import GenerationSummary
from mydata.devtools.synth.generator import REAL_SHAPES
from mydata.manifest import latest_manifest
from schemas.asof import default_as_of
from tests.browser import chromium


@pytest.fixture(scope="module")
def sample_10k(make_landing, tmp_path_factory):
    """10,000 subjects x 1 month with the default defect and re-keying rates, delivered as real holders
    deliver (collected on the delivery date, refreshed a week later, an operator without payments, late
    card records, negative bills)."""
    return make_landing(tmp_path_factory.mktemp("sample_10k"), subjects=10_000, months=1, seed=21, workers=2,
                        **REAL_SHAPES)


@dataclass
class DagRun:
    settings: Settings
    summary: GenerationSummary
    log: Path
    returncode: int
    said: list[tuple[float, str]]  # what the demo prints while the run goes on, and when
    started: float
    ended: float


@pytest.fixture(scope="module")
def dag_run(sample_10k, tmp_path_factory) -> DagRun:
    """The pipeline DAG's run over the sample, as `make demo` runs it."""
    settings, summary = sample_10k
    settings = settings.replace(shuffle_partitions=2)  # the tasks read it from MYDATA_SHUFFLE_PARTITIONS
    log = tmp_path_factory.mktemp("dag_run") / "dags-test.log"
    said: list[tuple[float, str]] = []
    started = time.monotonic()
    assert default_as_of(settings.lake.landing, date.today()) == date.fromisoformat(summary.deliveries[-1])
    result = dags_test(settings, "mydata_pipeline", date.fromisoformat(summary.deliveries[-1]),
                       conf={"dt": "", "truth": str(settings.lake.truth / "subjects.csv")}, log=log,
                       follow=RunProgress(progress.LineDisplay(lambda line: said.append((time.monotonic(), line)))))
    return DagRun(settings, summary, log, result.returncode, said, started, time.monotonic())


@pytest.mark.slow
def test_pipeline_dag_runs_end_to_end_through_airflow(dag_run, capsys):
    settings, summary, said, started, ended = (dag_run.settings, dag_run.summary, dag_run.said, dag_run.started,
                                               dag_run.ended)
    text = dag_run.log.read_text(encoding="utf-8")
    assert dag_run.returncode == 0, text[-3000:]
    assert "state=success" in text
    lines = [line for _, line in said]
    assert "airflow: inventory_landing started" in lines and "airflow: ingest started" in lines
    ended_tasks = [line for line in lines if line.startswith("airflow ")]
    assert ended_tasks and all(": success in " in line for line in ended_tasks), ended_tasks
    assert any(line.startswith("airflow purge: success in ") for line in lines)
    # the stages' own steps, relayed from the tasks' log: rows done and throughput
    assert any(re.match(r"  ingest card: (\d+)/\1 files, [\d,]+ rows, staged in .* rows/s\)$", line) for line in lines), lines
    assert any(line.startswith("  train kmeans k=") for line in lines), lines
    moments = [started, *(at for at, _ in said), ended]  # a line at least every 10 s (polled each 0.5 s)
    assert max(b - a for a, b in zip(moments, moments[1:])) <= 11, said
    manifest = latest_manifest(settings.lake, "landing")
    assert manifest["status"] == "succeeded"
    assert manifest["outputs"]["total_records"] == summary.total_records
    # every source's monthly delivery, bank's and telecom's refresh a week later, card's late records
    delivered = len(list(settings.lake.landing.glob("*/dt=*")))
    assert manifest["inputs"]["deliveries_complete"] == 6 * len(summary.deliveries) + 3 == delivered
    ingested = latest_manifest(settings.lake, "ingest")
    assert ingested["status"] == "succeeded"
    read = sum(e["records_read"] for by_dt in ingested["outputs"]["reconciliation"].values()
               for e in by_dt.values())
    assert read == summary.total_records
    validated = latest_manifest(settings.lake, "validate")
    assert validated["status"] == "succeeded"
    assert validated["outputs"]["ingest_run"] == ingested["run_id"]
    appended = latest_manifest(settings.lake, "consent")
    assert appended["status"] == "succeeded"
    assert appended["outputs"]["ledger_head"]["events"] == summary.records["consent"]
    fused = latest_manifest(settings.lake, "fuse")
    assert fused["status"] == "succeeded" and fused["parameters"]["as_of"] == summary.deliveries[-1]
    head = appended["outputs"]["ledger_head"]  # signed with the anchor secret
    assert head["signature"] and fused["inputs"]["consent_snapshot"]["ledger_head"] == {
        "events": head["events"], "hash": head["hash"]}
    assert fused["outputs"]["subjects_fused"] > 0
    assert latest_manifest(settings.lake, "features")["outputs"]["subjects"] == fused["outputs"]["subjects_fused"]
    released = latest_manifest(settings.lake, "privacy")
    assert released["status"] == "succeeded" and released["outputs"]["smallest_group"] >= 5
    # a delivery collected on its own date gives the state as of that date, for (almost) everyone
    health = released["outputs"]["feature_health"]
    for state in ("bank_accounts", "bank_balance_level", "telecom_lines", "bank_rate_mean"):
        assert health[state]["status"] == "ok" and health[state]["zero_share"] < 0.05, (state, health[state])
    assert 0.1 < health["telecom_paid_6m"]["null_share"] < 0.3  # the silent operator's subscribers
    assert released["outputs"]["blank_features"] == {}
    trained = latest_manifest(settings.lake, "train")  # no model yet: the segment task trains and promotes one
    assert trained["status"] == "succeeded" and trained["outputs"]["promoted"]
    assert trained["inputs"]["consent_snapshot"] == fused["inputs"]["consent_snapshot"]["id"]
    metrics = trained["outputs"]["metrics"]  # the quality bar, on the generator's ground truth
    assert metrics["ari_vs_latent_types"] >= 0.6 and metrics["subjects_with_truth"] == metrics["rows"]
    assert sum(s["size"] for s in trained["outputs"]["segments"]) == released["outputs"]["published"]
    scored = latest_manifest(settings.lake, "score")
    assert scored["status"] == "succeeded" and scored["inputs"]["model"] == trained["outputs"]["version"]
    assert scored["outputs"]["rows"] == released["outputs"]["published"] == sum(scored["outputs"]["sizes"].values())
    assert latest_manifest(settings.lake, "purge")["status"] == "succeeded"
    print_summary(settings)  # what `make demo` prints after its DAG run
    summary_text = capsys.readouterr().out
    for line in ("rows accepted", "subjects fused (left out: ", "subjects published", "k=5 reached",
                 f"segment: model marketing {trained['outputs']['version']}", "profile ", "privacy report ",
                 "consent review: ledger verifies (", "fuse: marketing as of ", f"by role: {settings.lake.reports / 'index.html'}"):
        assert line in summary_text, line
    assert all(s["label"] in summary_text for s in trained["outputs"]["segments"])
    # the lake the DAG left is healthy, as `mydata status` tells it
    found = status.run(settings)
    assert found.healthy, found.attention
    assert {r["job"] for r in found.runs} >= {"landing", "ingest", "validate", "consent", "fuse", "features",
                                              "privacy", "train", "score", "purge", "consent_review"}
    assert found.model["version"] == trained["outputs"]["version"] and found.ledger["verified"]
    assert found.ingest["records_read"] == summary.total_records


@pytest.mark.slow
def test_the_front_page_links_every_report_and_shows_the_runs_figures(dag_run):
    """reports/index.html in a real browser: the three roles, the run's figures, every link loads."""
    from selenium.webdriver.common.by import By

    lake = dag_run.settings.lake
    assert dag_run.returncode == 0
    ingested, fused, released, trained, reviewed = (latest_manifest(lake, job) for job in (
        "ingest", "fuse", "privacy", "train", "consent_review"))
    accepted = sum(v["accepted"] for t in ingested["outputs"]["tables"].values() for v in t.values())
    with chromium() as browser:
        browser.get((lake.reports / "index.html").as_uri())
        assert browser.title == "MyData fusion: reports"
        assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, "h2.role")] == [
            "Data engineering", "Data science", "Compliance"]
        shown = browser.find_element(By.TAG_NAME, "body").text
        for figure in (f"{accepted:,} rows accepted", f"{fused['outputs']['subjects_fused']:,} subjects fused",
                       f"{released['outputs']['published']:,} subjects published",
                       f"{trained['outputs']['version']} (promoted to current): k={trained['outputs']['metrics']['k']}",
                       f"ledger verifies ({reviewed['inputs']['ledger_events']:,} events)"):
            assert figure in shown, figure
        links = [a.get_attribute("href") for a in browser.find_elements(By.TAG_NAME, "a")]
        pages = {link for link in links if link.endswith(".html")}
        for folder in ("ingest", "fusion", "privacy", "features", "models", "consent"):
            assert any(f"/reports/{folder}/" in link for link in pages), folder
        for link in sorted(set(links)):
            browser.get(link)
            assert "ERR_FILE_NOT_FOUND" not in browser.page_source, link
            if link.endswith(".html"):
                assert browser.find_element(By.TAG_NAME, "h1").text, link
            else:  # a manifest
                assert json.loads(browser.find_element(By.TAG_NAME, "body").text)["run_id"] in link


@pytest.mark.slow
def test_the_airflow_ui_shows_the_dags_the_run_its_task_logs_and_the_assets(dag_run):
    """`mydata airflow ui` on the demo's Airflow home: the REST API and the page in a real browser."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    settings = dag_run.settings
    stack = start_ui(settings, free_port())
    try:
        user, password = ui_login(settings)
        assert password not in (stack.logs / "api-server.log").read_text(encoding="utf-8")

        def get(path: str) -> dict:
            request = urllib.request.Request(f"{stack.api_url}{path}", headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
                return json.loads(response.read())

        login = urllib.request.Request(f"{stack.api_url}/auth/token", method="POST",
                                       data=json.dumps({"username": user, "password": password}).encode(),
                                       headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(login, timeout=30) as response:  # noqa: S310 - loopback
            token = json.loads(response.read())["access_token"]
        assert {d["dag_id"] for d in get("/api/v2/dags")["dags"]} == {p.stem for p in settings.dags_folder.glob("*.py")}
        runs = get("/api/v2/dags/mydata_pipeline/dagRuns")["dag_runs"]
        assert [r["state"] for r in runs] == ["success"]
        run_id = urllib.parse.quote(runs[0]["dag_run_id"], safe="")
        logged = get(f"/api/v2/dags/mydata_pipeline/dagRuns/{run_id}/taskInstances/ingest/logs/1")
        assert any("progress: ingest card: " in str(line.get("event")) for line in logged["content"]), logged
        assert {"mydata://lake/bronze", "mydata://lake/gold/features"} <= {a["uri"] for a in get("/api/v2/assets")["assets"]}

        with chromium() as browser:
            browser.get(f"{stack.api_url}/")
            WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.NAME, "username"))
            browser.find_element(By.NAME, "username").send_keys(user)
            browser.find_element(By.NAME, "password").send_keys(password)
            browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            # leaving the page before the login's answer sets its cookie would land on the login again
            WebDriverWait(browser, 120).until(lambda b: not b.find_elements(By.NAME, "username"))
            browser.get(f"{stack.api_url}/dags")
            WebDriverWait(browser, 120).until(lambda b: "mydata_pipeline" in b.find_element(By.TAG_NAME, "body").text)
            assert "mydata_consent_purge" in browser.find_element(By.TAG_NAME, "body").text
    finally:
        stack.stop()
