"""Development and test tooling, never imported by the runtime: the synthetic-data generator
(``synth``), a MyData holder simulator (``simulator``), a Spark standalone cluster on loopback
(``cluster``) and a throwaway Postgres-backed Airflow scheduler (``airflow_stack``). The CLI,
the tests, the benchmarks and the demo use them; ``tests/test_layout.py`` says nothing else does.
"""
