# The two commands: `make demo` and `make test`. Both create the virtualenv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONSTRAINTS := requirements/constraints.txt
PYTEST_ARGS ?=
SCALE ?= 10000
ENGINE ?= duckdb
DRIVER_MEMORY ?=

.PHONY: venv demo ui test browser test-scheduler bench clean-data

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $(STAMP)

demo: venv
	$(VENV)/bin/mydata demo

# The Airflow UI on the demo's Airflow home, at http://127.0.0.1:8080 until Ctrl-C (docs/airflow.md)
ui: venv
	$(VENV)/bin/mydata airflow ui

test: venv browser
	$(PY) -m pytest $(PYTEST_ARGS)

# Debian's Chromium and its driver, for the browser tests (the reports' front page, the Airflow UI),
# and a font with Hangul: without one, Korean on the reports renders as empty boxes
CJK_FONT := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
browser: /usr/bin/chromedriver $(CJK_FONT)

/usr/bin/chromedriver:
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null)'

$(CJK_FONT):
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get install -y -q fonts-noto-cjk >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null && apt-get install -y -q fonts-noto-cjk >/dev/null)'

# Only the system test of the real scheduler on a throwaway Postgres backfilling mydata_ingest
# (part of `make test`; about a minute here).
test-scheduler: venv
	$(PY) -m pytest -m scheduler $(PYTEST_ARGS)

# Generation (the first time at a scale) and every stage at SCALE subjects x 6 months against plain
# Spark SQL and DuckDB, then training and scoring at 100k and 1M rows; regenerates
# benchmarks/RESULTS.md from every figure measured so far (for the notes, never a timed test).
# DRIVER_MEMORY: the heap of the one driver JVM that runs every stage (default: the config's;
# RESULTS.md says which each scale used).
bench: venv
	$(PY) benchmarks/bench_pipeline.py $(SCALE) --engine $(ENGINE) $(if $(DRIVER_MEMORY),--driver-memory $(DRIVER_MEMORY))
	$(PY) benchmarks/bench_models.py --source var/bench/$(SCALE)x6/gold/features/purpose=marketing


clean-data:
	rm -rf var
