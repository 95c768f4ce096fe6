# One image for every service: Airflow (api-server, scheduler, dag-processor, triggerer) and the
# Spark standalone master and workers. The same pins as `make test` (requirements/constraints.txt),
# so a task runs the same code and libraries on the cluster as in the embedded run.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps tini \
 && rm -rf /var/lib/apt/lists/*

ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64 \
    PROJECT_ROOT=/opt/mydata \
    MYDATA_DATA_ROOT=/data \
    MYDATA_DAGS_FOLDER=/opt/mydata/dags \
    AIRFLOW_HOME=/opt/airflow \
    PYTHONPATH=/opt/mydata \
    PYSPARK_PYTHON=/usr/local/bin/python \
    PIP_NO_CACHE_DIR=1

WORKDIR /opt/mydata
COPY requirements/constraints.txt requirements/constraints.txt
COPY setup.cfg pyproject.toml ./
COPY cli cli
COPY mydata mydata
COPY jobs jobs
COPY schemas schemas
COPY features features
COPY models models
COPY render render
COPY dags dags
RUN pip install -c requirements/constraints.txt -e . \
 && useradd --uid 50000 --create-home mydata \
 && mkdir -p /data /opt/airflow && chown mydata /data /opt/airflow

USER mydata
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["mydata", "--help"]
