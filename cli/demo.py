"""`make demo`: sample landing zone -> the pipeline DAG through `airflow dags test` -> a summary."""
from __future__ import annotations

import time
from datetime import date

from features.health import named
from mydata import progress
from mydata.airflow_runner import RunProgress, dags_test
from mydata.config import Settings
from mydata.devtools.synth import GeneratorOptions, generate
from mydata.devtools.synth.generator import REAL_SHAPES
from mydata.keys import KeyStore
from mydata.manifest import latest_manifest
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


def print_summary(settings: Settings) -> None:
    lake = settings.lake
    landing = latest_manifest(lake, "landing")
    print("\nWhat the run produced")
    if landing:
        records = landing["outputs"]["records"]
        print(f"  landing: {landing['inputs']['deliveries_complete']} complete deliveries, "
              f"{landing['inputs']['deliveries_waiting']} waiting, "
              f"{landing['outputs']['total_records']:,} records")
        for source, by_dt in sorted(records.items()):
            print(f"    {source:<14} {sum(by_dt.values()):>10,} records in {len(by_dt)} deliveries")
    ingest = latest_manifest(lake, "ingest")
    if ingest:
        print(f"  ingest: {ingest['status']}")
        for source, by_dt in sorted(ingest["outputs"]["reconciliation"].items()):
            total = {k: sum(e.get(k, 0) for e in by_dt.values())
                     for k in ("records_read", "rows_accepted", "rows_quarantined", "lines_quarantined",
                               "failed_collections", "duplicates")}
            print(f"    {source:<14} {total['records_read']:>9,} read -> {total['rows_accepted']:>9,} rows "
                  f"accepted, {total['rows_quarantined'] + total['lines_quarantined']:>6,} quarantined, "
                  f"{total['failed_collections']:>4,} failed collections, {total['duplicates']:>4,} duplicates")
    validated = latest_manifest(lake, "validate")
    if validated:
        out = validated["outputs"]
        print(f"  validate: {validated['status']}, {out['expectations']:,} expectations over "
              f"{out['rows_checked']:,} bronze rows; report {out['report']}")
    appended = latest_manifest(lake, "consent")
    if appended:
        head = appended["outputs"].get("ledger_head", {})
        print(f"  consent: {appended['status']}, ledger of {head.get('events', 0):,} events "
              f"(head {head.get('hash', '')[:16]}…); `mydata consent verify` re-checks it")
    fused = latest_manifest(lake, "fuse")
    if fused:
        out = fused["outputs"]
        left_out = ", ".join(f"{k} {v:,}" for k, v in out["linkage"].items() if k != "fused")
        print(f"  fuse: {fused['status']}, {fused['parameters']['purpose']} as of {fused['parameters']['as_of']}: "
              f"{out['subjects_fused']:,} subjects fused (left out: {left_out})")
        print(f"    silver: {lake.silver}; linkage report {out['report']}")
    computed = latest_manifest(lake, "features")
    if computed:
        print(f"  features: {computed['status']}, {computed['outputs']['features']} features for "
              f"{computed['outputs']['subjects']:,} subjects (release candidate)")
    released = latest_manifest(lake, "privacy")
    if released:
        out = released["outputs"]
        if released["status"] == "succeeded":
            print(f"  release: k={released['parameters']['k']} reached at {out['level']}: {out['published']:,} "
                  f"subjects published, {out['suppressed']:,} suppressed; smallest group {out['smallest_group']}")
            print(f"    snapshot {out['snapshot']}")
            blank = out.get("blank_features", {})
            print("    feature health: " + (f"{len(blank)} blank for every subject: {named(blank)}" if blank
                                              else f"all {len(out.get('feature_health', {}))} features vary"))
            print(f"    privacy report {out['report']}; feature catalog {out['catalog']}")
        else:
            print(f"  release: BLOCKED, nothing published ({released.get('error') or 'k not reached'}); "
                  f"privacy report {out['report']}")
    trained = latest_manifest(lake, "train")
    if trained:
        out = trained["outputs"]
        m = out["metrics"]
        truth = f", ARI vs the generator's latent types {m['ari_vs_latent_types']:.3f}" if "ari_vs_latent_types" in m else ""
        print(f"  segment: model {trained['parameters']['purpose']} {out['version']}, k={m['k']} chosen by "
              f"silhouette {m['silhouette']:.3f}, stability {m['stability_ari']:.3f}{truth}")
        for s in out["segments"]:
            print(f"    segment {s['segment']}: {s['size']:>6,} ({s['share']:.1%}) {s['label']}")
        print(f"    profile {out['report']}")
    scored = latest_manifest(lake, "score")
    if scored:
        print(f"  score: {scored['status']}, {scored['outputs']['rows']:,} subjects -> {scored['outputs']['segments']}")
    purged = latest_manifest(lake, "purge")
    if purged:
        print(f"  purge: {purged['status']}, {purged['outputs']['pseudonyms_purged']:,} withdrawn subject(s) "
              f"removed from {len(purged['outputs']['rows_removed'])} partition(s)")
    reviewed = latest_manifest(lake, "consent_review")
    if reviewed:
        ledger = "verifies" if reviewed["outputs"]["ledger_verifies"] else "DOES NOT VERIFY"
        print(f"  consent review: ledger {ledger}; report {reviewed['outputs']['report']}")
    print(f"\nEvery run and report, by role: {lake.reports / 'index.html'}")
    print("\nWhere things are")
    for name, path in lake.zones().items():
        if path.exists():
            print(f"  {name:<11} {path}")
    if lake.truth.is_dir():
        print(f"  {'truth':<11} {lake.truth}  (generator ground truth, not pipeline input)")
