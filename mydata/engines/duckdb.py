"""The embedded engine: DuckDB in this process.

Memory is bounded by ``duckdb_memory`` (``MYDATA_DUCKDB_MEMORY``); what does not fit spills under
the data root (``Lake.spill``). Landing files are split into lines here, in bulk (NumPy over 64 MiB
blocks, gzip streamed), so every line keeps its true number; DuckDB then checks the bytes.
"""
from __future__ import annotations

import gzip
import inspect
import re
import shutil
import zlib
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from duckdb import sqltypes

from mydata import storage
from mydata.config import SESSION_TIME_ZONE, Settings
from mydata.engines import Engine, UnreadableLanding
from schemas.dialects import DUCKDB

if TYPE_CHECKING:  # Great Expectations is imported only by a run that validates
    from mydata.validation import TableValidation, Written

BLOCK_BYTES = 64 << 20
MAP_BATCH_ROWS = 100_000  # rows a Python function gets at a time
#: ingest holds about 2 bytes per byte of landing text (parsed lines and a table's ranked rows, card at
#: 10k); twice that leaves the window's sort its room
MEMORY_PER_LANDING_BYTE = 4
#: rows validated at once per byte of the memory cap: 6GB checks 15M rows at once. At 100k subjects the
#: largest table (13.3M card approvals) was checked whole without spilling; at 1M, whole tables
#: (133M card approvals) spilled 33 GB and took 40x as long
CHECKED_ROWS_PER_MEMORY_BYTE = 1 / 400
_ARROW_TYPES = {"string": pa.string(), "int": pa.int32(), "long": pa.int64(), "double": pa.float64(),
                "date": pa.date32(), "boolean": pa.bool_()}
_DT = re.compile(r"/dt=(\d{4}-\d{2}-\d{2})/")
_LINES = pa.schema([("raw", pa.binary()), ("file_path", pa.string()), ("line_no", pa.int64()),
                    ("dt", pa.date32())])


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


BOM = b"\xef\xbb\xbf"  # UTF-8's byte-order mark, which some exports put before the first line


def line_batches(files: list[Path]) -> Iterator[pa.RecordBatch]:
    """Every line of ``files`` (with its newline), numbered from 1, a block at a time."""
    for path in files:
        try:
            yield from _file_batches(path)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableLanding(f"landing file {path} cannot be read to its end ({exc})") from exc


def _file_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """One file's lines (``line_batches``), numbered from 1."""
    uri, found = f"file:{path}", _DT.search(str(path))
    dt = date.fromisoformat(found.group(1)) if found else None
    before, carry = 0, b""
    with _open(path) as handle:
        while True:
            block = handle.read(BLOCK_BYTES)
            if before == 0 and not carry and block.startswith(BOM):  # a byte-order mark is not part of the record
                block = block[len(BOM):]
            data = carry + block
            if not block:  # the last line may lack its newline
                if data:
                    data += b"\n"
                carry = b""
            else:
                cut = data.rfind(b"\n") + 1
                data, carry = data[:cut], data[cut:]
            if data:
                ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10) + 1
                offsets = pa.py_buffer(np.concatenate([[0], ends]).astype(np.int32).tobytes())
                raw = pa.Array.from_buffers(pa.binary(), len(ends), [None, offsets, pa.py_buffer(data)])
                n = len(ends)
                yield pa.RecordBatch.from_arrays(
                    [raw, pa.array([uri] * n, pa.string()),
                     pa.array(np.arange(before + 1, before + n + 1), pa.int64()),
                     pa.array([dt] * n, pa.date32())], schema=_LINES)
                before += n
            if not block:
                break


def _valid_text(raw: bytes) -> str:
    """A line's bytes with every invalid sequence replaced by U+FFFD (called for bad lines only)."""
    return raw.decode("utf-8", "replace").removesuffix("\n").removesuffix("\r")


