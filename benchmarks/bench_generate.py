"""Generator throughput and peak memory: `python benchmarks/bench_generate.py SUBJECTS [MONTHS]`.

Peak RSS is reported for the driver and for the largest worker process, to show that memory is
bounded by the chunk size, not by the number of subjects.
"""
from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

from mydata.config import Settings
from mydata.keys import KeyStore
from mydata.synth import GeneratorOptions, generate


def main() -> None:
    subjects = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    months = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        keystore = KeyStore.open(Settings(data_root=Path(tmp)), env={})
        keystore.rotate_link()
        started = time.perf_counter()
        summary = generate(Path(tmp), GeneratorOptions(subjects=subjects, months=months), keystore)
        elapsed = time.perf_counter() - started
        size = sum(p.stat().st_size for p in (Path(tmp) / "landing").rglob("*") if p.is_file())
    driver = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"| {subjects:,} | {months} | {summary.total_records:,} | {elapsed:.1f} s | "
          f"{summary.total_records / elapsed:,.0f} | {size / 2**20:,.0f} MiB | "
          f"{driver:,.0f} MiB | {worker:,.0f} MiB |")


if __name__ == "__main__":
    main()
