"""The whole pipeline, stage by stage, against plain Spark SQL and DuckDB:
`python benchmarks/bench_pipeline.py SUBJECTS [--months 6]` (what `make bench SCALE=` runs).

Generates the landing zone under ``var/bench/<subjects>x<months>`` once (reused after), then in
one driver times ingest, validation, the consent ledger, fusion, features, the release gate,
training and scoring as the pipeline DAG runs them, with rows/s and the driver's peak memory
(this process and its JVM, sampled every 0.2 s) per stage. Then the reference implementations
(``benchmarks/reference.py``) redo fusion + features from the same bronze, in Spark SQL and in
DuckDB, and their feature tables must equal the project's. Each scale's figures are kept in
``var/bench/results/``; ``benchmarks/RESULTS.md`` is regenerated from all of them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import psutil

from mydata.config import PROJECT_ROOT, Settings
from mydata.keys import KeyStore
from mydata.synth import GeneratorOptions, generate

sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULTS_MD = Path(__file__).with_name("RESULTS.md")
#: issue 8's targets at 100k subjects
TARGET_SPARK_RATIO, TARGET_DUCKDB_RATIO, TARGET_LINEARITY, TARGET_TRAIN_S = 1.3, 5.0, 0.20, 60.0


class PeakMemory:
    """Peak resident memory of this process plus its children (the Spark driver JVM)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _rss(self) -> int:
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def stage(results: list[dict], name: str, unit: str):
    """Times the block; the block sets ``row["rows"]`` (what it processed, in ``unit``)."""
    row = {"stage": name, "unit": unit, "rows": 0}
    with PeakMemory() as memory:
        started = time.perf_counter()
        yield row
        row["seconds"] = time.perf_counter() - started
    row["peak_mib"] = memory.peak / 2**20
    results.append(row)
    print(f"{name}: {row['seconds']:.1f} s, {row['rows']:,} {unit}, peak {row['peak_mib']:,.0f} MiB", flush=True)


def _manifest(result: dict) -> dict:
    return json.loads(Path(result["manifest"]).read_text(encoding="utf-8"))


def compare_features(spark, project: Path, other: Path) -> dict:
    """Subjects only one side has, and per feature the subjects whose values differ (doubles
    compared to 1e-6 relative): the references must compute what the project computes."""
    from pyspark.sql import functions as F

    left = spark.read.parquet(str(project)).drop("as_of").withColumn("_in_l", F.lit(True))
    right = spark.read.parquet(str(other)).withColumn("_in_r", F.lit(True))
    features = [(c, t) for c, t in left.dtypes if c not in ("pseudonym", "_in_l")]

    def same(c: str, t: str):
        l, r = F.col(f"l.{c}"), F.col(f"r.{c}")
        close = F.abs(l - r) <= 1e-6 * F.greatest(F.abs(l), F.lit(1.0)) if t == "double" else F.lit(False)
        return l.eqNullSafe(r) | F.coalesce(close, F.lit(False))

    row = (left.alias("l").join(right.alias("r"), "pseudonym", "full")
           .agg(F.count(F.lit(1)).alias("_rows"),
                F.count_if(F.col("_in_l").isNull() | F.col("_in_r").isNull()).alias("_one_sided"),
                *[F.count_if(F.col("_in_l") & F.col("_in_r") & ~same(c, t)).alias(c) for c, t in features])
           .first().asDict())
    cells = {c: int(row[c]) for c, _ in features if row[c]}
    return {"rows": int(row["_rows"]), "one_sided": int(row["_one_sided"]), "differing": cells,
            "equal": not cells and not row["_one_sided"]}


def run_references(spark, settings: Settings, bronze_rows: int) -> dict:
    """Fusion + features again from the same bronze, as plain Spark SQL and in DuckDB; each feature
    table compared with the project's."""
    from jobs import consent
    from reference import run_duckdb, run_spark

    # what fusion does that the references do not: verify the whole consent ledger first
    verifying = time.perf_counter()
    assert consent.verify_ledger(spark, settings.lake).ok
    references: dict = {"rows": [], "ledger_verify_s": time.perf_counter() - verifying}
    out = settings.data_root / "reference"
    with stage(references["rows"], "Spark SQL reference (fusion + features)", "bronze rows") as row:
        spark_features = run_spark(spark, settings, out / "spark")
        row["rows"] = bronze_rows
    with stage(references["rows"], "DuckDB reference (fusion + features)", "bronze rows") as row:
        duck_features = run_duckdb(settings, out / "duckdb")
        row["rows"] = bronze_rows
    candidate = settings.lake.silver / "features" / f"purpose={settings.purpose}" / f"as_of={settings.as_of}"
    references["spark_equal"] = compare_features(spark, candidate, spark_features)
    references["duckdb_equal"] = compare_features(spark, candidate, duck_features)
    return references


