"""The whole pipeline, stage by stage, against plain Spark SQL and DuckDB:
`python benchmarks/bench_pipeline.py SUBJECTS [--months 6]` (what `make bench SCALE=` runs).

Generates the landing zone under ``var/bench/<subjects>x<months>`` once (timed; reused after),
then in one driver times ingest, validation, the consent ledger, fusion, features, the release
gate, training and scoring as the pipeline DAG runs them, with rows/s and the driver's memory per
stage: peak RSS of this process and its JVM (sampled every 0.2 s), and the JVM heap's old-gen peak
and what stays live after the stage. Then the reference implementations
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
from datetime import UTC, date, datetime
from pathlib import Path

import psutil

from mydata import progress
from mydata.config import PROJECT_ROOT, Settings
from mydata.devtools.synth import GeneratorOptions, generate
from mydata.keys import KeyStore

sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULTS_MD = Path(__file__).with_name("RESULTS.md")
MODELS_JSON = "models.json"  # bench_models.py's figures, beside each scale's
DEFAULT_ROOT = PROJECT_ROOT / "var" / "bench"
COMPRESSED_FROM = 1_000_000  # subjects from which the landing zone is generated gzipped
GENERATED_JSON = "generated.json"  # the generator's figures, beside the landing zone they describe
#: issue 8's targets at 100k subjects
TARGET_SPARK_RATIO, TARGET_DUCKDB_RATIO, TARGET_LINEARITY, TARGET_TRAIN_S = 1.3, 1.5, 0.25, 60.0


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

    def __enter__(self) -> PeakMemory:
        self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class DriverHeap:
    """The driver JVM's heap, which its RSS cannot show: a JVM keeps the memory it once took, so
    every stage after the largest would show that one's peak. Per stage: the old generation's
    peak (the pools' peak usage, reset when the stage starts) and the heap still live after it
    (used after a full GC). Whether a stage's driver memory grows with the input shows in these."""

    def __init__(self, spark) -> None:
        management = spark.sparkContext._jvm.java.lang.management.ManagementFactory
        self._system, self._heap = spark.sparkContext._jvm.java.lang.System, management.getMemoryMXBean()
        self._old = [p for p in management.getMemoryPoolMXBeans()
                     if str(p.getType().toString()) == "Heap memory" and "Old" in str(p.getName())]

    def start(self) -> None:
        for pool in self._old:
            pool.resetPeakUsage()

    def old_peak(self) -> int:
        return sum(pool.getPeakUsage().getUsed() for pool in self._old)

    def retained(self) -> int:
        self._system.gc()
        return self._heap.getHeapMemoryUsage().getUsed()


@contextmanager
def stage(results: list[dict], name: str, unit: str, heap: DriverHeap | None = None):
    """Times the block; the block sets ``row["rows"]`` (what it processed, in ``unit``)."""
    row = {"stage": name, "unit": unit, "rows": 0}
    if heap:
        heap.start()
    with PeakMemory() as memory:
        started = time.perf_counter()
        yield row
        row["seconds"] = time.perf_counter() - started
    row["peak_mib"] = memory.peak / 2**20
    if heap:
        row["heap_old_peak_mib"], row["heap_retained_mib"] = heap.old_peak() / 2**20, heap.retained() / 2**20
    results.append(row)
    print(f"{name}: {row['seconds']:.1f} s, {row['rows']:,} {unit}, peak {row['peak_mib']:,.0f} MiB"
          + (f", heap old-gen peak {row['heap_old_peak_mib']:,.0f} MiB, retained {row['heap_retained_mib']:,.0f} MiB"
             if heap else ""), flush=True)


class StepTimes:
    """A progress display that keeps each finished step's seconds (the project's ingest per source)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def begin(self, step: progress.Step) -> None:
        pass

    def update(self, step: progress.Step) -> None:
        pass

    def end(self, step: progress.Step) -> None:
        self.seconds[step.name] = step.elapsed

    def note(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def run_ingest_reference(settings: Settings, project: dict[str, float], spark=None) -> dict:
    """The MyData sources ingested plainly (``ingest_reference.py``: DuckDB, or PySpark on ``spark``)
    beside the project's seconds for each (its per-source steps, staging included; the run's one
    publish is not)."""
    import ingest_reference

    out = settings.data_root / "reference" / "ingest"
    shutil.rmtree(out, ignore_errors=True)
    plain = ingest_reference.run(settings.data_root, out) if spark is None \
        else ingest_reference.run_spark(spark, settings.data_root, out)
    engine = "DuckDB" if spark is None else "PySpark"
    print(f"plain {engine} ingest: " + ", ".join(f"{s} {f['seconds']:.1f} s (project {project.get(s, 0):.1f} s)"
                                                 for s, f in plain.items()), flush=True)
    return {"sources": plain, "project": project, "engine": engine}


def _manifest(result: dict) -> dict:
    return json.loads(Path(result["manifest"]).read_text(encoding="utf-8"))


def compare_features(project: Path, other: Path) -> dict:
    """Subjects only one side has, and per feature the subjects whose values differ (doubles
    compared to 1e-6 relative): the references must compute what the project computes."""
    import duckdb

    con = duckdb.connect()
    scan = "read_parquet('{}/**/*.parquet', hive_partitioning = false)"
    left, right = scan.format(project) if project.is_dir() else f"'{project}'", \
        scan.format(other) if other.is_dir() else f"'{other}'"
    features = [(c, t) for c, t, *_ in con.execute(f"DESCRIBE SELECT * FROM {left}").fetchall()
                if c != "pseudonym"]

    def differs(c: str, t: str) -> str:
        same = f"l.{c} IS NOT DISTINCT FROM r.{c}"
        if t == "DOUBLE":
            same += f" OR abs(l.{c} - r.{c}) <= 1e-6 * greatest(abs(l.{c}), 1.0)"
        return f"count_if(l.pseudonym IS NOT NULL AND r.pseudonym IS NOT NULL AND NOT coalesce({same}, false)) AS {c}"
    row = con.execute(f"SELECT count(*) AS _rows, count_if(l.pseudonym IS NULL OR r.pseudonym IS NULL) AS _one_sided, "
                      f"{', '.join(differs(c, t) for c, t in features)} FROM {left} l FULL JOIN {right} r "
                      "ON l.pseudonym = r.pseudonym").fetchone()
    values = dict(zip(["_rows", "_one_sided", *[c for c, _ in features]], row))
    cells = {c: int(values[c]) for c, _ in features if values[c]}
    return {"rows": int(values["_rows"]), "one_sided": int(values["_one_sided"]), "differing": cells,
            "equal": not cells and not values["_one_sided"]}


def run_reference(settings: Settings, bronze_rows: int, spark=None) -> dict:
    """Fusion + features again from the same bronze, written plainly for the engine of the run
    (DuckDB, or Spark SQL when ``spark`` is given); its feature table compared with the project's."""
    from reference import run_duckdb, run_spark

    from jobs import consent
    from mydata.engines import open_engine

    # what fusion does that the references do not: verify the whole consent ledger first
    engine = open_engine(settings, spark)
    verifying = time.perf_counter()
    assert consent.verify_ledger(engine, settings.lake).ok
    references: dict = {"rows": [], "ledger_verify_s": time.perf_counter() - verifying}
    engine.close()
    out = settings.data_root / "reference"
    if spark is not None:
        with stage(references["rows"], "Spark SQL reference (fusion + features)", "bronze rows",
                   DriverHeap(spark)) as row:
            produced = run_spark(spark, settings, out / "spark")
            row["rows"] = bronze_rows
    else:
        with stage(references["rows"], "DuckDB reference (fusion + features)", "bronze rows") as row:
            produced = run_duckdb(settings, out / "duckdb")
            row["rows"] = bronze_rows
    candidate = settings.lake.feature_candidates(settings.purpose) / f"as_of={settings.as_of}"
    references["spark_equal" if spark is not None else "duckdb_equal"] = compare_features(candidate, produced)
    return references


