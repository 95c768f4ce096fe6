"""The engines a stage runs on, behind one small interface.

``duckdb`` (the default) runs in this process, vectorised, with no JVM; ``spark`` runs in local
mode, on a standalone cluster or through Spark Connect. Jobs write their work as SQL compiled for
the engine's ``dialect`` (``schemas.sql``) and hand it to the engine: read landing lines or a
lake table, keep an intermediate result, fetch a few rows, stage partitions for an atomic publish.
Both read and write the same Parquet lake, so a table written by one is read by the other.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mydata.config import Settings
from mydata.errors import StageFailed
from schemas.dialects import Dialect

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from mydata.storage import Staged
    from mydata.validation import TableValidation, Written



class UnreadableLanding(StageFailed):
    """A landing file that cannot be read to its end (a truncated or corrupt gzip): the delivery
    as a whole is bad, so the stage that reads it fails, naming the file."""


class Engine(ABC):
    """One engine's session: names registered here are visible to every later query."""

    name: str
    dialect: Dialect
    #: sources ingest runs at a time (Spark overlaps one's driver work with another's jobs)
    sources_at_once: int = 1
    #: landing text ingest reads at a time, in whole delivery dates (None: all of a source's): what
    #: the embedded engine holds is then bounded by its memory, not by the run's size
    landing_bytes_at_once: int | None = None
    #: ``table`` computes its result when called, so the names it read may be dropped after (Spark
    #: caches lazily, and a Connect client's plans name their views until they run)
    materializes: bool = True

    @abstractmethod
    def lines(self, name: str, files: list[Path], streamed: bool = False) -> None:
        """Register ``name``: the files' non-blank lines as ``value`` (invalid bytes replaced),
        ``bad_bytes`` (the line was not UTF-8), ``file_path`` (``file:`` URI), ``line_no``
        (1-based, counting blank lines) and ``dt`` (the delivery date from the path).
        ``streamed``: one query reads them, once, so the files are read as it runs, not kept."""

    @abstractmethod
    def arrow(self, name: str, table: pa.Table) -> None:
        """Register a small Arrow table (keys, parameters, test inputs) as ``name``."""

    @abstractmethod
    def table(self, name: str, sql: str) -> None:
        """Compute ``sql`` once and keep it as ``name`` (later queries read it, not the plan)."""

    @abstractmethod
    def view(self, name: str, sql: str) -> None:
        """Register ``sql`` as ``name``, evaluated where it is used (a filter or projection of a table)."""

    @abstractmethod
    def parquet(self, name: str, path: Path) -> bool:
        """Register the lake table at ``path`` as ``name``; False (nothing registered) when it has no data."""

    @abstractmethod
    def partition(self, name: str, table: Path, key: str, value: date) -> bool:
        """Register one partition (``key=value``) of the lake table at ``table`` as ``name``, with its
        key as a column; only that partition's files are read. False when it has no data."""

    @abstractmethod
    def rows(self, sql: str) -> list[dict[str, Any]]:
        """The (small) result of ``sql`` as dicts."""

    @abstractmethod
    def arrow_rows(self, sql: str) -> pa.Table:
        """The result of ``sql`` as an Arrow table in this process (a frame a person asked for)."""

    @abstractmethod
    def function(self, name: str, fn: Callable[..., Any], arguments: list[str], returns: str) -> None:
        """Register a Python function of one row's values (types in Spark's words) as SQL ``name``."""

    @abstractmethod
    def columns(self, name: str) -> list[str]:
        """The column names of the registered ``name``."""

    @abstractmethod
    def map_batches(self, name: str, sql: str, fn: Callable[[pd.DataFrame], pd.DataFrame],
                    schema: str) -> None:
        """Register ``name``: ``fn`` applied to the result of ``sql`` batch by batch (pandas in and
        out, ``schema`` in Spark's words); for a Python library such as a fitted model."""

    @abstractmethod
    def stage(self, sql: str, table: Path, dts: list[date], run_id: str,
              tables: list[str] | None = None, key: str = "dt") -> Staged:
        """``mydata.storage.stage`` of the result of ``sql``."""

    @abstractmethod
    def validate(self, written: list[Written], rows_at_once: int | None = None) -> list[TableValidation]:
        """Each bronze table's Great Expectations suite (``schemas.expectations``) over the delivery
        dates written, run inside the engine; ``rows_at_once`` bounds a batch (None: as the engine's
        memory allows)."""

    @abstractmethod
    def drop(self, *names: str) -> None:
        """Forget registered names and free what they kept."""

    def concurrently(self, calls: list[tuple]) -> list:
        """Run ``(function, *args)`` calls, their results in order (at once where the engine gains)."""
        return [call[0](*call[1:]) for call in calls]

    def close(self) -> None:  # noqa: B027 (most engines have nothing to release)
        """Release the session (the embedded engine's connection); Spark's lives on."""


def open_engine(settings: Settings, spark: Any = None) -> Engine:
    """The engine ``settings.engine`` names; ``spark`` reuses a running SparkSession."""
    if settings.engine == "spark":
        from mydata.engines.spark import SparkEngine
        from mydata.spark import spark_session

        return SparkEngine(spark or spark_session(settings, "mydata"))
    from mydata.engines.duckdb import DuckDBEngine

    return DuckDBEngine.connect(settings)
