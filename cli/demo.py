"""`make demo`: sample landing zone -> the pipeline DAG through `airflow dags test` -> a summary."""
from __future__ import annotations

import time
from datetime import date

from mydata import progress
from mydata.airflow_runner import RunProgress, dags_test
from mydata.config import Settings
from mydata.devtools.synth import GeneratorOptions, generate
from mydata.devtools.synth.generator import REAL_SHAPES
from mydata.keys import KeyStore
from mydata.manifest import latest_manifest
from render.summaries import summary
from schemas.asof import default_as_of

DEMO_DAG = "mydata_pipeline"


def run_demo(settings: Settings, subjects: int = 2_000, months: int = 6, seed: int = 7) -> int:
    lake = settings.lake
    print(f"data root: {lake.root}")
    if lake.landing.exists() and any(lake.landing.iterdir()):
        print(f"landing zone: reusing {lake.landing} (`make clean-data` to start over)")
    else:
        started = time.perf_counter()
        # deliveries shaped like real holders': refreshes, a silent operator, late deliveries, negative bills
        options = GeneratorOptions(subjects=subjects, months=months, seed=seed, **REAL_SHAPES)
        summary = generate(lake.root, options, KeyStore.open(settings))
        print(f"landing zone: generated {summary.subjects:,} subjects x {months} months, "
              f"{summary.total_records:,} records, {summary.total_defects:,} planted defects "
              f"({summary.defect_rate:.2%}) in {time.perf_counter() - started:.1f}s")
    logical = default_as_of(lake.landing, date.today())
    log = lake.airflow_home / "logs" / f"demo-{logical.isoformat()}.log"
    print(f"airflow: dags test {DEMO_DAG} {logical} (home {lake.airflow_home}; log {log})")
    started = time.perf_counter()
    # the ARI against latent types only where the generator left its truth (not on a user's own landing)
    truth = lake.truth / "subjects.csv"
    result = dags_test(settings, DEMO_DAG, logical, conf={"truth": str(truth) if truth.is_file() else ""}, log=log,
                       follow=RunProgress(progress.display()))
    if result.returncode != 0:
        print(f"airflow dags test FAILED (exit {result.returncode}); last lines of {log}:")
        print("\n".join(log.read_text(encoding="utf-8").splitlines()[-40:]))
        return result.returncode
    print(f"airflow: DAG run succeeded in {time.perf_counter() - started:.1f}s")
    print_summary(settings)
    return 0


#: the stages the demo's DAG runs, in order: (manifest folder, what the user calls it, its pages
#: as (what to call it, the manifest output naming it))
DEMO_STAGES = (
    ("landing", "landing", ()),
    ("ingest", "ingest", (("report", "report"),)),
    ("validate", "validate", (("report", "report"),)),
    ("consent", "consent", ()),
    ("fuse", "fuse", (("linkage report", "report"),)),
    ("features", "features", ()),
    ("privacy", "release", (("snapshot", "snapshot"), ("privacy report", "report"), ("feature catalog", "catalog"))),
    ("train", "segment", (("profile", "report"),)),
    ("score", "score", (("segments", "segments"),)),
    ("purge", "purge", (("audit log", "audit"),)),
    ("consent_review", "consent review", (("report", "report"),)),
)


def print_summary(settings: Settings) -> None:
    """Each stage's latest run in the line the CLI and the front page print for it, and its pages."""
    lake = settings.lake
    print("\nWhat the run produced")
    for job, name, pages in DEMO_STAGES:
        m = latest_manifest(lake, job)
        if m is None:
            continue
        print(f"  {name}: {summary(m)}")
        if job == "train" and m["status"] == "succeeded":
            for s in m["outputs"]["segments"]:
                print(f"    segment {s['segment']}: {s['size']:>6,} ({s['share']:.1%}) {s['label']}")
        for label, output in pages:
            if m["outputs"].get(output):
                print(f"    {label} {m['outputs'][output]}")
    print(f"\nEvery run and report, by role: {lake.reports / 'index.html'}")
    print("\nWhere things are")
    for name, path in lake.zones().items():
        if path.exists():
            print(f"  {name:<11} {path}")
    if lake.truth.is_dir():
        print(f"  {'truth':<11} {lake.truth}  (generator ground truth, not pipeline input)")
