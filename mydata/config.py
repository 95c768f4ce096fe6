"""The one configuration object.

Precedence, lowest first: built-in defaults (the embedded run), environment variables
(``MYDATA_*``, what Airflow workers and docker-compose set), explicit overrides (CLI flags).
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from mydata.errors import UsageError
from mydata.lake import Lake

# the runtime's settings name the zone the contract declares
from schemas.dialects import SESSION_TIME_ZONE  # noqa: F401

PURPOSES = ("marketing", "credit_scoring", "analytics")

#: environment variable -> Settings field
ENV_VARS: dict[str, str] = {
    "MYDATA_DATA_ROOT": "data_root",
    "MYDATA_ENGINE": "engine",
    "MYDATA_DUCKDB_MEMORY": "duckdb_memory",
    "MYDATA_DUCKDB_THREADS": "duckdb_threads",
    "MYDATA_SPARK_MASTER": "spark_master",
    "MYDATA_PURPOSE": "purpose",
    "MYDATA_AS_OF": "as_of",
    "MYDATA_DT": "delivery_date",
    "MYDATA_SHUFFLE_PARTITIONS": "shuffle_partitions",
    "MYDATA_DRIVER_MEMORY": "driver_memory",
    "MYDATA_SPARK_UI": "spark_ui",
    "MYDATA_DAGS_FOLDER": "dags_folder",
    "MYDATA_K_ANONYMITY": "k_anonymity",
    "MYDATA_MAX_SUPPRESSION": "max_suppression",
    "MYDATA_DRIFT_THRESHOLD": "drift_threshold",
    "MYDATA_MAX_QUARANTINE_RATE": "max_quarantine_rate",
    "MYDATA_DP_BUDGET": "dp_budget",
    "MYDATA_ALLOW_BLANK_FEATURES": "allow_blank_features",
    "MYDATA_LOCK_WAIT": "lock_wait",
    "MYDATA_AS_OF_TOLERANCE_DAYS": "as_of_tolerance_days",
    "MYDATA_SKIP_BAD_LANDING": "skip_bad_landing",
    "MYDATA_GROUP_ACCESS": "group_access",
}

ENGINES = ("duckdb", "spark")
DUCKDB_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)
_UNITS = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}  # as DuckDB reads them

#: the least memory the embedded engine runs a stage in (a limit below it fails deep inside a query)
DUCKDB_MIN_MEMORY = 128 * 2**20
#: a JVM heap size as Spark takes it: 512m, 2g, 4096k
JVM_MEMORY = re.compile(r"^[1-9][0-9]*[kKmMgGtT]?$")

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class ConfigError(UsageError):
    """A setting has a value the pipeline cannot use."""


#: the masters Spark accepts that this project runs on: local mode, a standalone cluster, Spark Connect
MASTER_PATTERN = re.compile(r"^(local(\[(\*|[1-9][0-9]*)(,[0-9]+)?\])?|spark://[^\s/:]+(:[0-9]+)?(,[^\s/:]+(:[0-9]+)?)*"
                            r"|sc://[^\s/:]+(:[0-9]+)?(/.*)?|yarn|k8s://\S+)$")


def _number(name: str, value: Any, kind: type = float) -> Any:
    """A finite number: NaN and infinity compare false with every bound, so they would pass any check."""
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a {'whole number' if kind is int else 'number'}, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return number


def _parse_date(name: str, value: str | date | None) -> date | None:
    if value is None or isinstance(value, date):
        return value
    text = value.strip()
    if not text:
        return None
    for candidate in (text, f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 else text):
        try:
            return date.fromisoformat(candidate)
        except ValueError:
            continue
    raise ConfigError(f"{name} must be a date as YYYY-MM-DD or YYYYMMDD, got {value!r}")


def _parse_bool(name: str, value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


@dataclass(frozen=True)
class Settings:
    """Where the lake is, which Spark to use, and what one run is about."""

    data_root: Path = field(default_factory=lambda: Path.cwd() / "var")
    #: duckdb (embedded, the default) or spark; a spark:// or sc:// master means spark, whatever this says
    engine: str | None = None
    #: the embedded engine's memory limit (it spills the rest under the data root) and threads (0: all cores)
    duckdb_memory: str = "6GB"  # a cap, not a reservation: 100k subjects spill under 4GB
    duckdb_threads: int = 0
    spark_master: str = "local[*]"
    purpose: str = "marketing"
    as_of: date | None = None
    delivery_date: date | None = None
    shuffle_partitions: int = 8
    driver_memory: str = "4g"
    spark_ui: bool = False
    dags_folder: Path = PROJECT_ROOT / "dags"
    #: release gate: every quasi-identifier combination has at least k subjects, and at most this
    #: share of subjects may be suppressed to get there
    k_anonymity: int = 5
    max_suppression: float = 0.05
    #: retraining is due when a feature's or the segment shares' population stability index passes this
    drift_threshold: float = 0.25
    #: ingest fails when a table quarantines more than this share of a delivery's rows
    max_quarantine_rate: float = 0.02
    #: the privacy budget (total ε) of the differentially private releases of one purpose's snapshot
    dp_budget: float = 3.0
    #: a release whose feature was informative in the previous release and is now constant or all
    #: null fails, unless this allows it (a holder that stopped delivering a table, known and accepted)
    allow_blank_features: bool = False
    #: seconds a writing stage waits for the lake lock another writer holds, then fails (mydata/lock.py)
    lock_wait: float = 300.0
    #: how many days past today an as-of date may lie (0: none; consent is never evaluated ahead of time)
    as_of_tolerance_days: int = 0
    #: ingest and the landing inventory skip (and report) what is not a well-formed delivery, instead of failing
    skip_bad_landing: bool = False
    #: what the pipeline creates (the lake, the Airflow home) is owner-only; with this, the owner's group reads it too
    group_access: bool = False

    @property
    def duckdb_memory_bytes(self) -> int:
        number, unit = DUCKDB_MEMORY.match(str(self.duckdb_memory)).groups()
        return int(float(number) * _UNITS[unit.lower()])

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_root", Path(self.data_root).expanduser().resolve())
        object.__setattr__(self, "dags_folder", Path(self.dags_folder).expanduser().resolve())
        object.__setattr__(self, "as_of", _parse_date("as_of", self.as_of))
        object.__setattr__(self, "delivery_date", _parse_date("delivery_date", self.delivery_date))
        object.__setattr__(self, "spark_ui", _parse_bool("spark_ui", self.spark_ui))
        object.__setattr__(self, "allow_blank_features", _parse_bool("allow_blank_features", self.allow_blank_features))
        object.__setattr__(self, "skip_bad_landing", _parse_bool("skip_bad_landing", self.skip_bad_landing))
        object.__setattr__(self, "group_access", _parse_bool("group_access", self.group_access))
        object.__setattr__(self, "shuffle_partitions", _number("shuffle_partitions", self.shuffle_partitions, int))
        object.__setattr__(self, "k_anonymity", _number("k_anonymity", self.k_anonymity, int))
        object.__setattr__(self, "duckdb_threads", _number("duckdb_threads", self.duckdb_threads, int))
        object.__setattr__(self, "engine", self._engine())
        if not DUCKDB_MEMORY.match(str(self.duckdb_memory)):
            raise ConfigError(f"duckdb_memory must be a size such as 4GB or 512MB, got {self.duckdb_memory!r}")
        if self.duckdb_threads < 0:
            raise ConfigError(f"duckdb_threads must be 0 (all cores) or more, got {self.duckdb_threads}")
        for name in ("max_suppression", "drift_threshold", "max_quarantine_rate", "dp_budget", "lock_wait"):
            object.__setattr__(self, name, _number(name, getattr(self, name)))
        if not 0 <= self.lock_wait < 86_400:
            raise ConfigError(f"lock_wait must be seconds in [0, 86400), got {self.lock_wait}")
        object.__setattr__(self, "as_of_tolerance_days", _number("as_of_tolerance_days", self.as_of_tolerance_days, int))
        latest = date.today() + timedelta(days=self.as_of_tolerance_days)
        if self.as_of is not None and self.as_of > latest:
            raise ConfigError(f"as_of {self.as_of} is after today ({date.today()}): consent and deliveries would be "
                              "read as of a day that has not come; MYDATA_AS_OF_TOLERANCE_DAYS allows a stated margin")
        if self.duckdb_memory_bytes < DUCKDB_MIN_MEMORY:
            raise ConfigError(f"duckdb_memory {self.duckdb_memory} is below the {DUCKDB_MIN_MEMORY // 2**20} MiB the "
                              "embedded engine needs to run a stage (MYDATA_DUCKDB_MEMORY)")
        if not JVM_MEMORY.match(str(self.driver_memory)):
            raise ConfigError(f"driver_memory must be a JVM size such as 2g or 1024m, got {self.driver_memory!r} "
                              "(MYDATA_DRIVER_MEMORY)")
        if self.k_anonymity < 2 or not 0 <= self.max_suppression < 1:
            raise ConfigError(f"k_anonymity must be at least 2 and max_suppression in [0, 1), got "
                              f"{self.k_anonymity} and {self.max_suppression}")
        if self.drift_threshold <= 0:
            raise ConfigError(f"drift_threshold must be above 0, got {self.drift_threshold}")
        if not 0 <= self.max_quarantine_rate <= 1:
            raise ConfigError(f"max_quarantine_rate must be a share in [0, 1], got {self.max_quarantine_rate}")
        if self.dp_budget <= 0:
            raise ConfigError(f"dp_budget must be above 0, got {self.dp_budget}")
        if self.shuffle_partitions < 1:
            raise ConfigError(f"shuffle_partitions must be at least 1, got {self.shuffle_partitions}")
        if self.purpose not in PURPOSES:
            raise ConfigError(f"purpose must be one of {', '.join(PURPOSES)}, got {self.purpose!r}")
        if not MASTER_PATTERN.match(self.spark_master or ""):
            raise ConfigError(f"spark_master must be a master URL such as local[*], spark://host:7077 or "
                              f"sc://host:15002 (a Spark Connect server), got {self.spark_master!r}")

    def _engine(self) -> str:
        if (self.spark_master or "").startswith(("spark://", "sc://")):
            return "spark"  # a cluster master means the stages run on that cluster
        engine = (self.engine or "duckdb").strip().lower()
        if engine not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        return engine

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``MYDATA_*`` variables from ``env``, then non-None ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for var, name in ENV_VARS.items():
            if env.get(var):
                values[name] = env[var]
        known = {f.name for f in dataclasses.fields(cls)}
        for name, value in overrides.items():
            if name not in known:
                raise ConfigError(f"unknown setting {name!r}")
            if value is not None:
                values[name] = value
        return cls(**values)

    @property
    def spark_connect(self) -> bool:
        """The master is a Spark Connect server (``sc://host:port``): jobs run as its clients."""
        return self.spark_master.startswith("sc://")

    @property
    def lake(self) -> Lake:
        return Lake(self.data_root)

    def check_data_root(self, write: bool = True) -> None:
        """Fail in one line, before any Spark work, when the data root cannot serve as the lake."""
        root = self.data_root
        if root.exists() and not root.is_dir():
            raise ConfigError(f"the data root {root} is a file, not a folder; point --data-root "
                              "(MYDATA_DATA_ROOT) at the lake's folder")
        if not root.exists():
            if write:
                raise ConfigError(f"the data root {root} does not exist; create it, point --data-root "
                                  "(MYDATA_DATA_ROOT) at your lake, or run `mydata generate`")
            raise ConfigError(f"the data root {root} does not exist: there is no lake there; check --data-root "
                              "(MYDATA_DATA_ROOT)")
        if write:
            probe = root / f".mydata-write-check-{os.getpid()}"
            try:
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as exc:
                raise ConfigError(f"the data root {root} is not writable ({exc.strerror}); make it writable "
                                  "for this user or point --data-root (MYDATA_DATA_ROOT) elsewhere") from None

    def restrict_new_files(self) -> None:
        """Files and folders this process creates from now on are the owner's only (or its group's
        too, with ``group_access``): bronze, the ledger and airflow.db hold pseudonymised personal data."""
        os.umask(0o027 if self.group_access else 0o077)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def as_env(self) -> dict[str, str]:
        """The environment that makes another process (an Airflow task, spark-submit) see these settings."""
        env = {}
        for var, name in ENV_VARS.items():
            value = getattr(self, name)
            if value is not None:
                env[var] = value.isoformat() if isinstance(value, date) else str(value)
        return env