def landing_zone(root: Path, subjects: int, months: int) -> Settings:
    """The landing zone at this scale, generated once; every zone the pipeline writes is cleared."""
    settings = Settings(data_root=root)
    if not (root / "truth" / "generation.json").is_file():
        shutil.rmtree(root, ignore_errors=True)
        keystore = KeyStore.open(settings, env={})
        keystore.rotate_link()
        generate(root, GeneratorOptions(subjects=subjects, months=months), keystore)
    for zone in ("bronze", "quarantine", "manifests", "reports", "consent", "silver", "gold", "models",
                 "reference"):
        shutil.rmtree(root / zone, ignore_errors=True)
    return settings


def run_scale(subjects: int, months: int, root: Path) -> dict:
    settings = landing_zone(root / f"{subjects}x{months}", subjects, months)
    generation = json.loads((settings.data_root / "truth" / "generation.json").read_text(encoding="utf-8"))
    from datetime import date
    as_of = date.fromisoformat(generation["deliveries"][-1])
    settings = settings.replace(purpose="marketing", as_of=as_of)

    from jobs import consent, features, fuse, ingest, privacy, score, validate
    from models import train
    from mydata.spark import spark_session

    spark = spark_session(settings, "bench-pipeline")
    spark.range(1).count()  # session start-up is nobody's stage
    stages: list[dict] = []
    started = time.perf_counter()
    with stage(stages, "ingest", "records read") as row:
        result = ingest.run(settings, spark)
        row["rows"] = sum(_manifest(result)["inputs"]["records_read"].values())
        bronze_rows = result["rows_accepted"] + result["rows_quarantined"]
    with stage(stages, "validate (Great Expectations)", "bronze rows") as row:
        row["rows"] = validate.run(settings, spark)["rows_checked"]
    with stage(stages, "consent ledger (append, verify)", "events") as row:
        row["rows"] = consent.run(settings, spark)["head"]["events"]
    with stage(stages, "fusion (consent snapshot, linkage, silver)", "bronze rows") as row:
        fused = fuse.run(settings, spark)
        row["rows"] = sum(t["bronze_rows"] for t in _manifest(fused)["outputs"]["tables"].values())
    with stage(stages, "features", "silver rows") as row:
        computed = features.run(settings, spark)
        row["rows"] = sum(_manifest(computed)["inputs"]["silver"].values())
    with stage(stages, "release gate (k-anonymity, publish)", "subjects") as row:
        released = privacy.run(settings, spark)
        row["rows"] = computed["subjects"]
    with stage(stages, "training (k over 3..10, stability)", "subjects") as row:
        trained = train.run(settings, promote=True)
        row["rows"] = released["published"]
    with stage(stages, "scoring (Spark, mapInPandas)", "subjects") as row:
        row["rows"] = score.run(settings, spark)["rows"]
    whole = time.perf_counter() - started

    project_fusion_features = sum(s["seconds"] for s in stages if s["stage"].startswith(("fusion", "features")))
    references = run_references(spark, settings, stages[3]["rows"])
    spark.stop()
    return {"subjects": subjects, "months": months, "as_of": as_of.isoformat(), "bronze_rows": bronze_rows,
            "fused": fused["subjects_fused"], "published": released["published"], "k": trained["metrics"]["k"],
            "stages": stages, "whole_s": whole, "project_fusion_features_s": project_fusion_features,
            "references": references, "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def machine() -> dict:
    import duckdb
    import pyspark
    import sklearn

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30),
            "python": platform.python_version(), "pyspark": pyspark.__version__, "duckdb": duckdb.__version__,
            "scikit-learn": sklearn.__version__, "java": os.environ.get("JAVA_HOME", "")}


