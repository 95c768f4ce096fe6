"""The one SparkSession factory: the JVM it starts keeps what it compiled."""


def test_a_query_run_again_after_many_others_compiles_nothing_new(spark):
    """A long-lived JVM (the test session, a Connect server) runs each job's queries again and again:
    their generated classes must still be cached after a whole run's worth of other queries."""
    metrics = spark._jvm.org.apache.spark.metrics.source.CodegenMetrics
    compiled = metrics.METRIC_COMPILATION_TIME().getCount

    def query(n: int) -> list:  # each n is its own generated code: the literal is compiled in
        return spark.range(3).selectExpr(f"id * {n} + {n} AS x", f"id < {n} AS y").collect()

    first = query(1_000)
    for n in range(60):  # two classes each: more than Spark's default cache of 100
        query(n)
    before = compiled()
    assert query(1_000) == first
    assert compiled() == before