class _Write:
    """A query's result written as partitioned Parquet (what ``storage.stage`` asks of a frame).

    Rows go in the declared order (``storage.ROW_ORDER``: every column, left to right), one file per
    partition, so a rerun of the same inputs writes the same bytes; DuckDB's partitioned COPY
    interleaves its threads' rows, so each partition is its own ordered COPY."""

    def __init__(self, con: duckdb.DuckDBPyConnection, sql: str, only: tuple[str, date] | None = None) -> None:
        self.con, self.sql, self.only = con, sql, only  # only: the one partition the rows can be in

    def write_partitioned(self, path: Path, keys: list[str]) -> None:
        path.mkdir(parents=True, exist_ok=True)
        source, values = self.sql, [(self.only[1],)] if self.only else None
        if values is None:  # several partitions: the query runs once, each partition reads its rows
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE _partitioned AS {self.sql}")
            source = "SELECT * FROM _partitioned"
            listed = ", ".join(DUCKDB.ident(k) for k in keys)
            values = self.con.execute(f"SELECT DISTINCT {listed} FROM _partitioned ORDER BY ALL").fetchall()
        excluded = ", ".join(DUCKDB.ident(k) for k in keys)
        where = " AND ".join(f"{DUCKDB.ident(k)} = ?" for k in keys)
        try:  # an ORDER BY is kept without preserve_insertion_order, which would slow the query under it
            for value in values:
                folder = path.joinpath(*(f"{k}={v.isoformat() if isinstance(v, date) else v}"
                                         for k, v in zip(keys, value)))
                folder.mkdir(parents=True, exist_ok=True)
                # zstd's level 1: card approvals at 10k write in 2.1 s instead of 2.6 s, 9% larger
                written = self.con.execute(
                    f"COPY (SELECT * EXCLUDE ({excluded}) FROM ({source}) WHERE {where} "
                    f"ORDER BY {storage.ROW_ORDER}) TO '{folder / storage.PART_FILE}' "
                    "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)", list(value)).fetchone()[0]
                if not written:  # a partition with no rows is not staged: publishing removes it
                    shutil.rmtree(folder)
        finally:
            self.con.execute("DROP TABLE IF EXISTS _partitioned")


