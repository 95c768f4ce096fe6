"""Segmentation training time and Spark scoring rows/s: `python benchmarks/bench_models.py [ROWS ...]`.

Starts from a snapshot the pipeline published (default: the one `bench_pipeline.py 10000` left
under ``var/bench/10000x6``) and resamples it to each size in ROWS (default 100,000 and
1,000,000): rows drawn with replacement, every amount jittered by ±5% so no two rows are equal,
new pseudonyms. Each resampled snapshot is published under ``var/bench/models/<rows>/`` and
then, through the project's own entry points:

- trained as `mydata model train` does (k chosen over 3..10 by silhouette, bootstrap stability),
  with KMeans and with MiniBatchKMeans, and registered;
- scored by `jobs.score.run` (Spark, the model broadcast, mapInPandas, written to gold).

Prints one Markdown row per size and algorithm, keeps the figures in
``var/bench/results/models.json`` (by size and algorithm, the newest kept) and regenerates
``benchmarks/RESULTS.md`` with them.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from models.pipeline import ModelSpec
from mydata.config import PROJECT_ROOT, Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import DEFAULT_ROOT, MODELS_JSON, write_results  # noqa: E402  (one writer of RESULTS.md)

AS_OF = "2026-11-01"


def resample(source: Path, rows: int, target: Path, seed: int = 0) -> Path:
    """``rows`` rows drawn with replacement from the snapshot at ``source``, numeric values jittered."""
    table = pq.read_table(source)
    rng = np.random.default_rng(seed)
    picked = table.take(rng.integers(0, table.num_rows, rows))
    columns = {}
    for name, column in zip(picked.column_names, picked.columns):
        if name == "pseudonym":
            columns[name] = pa.array([f"bench{i:08d}" for i in range(rows)])
        elif pa.types.is_floating(column.type):
            values = column.to_numpy(zero_copy_only=False)
            columns[name] = pa.array(values * rng.uniform(0.95, 1.05, rows), type=column.type)
        else:
            columns[name] = column
    folder = target / "gold" / "features" / "purpose=marketing" / f"as_of={AS_OF}"
    shutil.rmtree(target, ignore_errors=True)
    folder.mkdir(parents=True)
    pq.write_table(pa.table(columns), folder / "part-00000.parquet", row_group_size=100_000)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--source", type=Path,
                        default=PROJECT_ROOT / "var" / "bench" / "10000x6" / "gold" / "features" / "purpose=marketing")
    parser.add_argument("--algorithms", default="kmeans,minibatch_kmeans")
    parser.add_argument("--driver-memory", default="6g")
    args = parser.parse_args()
    published = sorted(p for p in args.source.glob("as_of=*") if any(p.glob("*.parquet")))
    if not published:
        raise SystemExit(f"no published snapshot under {args.source}: run benchmarks/bench_pipeline.py 10000 first")

    from jobs import score, segment
    from models import registry
    from mydata.spark import spark_session

    results = []
    spark = None
    for rows in args.rows:
        root = PROJECT_ROOT / "var" / "bench" / "models" / str(rows)
        started = time.perf_counter()
        resample(published[-1], rows, root)
        prepared = time.perf_counter() - started
        settings = Settings(data_root=root, purpose="marketing", as_of=AS_OF, driver_memory=args.driver_memory)
        if spark is None:
            spark = spark_session(settings, "bench-models")
        for algorithm in args.algorithms.split(","):
            started = time.perf_counter()
            trained = segment.run(settings, ModelSpec(algorithm=algorithm), promote=True)
            training = time.perf_counter() - started
            started = time.perf_counter()
            scored = score.run(settings, spark)
            scoring = time.perf_counter() - started
            assert scored["rows"] == rows, scored
            m = trained["metrics"]
            results.append((rows, algorithm, training, m["k"], m["silhouette"], m["stability_ari"], scoring))
            print(json.dumps({"rows": rows, "algorithm": algorithm, "train_s": round(training, 1),
                              "score_s": round(scoring, 1), "resample_s": round(prepared, 1),
                              "version": registry.current_version(settings.lake, "marketing")}), flush=True)
    features = len(registry.get(settings.lake, "marketing").metadata["features"])
    print(f"features per row: {features}")
    save([{"rows": rows, "features": features, "algorithm": algorithm, "train_s": training, "k": k,
           "silhouette": silhouette, "stability_ari": stability, "score_s": scoring,
           "measured": datetime.now(UTC).isoformat(timespec="seconds")}
          for rows, algorithm, training, k, silhouette, stability, scoring in results])
    print("| rows | algorithm | training (k over 3..10, stability) | k | silhouette | stability ARI | "
          "scoring (Spark) | scoring rows/s |")
    print("|---|---|---|---|---|---|---|---|")
    for rows, algorithm, training, k, silhouette, stability, scoring in results:
        print(f"| {rows:,} | {algorithm} | {training:.1f} s | {k} | {silhouette:.3f} | {stability:.3f} | "
              f"{scoring:.1f} s | {rows / scoring:,.0f} |")


def save(figures: list[dict], folder: Path = DEFAULT_ROOT / "results") -> None:
    """Merge into ``models.json`` (a size and algorithm measured again replaces its old figures)."""
    path = folder / MODELS_JSON
    kept = {(m["rows"], m["algorithm"]): m for m in (json.loads(path.read_text(encoding="utf-8"))
                                                     if path.is_file() else [])}
    kept.update({(m["rows"], m["algorithm"]): m for m in figures})
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(kept.values()), indent=1), encoding="utf-8")
    write_results(folder)


if __name__ == "__main__":
    main()