def render(results: list[dict]) -> str:
    """RESULTS.md: the machine, every scale's stages, scaling, and the reference ratios."""
    info = machine()
    lines = ["# Benchmark results", "",
             "Regenerated by `make bench SCALE=<subjects>` (`benchmarks/bench_pipeline.py`) from every scale "
             "measured so far (`var/bench/results/`). Do not edit by hand.", "",
             f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB; Python {info['python']}, "
             f"pyspark {info['pyspark']} (local[*]), DuckDB {info['duckdb']}, scikit-learn {info['scikit-learn']}.", ""]
    for r in results:
        lines += [f"## {r['subjects']:,} subjects × {r['months']} months (measured {r['measured']})", "",
                  f"As of {r['as_of']}: {r['bronze_rows']:,} bronze rows, {r['fused']:,} subjects fused, "
                  f"{r['published']:,} published, k = {r['k']}. Whole pipeline: **{r['whole_s']:.1f} s**.", "",
                  "| stage | seconds | input | rows/s | µs per row | driver peak (this process + JVM) |",
                  "|---|---|---|---|---|---|"]
        for s in r["stages"] + r["references"]["rows"]:
            lines.append(f"| {s['stage']} | {s['seconds']:.1f} | {s['rows']:,} {s['unit']} | "
                         f"{s['rows'] / s['seconds']:,.0f} | {1e6 * s['seconds'] / max(s['rows'], 1):,.1f} | "
                         f"{s['peak_mib']:,.0f} MiB |")
        lines += ["", comparison(r), ""]
    if len(results) > 1:
        lines += ["## Scaling: time per row (against the smallest scale) and driver peak", "",
                  "| stage | " + " | ".join(f"{r['subjects']:,}" for r in results) + " |",
                  "|---|" + "---|" * len(results)]
        base = results[0]
        for i, s in enumerate(base["stages"]):
            per_row = [r["stages"][i]["seconds"] / max(r["stages"][i]["rows"], 1) for r in results]
            lines.append(f"| {s['stage']} | " + " | ".join(
                f"{1e6 * p:,.1f} µs ({p / per_row[0]:.2f}×), {r['stages'][i]['peak_mib']:,.0f} MiB"
                for p, r in zip(per_row, results)) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def comparison(r: dict) -> str:
    """The project's fusion + features against the two references, and whether they agree."""
    spark_ref, duck_ref = (s["seconds"] for s in r["references"]["rows"])
    project, verify = r["project_fusion_features_s"], r["references"]["ledger_verify_s"]
    return (f"Fusion + features: project {project:.1f} s; **{project / spark_ref:.2f}×** the plain Spark SQL "
            f"reference ({spark_ref:.1f} s; target ≤ {TARGET_SPARK_RATIO}×) and **{project / duck_ref:.2f}×** "
            f"DuckDB ({duck_ref:.1f} s; target ≤ {TARGET_DUCKDB_RATIO}×). Fusion first verifies the whole consent "
            f"ledger (hash chain and anchors, {verify:.1f} s alone), which the references do not; without it "
            f"{(project - verify) / spark_ref:.2f}× and {(project - verify) / duck_ref:.2f}×. Feature tables equal "
            f"to the project's: Spark SQL {_equal(r['references']['spark_equal'])}; "
            f"DuckDB {_equal(r['references']['duckdb_equal'])}.")


def _equal(check: dict) -> str:
    if check["equal"]:
        return f"yes ({check['rows']:,} subjects, every feature)"
    return (f"**no**: {check['one_sided']:,} subjects on one side only; subjects differing by feature: "
            f"{check['differing']} of {check['rows']:,}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("subjects", type=int, nargs="?", default=10_000)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT / "var" / "bench")
    parser.add_argument("--references-only", action="store_true",
                        help="rerun only the references against the lake and figures this scale's last run left")
    args = parser.parse_args()
    folder = args.root / "results"
    saved = folder / f"{args.subjects}x{args.months}.json"
    if args.references_only:
        from datetime import date

        from mydata.spark import spark_session

        result = json.loads(saved.read_text(encoding="utf-8"))
        settings = Settings(data_root=args.root / saved.stem, purpose="marketing",
                            as_of=date.fromisoformat(result["as_of"]))
        spark = spark_session(settings, "bench-references")
        spark.range(1).count()
        result["references"] = run_references(spark, settings, result["stages"][3]["rows"])
        spark.stop()
    else:
        result = run_scale(args.subjects, args.months, args.root)
    folder.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(result, indent=1), encoding="utf-8")
    results = sorted((json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.json")),
                     key=lambda r: (r["months"], r["subjects"]))
    RESULTS_MD.write_text(render(results), encoding="utf-8")
    print(f"wrote {RESULTS_MD}")


if __name__ == "__main__":
    main()
