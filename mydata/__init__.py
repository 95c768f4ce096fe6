"""The runtime every stage shares: settings, lake paths, storage and the atomic publish, manifests,
the lake lock, progress, keys, the engines, the holder API client and Airflow wiring.

It imports only the contracts (``schemas``); every layer above it (features, render, models,
jobs, dags, cli) may import it. Development and test tooling lives in ``mydata.devtools``, which
only the CLI, tests, benchmarks and examples import (``tests/test_layout.py``).
"""
__version__ = "0.1.0"