def landing_zone(root: Path, subjects: int, months: int, driver_memory: str = Settings.driver_memory,
                 ) -> tuple[Settings, dict | None]:
    """The landing zone at this scale, generated once; every zone the pipeline writes is cleared.
    Returns the generator's figures, kept beside the zone (None for a zone generated untimed)."""
    settings, generated = Settings(data_root=root, driver_memory=driver_memory), None
    figures = root / GENERATED_JSON
    if not (root / "truth" / "generation.json").is_file():
        shutil.rmtree(root, ignore_errors=True)
        keystore = KeyStore.open(settings, env={})
        keystore.rotate_link()
        with PeakMemory() as memory:  # this process and the generator's worker processes
            started = time.perf_counter()
            # 1M subjects' landing is ~70 GB as plain JSON lines: gzipped (as holders may deliver) it fits the disk
            summary = generate(root, GeneratorOptions(subjects=subjects, months=months,
                                                      compress=subjects >= COMPRESSED_FROM), keystore)
            seconds = time.perf_counter() - started
        size = sum(p.stat().st_size for p in (root / "landing").rglob("*") if p.is_file())
        generated = {"seconds": seconds, "records": summary.total_records, "landing_mib": size / 2**20,
                     "peak_mib": memory.peak / 2**20}
        figures.write_text(json.dumps(generated), encoding="utf-8")
        print(f"generated: {seconds:.1f} s, {summary.total_records:,} records, {size / 2**20:,.0f} MiB", flush=True)
    elif figures.is_file():
        generated = json.loads(figures.read_text(encoding="utf-8"))
    for zone in ("bronze", "quarantine", "manifests", "reports", "consent", "silver", "gold", "models",
                 "reference"):
        shutil.rmtree(root / zone, ignore_errors=True)
    return settings, generated


