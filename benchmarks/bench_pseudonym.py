"""Purpose pseudonyms per second: `python benchmarks/bench_pseudonym.py [ROWS]`.

Compares the JVM HMAC (jobs.pseudonym, what fusion and purge use) with the same HMAC as an
Arrow-batched Python UDF, over ROWS random 43-character link keys (default 2,000,000), each
forced to completion with a no-op write. Both must give the same strings; the table says how
much the JVM path saves.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from jobs.pseudonym import with_pseudonym
from mydata.config import Settings
from mydata.keys import Secret, purpose_pseudonym
from mydata.spark import spark_session


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    secret = Secret(bytes(range(32)))
    with tempfile.TemporaryDirectory(prefix="bench-pseudonym-") as tmp:
        spark = spark_session(Settings(data_root=Path(tmp)), "bench-pseudonym")
        keys = (spark.range(rows).select(F.substring(F.translate(F.base64(F.unhex(F.sha2(F.col("id").cast("string"), 256))),
                                                                 "+/", "-_"), 1, 43).alias("link_key")).cache())
        keys.count()
        python_udf = F.udf(lambda k: purpose_pseudonym(secret, k), StringType(), useArrow=True)
        timings = {}
        for name, frame in (("JVM HMAC (jobs.pseudonym)", with_pseudonym(keys, secret)),
                            ("Python UDF (Arrow)", keys.withColumn("pseudonym", python_udf("link_key")))):
            started = time.perf_counter()
            frame.write.format("noop").mode("overwrite").save()
            timings[name] = time.perf_counter() - started
        same = with_pseudonym(keys.limit(1000), secret).withColumn("check", python_udf("link_key")) \
            .where(F.col("pseudonym") != F.col("check")).count()
        assert same == 0, "the two HMACs disagree"
        print("| implementation | rows | seconds | pseudonyms/s |")
        print("|---|---|---|---|")
        for name, seconds in timings.items():
            print(f"| {name} | {rows:,} | {seconds:.1f} | {rows / seconds:,.0f} |")
        spark.stop()


if __name__ == "__main__":
    main()
