"""docker-compose.yml and the Dockerfile, checked without a Docker engine: the file parses, the
services are the ones the issue names, and the environment they set is the one the code reads."""
import json
import re

import pytest
import yaml

from mydata.config import ENV_VARS, PROJECT_ROOT, Settings
from mydata.orchestration import SPARK_CONN_ID, spark_connection

AIRFLOW_SERVICES = {"airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}
SPARK_SERVICES = {"spark-master", "spark-worker-1", "spark-worker-2"}
READ_ELSEWHERE = {"MYDATA_KEYS"}  # read by mydata.keys, not a Settings field


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def resolved(env: dict) -> dict[str, str]:
    """The environment as `docker compose` would pass it, with required variables set."""
    given = {"MYDATA_KEYS": '{"format": 1}', "POSTGRES_PASSWORD": "pw", "AIRFLOW_JWT_SECRET": "jwt"}
    return {k: re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: given[m.group(1)], str(v)) for k, v in env.items()}


def test_the_services_the_issue_names_share_one_image_and_the_data_volume(compose):
    services = compose["services"]
    assert {"postgres", "airflow-init"} | AIRFLOW_SERVICES | SPARK_SERVICES == set(services)
    for name in AIRFLOW_SERVICES | SPARK_SERVICES | {"airflow-init"}:
        assert services[name]["image"] == "mydata-fusion:latest", name
    assert services["airflow-init"]["build"] == "."
    for name in AIRFLOW_SERVICES | SPARK_SERVICES:
        assert "data:/data" in services[name]["volumes"], name
    assert services["airflow-scheduler"]["command"] == ["airflow", "scheduler"]
    assert services["airflow-dag-processor"]["command"] == ["airflow", "dag-processor"]
    master = services["spark-master"]["command"]
    assert "org.apache.spark.deploy.master.Master" in master
    for worker in ("spark-worker-1", "spark-worker-2"):
        assert services[worker]["command"][1:3] == ["org.apache.spark.deploy.worker.Worker", "spark://spark-master:7077"]


def test_the_environment_it_sets_is_the_environment_the_code_reads(compose):
    services = compose["services"]
    for name in AIRFLOW_SERVICES | SPARK_SERVICES:
        env = resolved(services[name]["environment"])
        unknown = {k for k in env if k.startswith("MYDATA_")} - set(ENV_VARS) - READ_ELSEWHERE
        assert not unknown, f"{name} sets {unknown}, which no code reads"
        settings = Settings.load(env=env)  # parses: valid values
        assert settings.data_root.as_posix() == "/data" and settings.spark_master == "spark://spark-master:7077"
    airflow = resolved(services["airflow-scheduler"]["environment"])
    assert json.loads(airflow[f"AIRFLOW_CONN_{SPARK_CONN_ID.upper()}"]) == \
        json.loads(spark_connection(airflow["MYDATA_SPARK_MASTER"]))
    assert airflow["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:pw@postgres:5432/")
    assert airflow["AIRFLOW__CORE__DAGS_FOLDER"] == airflow["MYDATA_DAGS_FOLDER"]


def test_no_secret_is_written_in_the_files(compose):
    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if re.search(r"PASSWORD|SECRET|KEYS", str(key)) and isinstance(value, str):
                    assert value.startswith("${") and ":?" in value, f"{key} must come from the environment"
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
    walk(compose)


def test_the_image_installs_the_project_with_the_same_pins():
    text = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install -c requirements/constraints.txt -e ." in text
    assert "FROM python:3.11" in text and "openjdk-17" in text
    setup = (PROJECT_ROOT / "setup.cfg").read_text(encoding="utf-8")
    packages = re.findall(r"^    (\w+)$", setup.split("[options.packages.find]")[1].split("[")[0], re.M)
    for package in set(packages) | {"dags"}:
        assert f"COPY {package} {package}" in text, f"the image lacks {package}/"
    for var in re.findall(r"\b(MYDATA_\w+)=", text):
        assert var in ENV_VARS, var