def run_scale(subjects: int, months: int, root: Path, driver_memory: str = Settings.driver_memory,
              engine: str = "duckdb") -> dict:
    settings, generated = landing_zone(root / f"{subjects}x{months}", subjects, months, driver_memory)
    generation = json.loads((settings.data_root / "truth" / "generation.json").read_text(encoding="utf-8"))
    as_of = date.fromisoformat(generation["deliveries"][-1])
    settings = settings.replace(purpose="marketing", as_of=as_of, engine=engine)

    from jobs import consent, features, fuse, ingest, release, score, segment, validate

    spark = heap = None
    if engine == "spark":
        from mydata.spark import spark_session

        spark = spark_session(settings, "bench-pipeline")
        spark.range(1).count()  # session start-up is nobody's stage
        heap = DriverHeap(spark)
    stages: list[dict] = []
    with stage(stages, "ingest", "records read", heap) as row, progress.shown_by(StepTimes()) as steps:
        result = ingest.run(settings, spark)
        row["rows"] = sum(_manifest(result)["inputs"]["records_read"].values())
        bronze_rows = result["rows_accepted"] + result["rows_quarantined"]
    with stage(stages, "validate (Great Expectations)", "bronze rows", heap) as row:
        row["rows"] = validate.run(settings, spark)["rows_checked"]
    with stage(stages, "consent ledger (append, verify)", "events", heap) as row:
        row["rows"] = consent.run(settings, spark)["head"]["events"]
    with stage(stages, "fusion (consent snapshot, linkage, silver)", "bronze rows", heap) as row:
        fused = fuse.run(settings, spark)
        row["rows"] = sum(t["bronze_rows"] for t in _manifest(fused)["outputs"]["tables"].values())
    with stage(stages, "features", "silver rows", heap) as row:
        computed = features.run(settings, spark)
        row["rows"] = sum(_manifest(computed)["inputs"]["silver"].values())
    with stage(stages, "release gate (k-anonymity, publish)", "subjects", heap) as row:
        released = release.run(settings, spark)
        row["rows"] = computed["subjects"]
    with stage(stages, "training (k over 3..10, stability)", "subjects", heap) as row:
        trained = segment.run(settings, promote=True)
        row["rows"] = released["published"]
    with stage(stages, "scoring", "subjects", heap) as row:
        row["rows"] = score.run(settings, spark)["rows"]
    whole = sum(s["seconds"] for s in stages)  # the stages' own time: the heap reading's full GCs are not in it

    project_fusion_features = sum(s["seconds"] for s in stages if s["stage"].startswith(("fusion", "features")))
    references = run_reference(settings, stages[3]["rows"], spark)
    references["ingest"] = run_ingest_reference(settings, {
        name.removeprefix("ingest "): seconds for name, seconds in steps.seconds.items()
        if name.startswith("ingest ") and name != "ingest publish"}, spark)
    if spark is not None:
        spark.stop()
    for row in stages:
        row["engine"] = "scikit-learn" if row["stage"].startswith("training") else engine
    return {"subjects": subjects, "months": months, "engine": engine, "as_of": as_of.isoformat(), "generation": generated,
            "driver_memory": settings.driver_memory, "shuffle_partitions": settings.shuffle_partitions,
            "bronze_rows": bronze_rows,
            "fused": fused["subjects_fused"], "published": released["published"], "k": trained["metrics"]["k"],
            "stages": stages, "whole_s": whole, "project_fusion_features_s": project_fusion_features,
            "references": references, "measured": datetime.now(UTC).isoformat(timespec="seconds")}


