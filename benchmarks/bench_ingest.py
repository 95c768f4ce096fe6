"""Ingest throughput: `python benchmarks/bench_ingest.py SUBJECTS [MONTHS] [--root DIR]`.

Generates a landing zone (or reuses one left under ``DIR/<subjects>x<months>``, default
``var/bench``), then times ``jobs.ingest.run`` over all of it from an empty bronze zone, and
``jobs.validate.run`` after it. Prints one Markdown table row: records read (landing lines and
CSV rows), bronze rows written, seconds, and rows/s for each.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from mydata.config import PROJECT_ROOT, Settings
from mydata.keys import KeyStore
from mydata.synth import GeneratorOptions, generate


def landing_zone(root: Path, subjects: int, months: int) -> Settings:
    settings = Settings(data_root=root)
    if not (root / "truth" / "generation.json").is_file():
        shutil.rmtree(root, ignore_errors=True)
        keystore = KeyStore.open(settings, env={})
        keystore.rotate_link()
        generate(root, GeneratorOptions(subjects=subjects, months=months), keystore)
    for zone in ("bronze", "quarantine", "manifests", "reports"):
        shutil.rmtree(root / zone, ignore_errors=True)
    return settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("subjects", type=int, nargs="?", default=10_000)
    parser.add_argument("months", type=int, nargs="?", default=6)
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT / "var" / "bench")
    args = parser.parse_args()
    settings = landing_zone(args.root / f"{args.subjects}x{args.months}", args.subjects, args.months)

    from jobs import ingest, validate
    from mydata.spark import spark_session

    spark = spark_session(settings, "bench-ingest")
    spark.range(1).count()  # session start-up is not ingest's time
    started = time.perf_counter()
    result = ingest.run(settings, spark)
    ingest_s = time.perf_counter() - started
    manifest = json.loads(Path(result["manifest"]).read_text(encoding="utf-8"))
    read = sum(manifest["inputs"]["records_read"].values())
    rows = result["rows_accepted"] + result["rows_quarantined"]
    started = time.perf_counter()
    checked = validate.run(settings, spark)
    validate_s = time.perf_counter() - started
    print("| subjects x months | records read | bronze rows | ingest | records/s | rows/s "
          "| validate (GX) | rows/s |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {args.subjects:,} x {args.months} | {read:,} | {rows:,} | {ingest_s:.1f} s | "
          f"{read / ingest_s:,.0f} | {rows / ingest_s:,.0f} | {validate_s:.1f} s "
          f"({checked['expectations']} expectations) | {checked['rows_checked'] / validate_s:,.0f} |")


if __name__ == "__main__":
    main()