class DuckDBEngine(Engine):
    name, dialect = "duckdb", DUCKDB

    def __init__(self, con: duckdb.DuckDBPyConnection, config: dict[str, Any] | None = None) -> None:
        self.con = con
        self.config = config or {}  # what another connection of this run is opened with (memory, spill)
        self._kinds: dict[str, str] = {}  # registered name -> TABLE or VIEW
        self._functions: set[str] = set()
        self._streams: set[str] = set()  # streamed lines, whose readers are registered until dropped
        self._unreadable: UnreadableLanding | None = None
        self.checked_rows_at_once: int | None = None  # rows validated at once (None: a table whole)

    @classmethod
    def connect(cls, settings: Settings) -> DuckDBEngine:
        spill = settings.lake.spill
        spill.mkdir(parents=True, exist_ok=True)
        # the database is in memory: a checkpoint only compresses what the run will drop, and took
        # a second of every source's ingest at 10k
        config = {"memory_limit": settings.duckdb_memory, "temp_directory": str(spill),
                  "preserve_insertion_order": False, "checkpoint_threshold": "1TB"}
        if settings.duckdb_threads:
            config["threads"] = settings.duckdb_threads
        con = duckdb.connect(config=config)
        con.execute(f"SET TimeZone = '{SESSION_TIME_ZONE}'")  # ICU is loaded only once connected
        con.execute("SET enable_progress_bar = false")  # a task's log is no terminal
        con.create_function("valid_text", _valid_text, [sqltypes.BLOB], sqltypes.VARCHAR,
                            null_handling="special")
        engine = cls(con, config)
        engine.landing_bytes_at_once = settings.duckdb_memory_bytes // MEMORY_PER_LANDING_BYTE
        engine.checked_rows_at_once = int(settings.duckdb_memory_bytes * CHECKED_ROWS_PER_MEMORY_BYTE)
        return engine

    def lines(self, name: str, files: list[Path], streamed: bool = False) -> None:
        reader = pa.RecordBatchReader.from_batches(_LINES, self._read(files))
        self.con.register(f"{name}_raw", reader)
        kind = "VIEW" if streamed else "TABLE"  # a streamed view's reader is spent by the query that reads it
        # a line ends at \n; a \r before it is part of a CRLF ending, as Spark reads it; a blank
        # line is spaces only, as Spark's trim sees it (DuckDB's trim reads the whole line, 3x the cost)
        self._create(f"""
            CREATE OR REPLACE TEMP {kind} {name} AS
            SELECT CASE WHEN text IS NULL THEN valid_text(raw) ELSE line END AS value,
                   text IS NULL AS bad_bytes, file_path, line_no, dt
            FROM (SELECT raw, text, regexp_replace(text, '\\r?\\n$', '') AS line, file_path, line_no, dt
                  FROM (SELECT raw, try(decode(raw)) AS text, file_path, line_no, dt FROM {name}_raw))
            WHERE text IS NULL OR NOT {DUCKDB.blank('line')}""")
        self._kinds[name] = kind
        if streamed:
            self._streams.add(name)
        else:
            self.con.unregister(f"{name}_raw")

    def _read(self, files: list[Path]) -> Iterator[pa.RecordBatch]:
        """``line_batches``, an unreadable file kept to be raised as itself, not as the query's error."""
        try:
            yield from line_batches(files)
        except UnreadableLanding as exc:
            self._unreadable = exc
            raise

    def _create(self, sql: str) -> None:
        try:
            self.con.execute(sql)
        except duckdb.Error:
            unreadable, self._unreadable = self._unreadable, None  # said once: a later error is its own
            if unreadable is not None:  # a landing file failed to read: say so, not DuckDB's wrapping
                raise unreadable from None
            raise

    def arrow(self, name: str, table: pa.Table) -> None:
        self.con.register(f"{name}_arrow", table)
        self.table(name, f"SELECT * FROM {name}_arrow")
        self.con.unregister(f"{name}_arrow")

    def table(self, name: str, sql: str) -> None:
        self._create(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        self._kinds[name] = "TABLE"

    def view(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")
        self._kinds[name] = "VIEW"

    def parquet(self, name: str, path: Path) -> bool:
        scan = self.parquet_sql(path)
        if scan is not None:
            self.view(name, scan)
        return scan is not None

    def partition(self, name: str, table: Path, key: str, value: date) -> bool:
        scan = self.parquet_sql(table, f"{key}={value.isoformat()}")
        if scan is not None:
            self.view(name, scan)
        return scan is not None

    def parquet_sql(self, path: Path, partition: str | None = None) -> str | None:
        """The SELECT that reads the lake table at ``path``, or only its ``partition`` folder
        (``key=value``); None when it has no data."""
        patterns = [f"{partition}/*.parquet"] if partition is not None else storage.DATA_FILES
        files = sorted(str(f) for pattern in patterns for f in path.glob(pattern))
        if not files:
            return None
        # Spark before TIMESTAMP_MICROS wrote instants as INT96, which DuckDB reads as UTC wall time:
        # files are grouped by which columns they hold so, and those are read as the instants they are
        by_naive: dict[tuple[str, ...], list[str]] = {}
        for file in files:
            naive = tuple(f.name for f in pq.read_schema(file) if pa.types.is_timestamp(f.type) and f.type.tz is None)
            by_naive.setdefault(naive, []).append(file)
        # hive partitioning reads every key=value folder of the path: those above the table are not its columns
        above = {part.split("=", 1)[0] for part in path.parts if "=" in part}
        scans = []
        for naive, group in by_naive.items():
            scan = f"read_parquet({group!r}, hive_partitioning = true, union_by_name = true)"
            described = self.con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
            columns = ", ".join(f"timezone('UTC', {DUCKDB.ident(c)}) AS {DUCKDB.ident(c)}" if c in naive
                                else DUCKDB.ident(c) for c, *_ in described if c not in above)
            scans.append(f"SELECT {columns} FROM {scan}")
        return " UNION ALL BY NAME ".join(scans)

    def columns(self, name: str) -> list[str]:
        return [row[0] for row in self.con.execute(f"DESCRIBE {name}").fetchall()]

    def map_batches(self, name: str, sql: str, fn: Callable[[Any], Any], schema: str) -> None:
        fields = pa.schema([(n, _ARROW_TYPES[t]) for n, t in (part.split() for part in schema.split(","))])
        batches = [pa.RecordBatch.from_pandas(fn(batch.to_pandas()), schema=fields, preserve_index=False)
                   for batch in self.con.sql(sql).to_arrow_reader(MAP_BATCH_ROWS) if batch.num_rows]
        self.arrow(name, pa.Table.from_batches(batches, schema=fields))

    def arrow_rows(self, sql: str) -> pa.Table:
        return self.con.sql(sql).to_arrow_table()

    def rows(self, sql: str) -> list[dict[str, Any]]:
        result = self.con.execute(sql)
        names = [c[0] for c in result.description]
        return [dict(zip(names, row)) for row in result.fetchall()]

    def function(self, name: str, fn: Callable[..., Any], arguments: list[str], returns: str) -> None:
        if name in self._functions:
            return

        def vectorised(*columns: pa.Array) -> pa.Array:  # a batch of rows per call, not one
            return pa.array([fn(*row) for row in zip(*(c.to_pylist() for c in columns))], pa.string())
        # DuckDB counts the parameters of what it is given
        vectorised.__signature__ = inspect.Signature(
            [inspect.Parameter(f"a{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(len(arguments))])
        self.con.create_function(name, vectorised, [duckdb.sqltype(DUCKDB.sql_type(a)) for a in arguments],
                                 duckdb.sqltype(DUCKDB.sql_type(returns)), type="arrow")
        self._functions.add(name)

    def stage(self, sql: str, table: Path, dts: list[date], run_id: str,
              tables: list[str] | None = None, key: str = "dt") -> storage.Staged:
        only = (key, dts[0]) if tables is None and len(dts) == 1 else None
        return storage.stage(_Write(self.con, sql, only), table, dts, run_id, tables, key)

    def drop(self, *names: str) -> None:
        for name in names:
            kind = self._kinds.pop(name, None)
            if kind is not None:
                self.con.execute(f"DROP {kind} IF EXISTS {name}")
            if name in self._streams:
                self._streams.discard(name)
                self.con.unregister(f"{name}_raw")

    def validate(self, written: list[Written], rows_at_once: int | None = None) -> list[TableValidation]:
        from mydata.engines import gx_duckdb

        return gx_duckdb.validate(self, written, rows_at_once or self.checked_rows_at_once)

    def close(self) -> None:
        self.con.close()