def machine() -> dict:
    import duckdb
    import pyspark
    import sklearn

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30),
            "python": platform.python_version(), "pyspark": pyspark.__version__, "duckdb": duckdb.__version__,
            "scikit-learn": sklearn.__version__, "java": os.environ.get("JAVA_HOME", "")}


def render(results: list[dict], models: list[dict] | None = None) -> str:
    """RESULTS.md: the machine, every scale's stages, scaling, the reference ratios, and training
    and scoring at sizes the pipeline benchmark does not reach."""
    info = machine()
    lines = ["# Benchmark results", "",
             "Regenerated by `make bench SCALE=<subjects>` (`benchmarks/bench_pipeline.py`) from every scale "
             "measured so far (`var/bench/results/`). Do not edit by hand.", "",
             f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB; Python {info['python']}, "
             f"pyspark {info['pyspark']} (local[*]), DuckDB {info['duckdb']}, scikit-learn {info['scikit-learn']}.", ""]
    for r in results:
        lines += [f"## {r['subjects']:,} subjects × {r['months']} months, engine {r['engine']} "
                  f"(measured {r['measured']})", "",
                  f"As of {r['as_of']}: {r['bronze_rows']:,} bronze rows, {r['fused']:,} subjects fused, "
                  f"{r['published']:,} published, k = {r['k']}. Whole pipeline: **{r['whole_s']:.1f} s**. "
                  f"Driver memory {r.get('driver_memory', Settings.driver_memory)}, "
                  f"{r.get('shuffle_partitions', Settings.shuffle_partitions)} shuffle "
                  f"partitions. "
                  f"{generation_note(r.get('generation'))}", "",
                  "| stage | ran on | seconds | input | rows/s | µs per row | driver RSS peak (this process + JVM) "
                  "| driver heap: old-gen peak, retained after |",
                  "|---|---|---|---|---|---|---|---|"]
        for s in r["stages"] + r["references"]["rows"]:
            ran_on = s.get("engine", "duckdb" if s["stage"].startswith("DuckDB") else "spark")
            lines.append(f"| {s['stage']} | {ran_on} | {s['seconds']:.1f} | {s['rows']:,} {s['unit']} | "
                         f"{s['rows'] / s['seconds']:,.0f} | {1e6 * s['seconds'] / max(s['rows'], 1):,.1f} | "
                         f"{s['peak_mib']:,.0f} MiB | {heap_note(s)} |")
        lines += ["", comparison(r), ""]
        if "ingest" in r["references"]:
            lines += [ingest_comparison(r["references"]["ingest"], r["stages"]), ""]
    for engine in sorted({r["engine"] for r in results}):
        scales = [r for r in results if r["engine"] == engine]
        if len(scales) < 2:
            continue
        last, before = scales[-1]["subjects"], scales[-2]["subjects"]
        lines += [f"## Scaling on {engine}: time per row (against the smallest scale) and driver memory", "",
                  "| stage | " + " | ".join(f"{r['subjects']:,}" for r in scales)
                  + f" | per row, {last:,} against {before:,} |",
                  "|---|" + "---|" * (len(scales) + 1)]
        base = scales[0]
        for i, s in enumerate(base["stages"]):
            per_row = [r["stages"][i]["seconds"] / max(r["stages"][i]["rows"], 1) for r in scales]
            lines.append(f"| {s['stage']} | " + " | ".join(
                f"{1e6 * p:,.1f} µs ({p / per_row[0]:.2f}×), RSS {r['stages'][i]['peak_mib']:,.0f} MiB, "
                f"heap {heap_note(r['stages'][i])}"
                for p, r in zip(per_row, scales)) + f" | {per_row[-1] / per_row[-2]:.2f}× |")
        per_subject = [r["whole_s"] / r["subjects"] for r in scales]  # the issue's linearity target is the whole run's
        lines += ["| whole pipeline | " + " | ".join(
            f"{1e3 * p:,.2f} ms per subject ({p / per_subject[0]:.2f}×)" for p in per_subject)
            + f" | **{per_subject[-1] / per_subject[-2]:.2f}×** |", ""]
    lines += engines_side_by_side(results)
    if models:
        lines += ["## Segmentation training and scoring on resampled snapshots (`benchmarks/bench_models.py`)", "",
                  f"Training: k chosen over 3..10 by silhouette, bootstrap stability, profile and registration, "
                  f"as `mydata model train` does (target: under {TARGET_TRAIN_S:.0f} s at 1M rows). Scoring: "
                  f"`jobs.score.run` in Spark.", "",
                  "| rows | features | algorithm | training | k | silhouette | stability ARI | scoring | "
                  "scoring rows/s | measured |", "|---|---|---|---|---|---|---|---|---|---|"]
        for m in sorted(models, key=lambda m: (m["rows"], m["algorithm"])):
            lines.append(f"| {m['rows']:,} | {m['features']} | {m['algorithm']} | {m['train_s']:.1f} s | {m['k']} | "
                         f"{m['silhouette']:.3f} | {m['stability_ari']:.3f} | {m['score_s']:.1f} s | "
                         f"{m['rows'] / m['score_s']:,.0f} | {m['measured'][:16]} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def engines_side_by_side(results: list[dict]) -> list[str]:
    """Per scale measured on both engines: each stage's seconds on each, and the ratio."""
    by_scale: dict[tuple, dict[str, dict]] = {}
    for r in results:
        by_scale.setdefault((r["subjects"], r["months"]), {})[r["engine"]] = r
    lines = []
    for (subjects, months), pair in sorted(by_scale.items()):
        if set(pair) != {"duckdb", "spark"}:
            continue
        duck, spark = pair["duckdb"], pair["spark"]
        lines += [f"## Engines side by side: {subjects:,} subjects × {months} months", "",
                  f"Measured separately ({duck['measured']} on duckdb, {spark['measured']} on spark).", "",
                  "| stage | duckdb s | spark s | spark / duckdb |", "|---|---|---|---|"]
        for d, s in zip(duck["stages"], spark["stages"]):
            lines.append(f"| {d['stage']}{' (scikit-learn on both)' if d.get('engine') == 'scikit-learn' else ''} | "
                         f"{d['seconds']:.1f} | "
                         f"{s['seconds']:.1f} | {s['seconds'] / d['seconds']:.1f}× |")
        lines.append(f"| whole pipeline | {duck['whole_s']:.1f} | {spark['whole_s']:.1f} | "
                     f"{spark['whole_s'] / duck['whole_s']:.1f}× |")
        lines.append("")
    return lines


def heap_note(row: dict) -> str:
    if "heap_retained_mib" not in row:
        return "–"  # measured before the heap was
    return f"{row['heap_old_peak_mib']:,.0f} MiB, {row['heap_retained_mib']:,.0f} MiB"


def generation_note(figures: dict | None) -> str:
    if not figures:
        return "(The landing zone was generated before generation was timed here.)"
    return (f"Landing zone generated in {figures['seconds']:.1f} s: {figures['records']:,} records "
            f"({figures['records'] / figures['seconds']:,.0f}/s), {figures['landing_mib']:,.0f} MiB, "
            f"peak {figures['peak_mib']:,.0f} MiB (generator and its workers).")


def comparison(r: dict) -> str:
    """The project's fusion + features against the plain reference on the same engine, and whether they agree."""
    (reference,) = r["references"]["rows"]
    on_spark = reference["stage"].startswith("Spark")
    name, target = ("plain Spark SQL", TARGET_SPARK_RATIO) if on_spark else ("plain DuckDB", TARGET_DUCKDB_RATIO)
    check = r["references"]["spark_equal" if on_spark else "duckdb_equal"]
    project, verify, seconds = r["project_fusion_features_s"], r["references"]["ledger_verify_s"], reference["seconds"]
    return (f"Fusion + features: project {project:.1f} s; **{project / seconds:.2f}×** the {name} reference "
            f"({seconds:.1f} s; target ≤ {target}×). Fusion first verifies the whole consent ledger (hash chain "
            f"and anchors, {verify:.1f} s alone), which the reference does not; without it "
            f"{(project - verify) / seconds:.2f}×. Feature table equal to the project's: {_equal(check)}.")


def ingest_comparison(figures: dict, stages: list[dict]) -> str:
    """The project's ingest of each MyData source, and its ingest + validation, against the plain
    reference on its engine (which ingests only the MyData sources)."""
    plain, project, engine = figures["sources"], figures["project"], figures.get("engine", "DuckDB")
    per_source = "; ".join(f"{s} {project[s]:.1f} s vs {f['seconds']:.1f} s (**{project[s] / f['seconds']:.2f}×**)"
                           for s, f in plain.items() if s in project)
    mine, theirs = sum(project[s] for s in plain if s in project), sum(f["seconds"] for f in plain.values())
    ingested = next(s["seconds"] for s in stages if s["stage"] == "ingest")
    validated = ingested + sum(s["seconds"] for s in stages if s["stage"].startswith("validate"))
    rows = sum(f["accepted"] for f in plain.values())
    reader = "read_json, unnest" if engine == "DuckDB" else "read.json, posexplode"
    target = "≤ 1.2×" if engine == "DuckDB" else "none on its own; ≤ 1.5× for ingest + validation"
    return (f"Ingest of the MyData sources, project against plain {engine} (`benchmarks/ingest_reference.py`: "
            f"{reader}, typed select, the same per-field checks, Parquet; no line accounting, duplicates, "
            f"natural-key ranking or readable reasons): {per_source}; together {mine:.1f} s vs {theirs:.1f} s, "
            f"**{mine / theirs:.2f}×** (target {target}). "
            + ("" if engine == "DuckDB" else  # Spark ingests two sources at a time: their steps overlap
               f"The project's sources ran two at a time, so their seconds overlap: its whole ingest stage, "
               f"{ingested:.1f} s, is **{ingested / theirs:.2f}×** the reference. ")
            + f"The whole ingest and validation stages of every "
            f"source, {validated:.1f} s, are **{validated / theirs:.2f}×** the reference. "
            f"The reference accepted {rows:,} rows.")


def _equal(check: dict) -> str:
    if check["equal"]:
        return f"yes ({check['rows']:,} subjects, every feature)"
    return (f"**no**: {check['one_sided']:,} subjects on one side only; subjects differing by feature: "
            f"{check['differing']} of {check['rows']:,}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("subjects", type=int, nargs="?", default=10_000)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help="where landing zones and results live; RESULTS.md is written there unless it is "
                             "the default")
    parser.add_argument("--driver-memory", default=Settings.driver_memory,
                        help="the driver JVM's heap (one JVM runs every stage; 4g spills cached rankings at 100k)")
    parser.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb",
                        help="the engine every stage runs on (training is scikit-learn either way)")
    parser.add_argument("--generate-only", action="store_true",
                        help="generate this scale's landing zone (if missing) and stop")
    parser.add_argument("--references-only", action="store_true",
                        help="rerun only the references against the lake and figures this scale's last run left")
    args = parser.parse_args()
    folder = args.root / "results"
    saved = folder / f"{args.subjects}x{args.months}-{args.engine}.json"
    if args.generate_only:
        landing_zone(args.root / f"{args.subjects}x{args.months}", args.subjects, args.months)
        return
    if args.references_only:
        result = json.loads(saved.read_text(encoding="utf-8"))
        settings = Settings(data_root=args.root / f"{args.subjects}x{args.months}", purpose="marketing",
                            as_of=date.fromisoformat(result["as_of"]), engine=args.engine,
                            driver_memory=result.get("driver_memory", args.driver_memory))
        spark = None
        if args.engine == "spark":
            from mydata.spark import spark_session

            spark = spark_session(settings, "bench-references")
            spark.range(1).count()
        result["references"] = run_reference(settings, result["stages"][3]["rows"], spark)
        if spark is not None:
            spark.stop()
    else:
        result = run_scale(args.subjects, args.months, args.root, args.driver_memory, args.engine)
        if result["generation"] is None and saved.is_file():  # the zone was reused: its generation stands
            result["generation"] = json.loads(saved.read_text(encoding="utf-8")).get("generation")
    folder.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(result, indent=1), encoding="utf-8")
    write_results(folder)


def write_results(folder: Path) -> None:
    """RESULTS.md from every scale's figures and the model benchmark's (``models.json``); the
    repository's copy only from the default results folder."""
    results = sorted(({"engine": "spark", **json.loads(p.read_text(encoding="utf-8"))} for p in folder.glob("*x*.json")),
                     key=lambda r: (r["engine"], r["months"], r["subjects"]))
    models = folder / MODELS_JSON
    target = RESULTS_MD if folder.resolve() == (DEFAULT_ROOT / "results").resolve() else folder / RESULTS_MD.name
    target.write_text(render(results, json.loads(models.read_text(encoding="utf-8")) if models.is_file() else []),
                      encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
