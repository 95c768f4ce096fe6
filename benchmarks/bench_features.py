"""Consent, fusion, features and release gate times: `python benchmarks/bench_features.py SUBJECTS [MONTHS]`.

Runs on the bronze zone `bench_ingest.py` left under ``var/bench/<subjects>x<months>`` (run that
first), as of the last delivery, for marketing: clears consent, silver, gold and their manifests,
then times each stage in order and prints one Markdown row per stage with its rows/s.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from datetime import date
from pathlib import Path

from mydata.config import PROJECT_ROOT, Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("subjects", type=int, nargs="?", default=10_000)
    parser.add_argument("months", type=int, nargs="?", default=6)
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT / "var" / "bench")
    parser.add_argument("--driver-memory", default="4g")
    args = parser.parse_args()
    root = args.root / f"{args.subjects}x{args.months}"
    generation = json.loads((root / "truth" / "generation.json").read_text(encoding="utf-8"))
    if not (root / "bronze" / "consent_events").is_dir():
        raise SystemExit(f"no bronze under {root}: run benchmarks/bench_ingest.py {args.subjects} first")
    as_of = date.fromisoformat(generation["deliveries"][-1])
    settings = Settings(data_root=root, purpose="marketing", as_of=as_of, driver_memory=args.driver_memory)
    for zone in ("consent", "silver", "gold", "reports/fusion", "reports/privacy", "reports/features"):
        shutil.rmtree(root / zone, ignore_errors=True)
    for job in ("consent", "fuse", "features", "privacy", "purge"):
        shutil.rmtree(root / "manifests" / job, ignore_errors=True)

    from jobs import consent, features, fuse, privacy
    from mydata.spark import spark_session

    spark = spark_session(settings, "bench-features")
    spark.range(1).count()
    rows: list[tuple[str, float, str, int]] = []

    started = time.perf_counter()
    appended = consent.run(settings, spark)
    events = appended["head"]["events"]
    rows.append(("consent ledger (append + verify)", time.perf_counter() - started, "events", events))

    started = time.perf_counter()
    fused = fuse.run(settings, spark)
    manifest = json.loads(Path(fused["manifest"]).read_text(encoding="utf-8"))
    bronze_rows = sum(t["bronze_rows"] for t in manifest["outputs"]["tables"].values())
    rows.append(("fusion (snapshot, linkage, pseudonyms, silver)", time.perf_counter() - started, "bronze rows",
                 bronze_rows))

    started = time.perf_counter()
    computed = features.run(settings, spark)
    silver_rows = sum(json.loads(Path(computed["manifest"]).read_text())["inputs"]["silver"].values())
    rows.append((f"features ({computed['features']} features)", time.perf_counter() - started, "silver rows",
                 silver_rows))

    started = time.perf_counter()
    released = privacy.run(settings, spark)
    rows.append(("release gate (k-anonymity, publish, catalog)", time.perf_counter() - started, "subjects",
                 computed["subjects"]))

    print(f"{args.subjects:,} subjects x {args.months} months, as of {as_of}: {fused['subjects_fused']:,} fused, "
          f"{released['published']:,} published at {released['level']}")
    print("| stage | seconds | input | rows/s |")
    print("|---|---|---|---|")
    for stage, seconds, unit, count in rows:
        print(f"| {stage} | {seconds:.1f} | {count:,} {unit} | {count / seconds:,.0f} |")


if __name__ == "__main__":
    main()
