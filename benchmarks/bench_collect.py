"""Collection throughput against the holder simulator on loopback: calls per second with a 20 ms
simulated latency per call and a concurrency limit of 8 (at most 400 calls/s in theory).

    python benchmarks/bench_collect.py [DATA_ROOT] [--source telecom] [--latency 0.02] [--concurrency 8]

DATA_ROOT holds a generated landing zone (default var, what `make demo` generated); the busiest
holder of the source's latest delivery is served. Prints one line of figures (for the notes).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

from mydata.collect.collector import HolderConnection, Limits, collect
from mydata.devtools.simulator import Faults, HolderSimulator, busiest_holder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root", nargs="?", default="var")
    parser.add_argument("--source", default="telecom", choices=("bank", "card", "telecom"))
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    landing = Path(args.data_root) / "landing"
    dt = sorted(p.name[3:] for p in (landing / args.source).glob("dt=*"))[-1]
    org = busiest_holder(landing / args.source / f"dt={dt}")
    with HolderSimulator(landing, args.source, org, dt, faults=Faults(latency=args.latency)) as holder, \
            tempfile.TemporaryDirectory() as target:
        connection = HolderConnection(args.source, org, holder.url, holder.client_id, holder.client_secret)
        started = time.monotonic()
        done = collect(Path(target), connection, date.fromisoformat(dt), [(s, 1) for s in holder.subjects],
                       Limits(concurrency=args.concurrency, calls_per_second=1e6))
        seconds = time.monotonic() - started
    print(f"{args.source} holder {org}, {len(holder.subjects):,} subjects: {done['calls']:,} data calls in "
          f"{seconds:.1f}s = {done['calls'] / seconds:,.0f} data calls/s at {args.latency * 1000:.0f} ms latency and "
          f"concurrency {args.concurrency} (ceiling {args.concurrency / args.latency:,.0f}/s), plus "
          f"{done['token_refreshes']:,} token calls; {done['pages']:,} pages, {done['bytes']:,} bytes")

if __name__ == "__main__":
    main()
