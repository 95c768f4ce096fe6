"""Atomic, idempotent partition replacement for plain Parquet tables (no Delta/Iceberg here).

A run writes its partitions aside (``<table>/_staging/<run_id>/dt=...``, ``stage``), then swaps
each one in (``publish``) with two renames: the old partition to ``_trash/<run_id>/``, the new
one into place. Readers never see a half-written partition: a run killed while writing leaves
only staging behind, and a run killed between the two renames is rolled back by ``recover`` (the
next writer calls it), which puts the old partition back. A run that writes many tables (ingest) stages them all, then
publishes them together behind a journal: a run killed while staging leaves every table as it
was, and one killed while swapping is finished by ``roll_forward`` before the next run starts.
Rerunning a date replaces its partition, never appends.
Spark ignores the ``_staging`` and ``_trash`` folders when it reads the table.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from mydata.errors import StageFailed

STAGING, TRASH = "_staging", "_trash"
#: a partition's rows are written sorted by every column, left to right, into files named in order
#: (one, as a rule): a rerun of the same inputs writes the same bytes (and the registry the same snapshot hash)
ROW_ORDER, PART_NAME = "ALL", "data_{}.parquet"
PART_FILE = PART_NAME.format(0)
#: tests/reliability kill a real run at a named point of its publish (kill -9: no cleanup, no finally)
CRASH_AT = "MYDATA_CRASH_AT"
#: … or stop a real run there (SIGSTOP), to start another writer beside it, then continue it
PAUSE_AT = "MYDATA_PAUSE_AT"


def crash_point(name: str) -> None:
    """Die here, as a kill -9 would, or stop here, when the reliability suite asks for it by name."""
    if os.environ.get(CRASH_AT) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(PAUSE_AT) == name:
        os.kill(os.getpid(), signal.SIGSTOP)


def _live(entry: Path, run_id: str | None) -> bool:
    """Staging or trash of the running ``run_id`` (one of its concurrent writes), not leftovers."""
    return run_id is not None and entry.name.startswith(run_id)


def recover(table: Path, run_id: str | None = None) -> list[str]:
    """Undo what an interrupted swap left behind, sparing the writes of the running ``run_id``;
    return what it did."""
    done = []
    trash_root = table / TRASH
    for run in sorted(trash_root.iterdir()) if trash_root.is_dir() else []:
        if _live(run, run_id):
            continue
        for old in sorted(run.iterdir()):
            final = table / old.name
            if not final.exists():
                os.rename(old, final)
                done.append(f"restored {final.name} from interrupted run {run.name}")
        shutil.rmtree(run)
    staging_root = table / STAGING
    if staging_root.is_dir():
        for run in sorted(staging_root.iterdir()):
            if _live(run, run_id):
                continue
            shutil.rmtree(run)
            done.append(f"removed staging of interrupted run {run.name}")
    return done


@dataclass(frozen=True)
class Staged:
    """A run's partitions written aside, not yet visible: ``publish`` swaps them in."""

    staging: Path
    #: (staged partition folder, final partition folder) for every partition the write replaces
    moves: tuple[tuple[Path, Path], ...]
    run_id: str


def stage(frame: Any, table: Path, dts: list[date], run_id: str,
          tables: list[str] | None = None, key: str = "dt") -> Staged:
    """Write ``frame`` (a Spark DataFrame, or an engine's query with ``write_partitioned``; with a ``key`` column, ``dt`` by default) aside as the whole content of
    partitions ``dts`` of ``table``; nothing a reader sees changes until ``publish``.

    With ``tables``, ``frame`` has a ``table`` column and ``table`` is the folder holding one
    table per value (quarantine/<table>/dt=...): one write job serves them all. Writes of one run
    may go on concurrently into one folder when their ``tables`` differ: each stages aside.
    """
    targets = [table / name for name in tables] if tables is not None else [table]
    for target in {table, *targets}:
        target.mkdir(parents=True, exist_ok=True)
        recover(target, run_id)
    staging = table / STAGING / f"{run_id}.{uuid.uuid4().hex[:8]}"
    keys = ["table", key] if tables is not None else [key]
    # on the class: a Spark Connect DataFrame answers any attribute of an instance with a Column
    try:
        if hasattr(type(frame), "write_partitioned"):  # an embedded engine's query
            frame.write_partitioned(staging, keys)
        else:
            _write_in_order(frame, staging, keys)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # a write that failed (a full disk) leaves nothing behind
        _remove_if_empty(staging.parent)
        raise
    moves = []
    for target in targets:
        source = staging / f"table={target.name}" if tables is not None else staging
        moves += [(source / f"{key}={dt.isoformat()}", target / f"{key}={dt.isoformat()}") for dt in dts]
    return Staged(staging, tuple(moves), run_id)


def _write_in_order(frame: DataFrame, staging: Path, keys: list[str]) -> None:
    """A Spark frame written one file per partition, its rows in ``ROW_ORDER``, under a fixed name."""
    from pyspark.sql.types import MapType

    ordered = [f.name for f in frame.schema.fields if f.name not in keys and not isinstance(f.dataType, MapType)]
    (frame.repartition(*keys).sortWithinPartitions(*keys, *ordered)
     .write.mode("overwrite").partitionBy(*keys).parquet(str(staging)))
    # every partition's rows went to one task: its files (one, unless a setting splits them) in their order
    for folder in sorted({part.parent for part in staging.rglob("part-*.parquet")}):
        for n, part in enumerate(sorted(folder.glob("part-*.parquet"))):
            named = part.with_name(PART_NAME.format(n))
            part.rename(named)
            checksum = part.with_name(f".{part.name}.crc")  # Hadoop's, of the bytes: it holds under the new name
            if checksum.exists():
                checksum.rename(named.with_name(f".{named.name}.crc"))


def stage_file(final: Path, text: str, run_id: str) -> Staged:
    """A whole file (a signed head list, a manifest) written aside, to land with a run's partitions."""
    staging = final.parent / STAGING / f"{run_id}.{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        (staging / final.name).write_text(text, encoding="utf-8")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Staged(staging, ((staging / final.name, final),), run_id)


_FULL = ("No space left on device", "Disk quota exceeded", "ENOSPC")


def disk_full(exc: BaseException, root: Path) -> str | None:
    """One line for a full disk, whatever raised it (Python, DuckDB, Spark): the path and the free
    space; None for any other error."""
    import errno
    import re

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = exc.filename or root
    elif any(word in str(exc) for word in _FULL):
        found = re.search(r"(/[^\s\"':]+)", str(exc))
        where = found.group(1) if found else root
    else:
        return None
    usage = shutil.disk_usage(next((p for p in (Path(where), *Path(where).parents) if p.exists()), root))
    return (f"no space left on the device writing {where}: {usage.free / 2**20:,.0f} MiB free of "
            f"{usage.total / 2**20:,.0f} MiB; nothing was published (free space, or point --data-root elsewhere)")


def publish(writes: list[Staged], journal: Path | None = None) -> None:
    """Swap every staged partition of ``writes`` in, one rename each (a partition with no staged
    rows is removed). With ``journal`` (a folder), the moves are recorded there first: a run killed
    while swapping is then rolled forward by ``roll_forward``, so the run lands whole."""
    moves = [(new, final, new.exists()) for write in writes for new, final in write.moves]
    record = None
    if journal is not None and writes:
        journal.mkdir(parents=True, exist_ok=True)
        record = journal / f"{writes[0].run_id}.json"
        tmp = record.with_suffix(".tmp")
        tmp.write_text(json.dumps([[str(new), str(final), has_new] for new, final, has_new in moves]),
                       encoding="utf-8")
        os.replace(tmp, record)
    crash_point("publish:journaled")
    _swap(moves, writes[0].run_id if writes else "")
    crash_point("publish:swapped")
    discard(writes)
    if record is not None:
        record.unlink()


def _swap(moves: list[tuple[Path, Path, bool]], run_id: str) -> None:
    """Old partition to the table's ``_trash/<run_id>``, the staged one (if the run has rows for
    it) into place; then the trash goes. Safe to repeat after a kill: a staged partition that is
    gone was moved already, and a final one without a staged twin can only be the old one."""
    trashes = set()
    for new, final, has_new in moves:
        if has_new and not new.exists():
            continue  # moved in before the kill
        if has_new and new.is_file():  # a whole file is replaced in one step
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(new, final)
            crash_point("publish:swapping")
            continue
        trash = final.parent / TRASH / run_id
        trash.mkdir(parents=True, exist_ok=True)
        trashes.add(trash)
        if final.exists():
            os.rename(final, trash / final.name)
            crash_point("publish:half-swapped")  # the old partition aside, the new one not yet in
        if has_new:
            os.rename(new, final)
            crash_point("publish:swapping")
    for trash in trashes:
        shutil.rmtree(trash)
        _remove_if_empty(trash.parent)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not there, or still in use by a concurrent write of the run
        pass


def roll_forward(journal: Path) -> list[str]:
    """Finish the publish of every run whose journal is still there (it was killed while swapping)."""
    done = []
    for record in sorted(journal.glob("*.json")) if journal.is_dir() else []:
        moves = [(Path(new), Path(final), bool(has_new))
                 for new, final, has_new in json.loads(record.read_text(encoding="utf-8"))]
        _swap(moves, record.stem)
        for new, _, _ in moves:  # <table>/_staging/<run>.<id>/[table=X/]dt=...: the run's staging
            staging = next((p for p in new.parents if p.parent.name == STAGING), None)
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
                _remove_if_empty(staging.parent)
        record.unlink()
        done.append(f"finished publishing interrupted run {record.stem} ({len(moves)} partitions)")
    return done


class UnfinishedPublish(StageFailed):
    """A reader asked for a partition that a run began to replace and did not finish."""


def refuse_unfinished(journal: Path, *folders: Path) -> None:
    """A reader's check: refuse any of ``folders`` while an unfinished publish is swapping it."""
    for run, partitions in unfinished(journal).items():
        for folder in folders:
            if str(folder) in partitions:
                raise UnfinishedPublish(f"{folder} is part of run {run}'s unfinished publish: it may hold a mix of "
                                        "old and new; the next writing stage finishes it (or run `mydata recover`)")


def unfinished(journal: Path) -> dict[str, list[str]]:
    """Publishes a run began and did not finish (its journal is still there): run -> the final
    partitions it swaps. A live writer's are in flight; any other's wait for the next writer."""
    found = {}
    for record in sorted(journal.glob("*.json")) if journal.is_dir() else []:
        try:
            found[record.stem] = [final for _, final, _ in json.loads(record.read_text(encoding="utf-8"))]
        except (OSError, ValueError):
            found[record.stem] = []
    return found


def leftovers(root: Path) -> list[Path]:
    """Tables under ``root`` holding staging or trash (a dead run's, once the lake is held)."""
    return sorted({p.parent for name in (STAGING, TRASH) for p in root.rglob(name) if p.is_dir()})


def discard(writes: list[Staged]) -> None:
    """Drop staged writes that will not be published (the run failed before its publish)."""
    for write in writes:
        shutil.rmtree(write.staging, ignore_errors=True)
        _remove_if_empty(write.staging.parent)


def replace_partitions(frame: DataFrame, table: Path, dts: list[date], run_id: str,
                       tables: list[str] | None = None, key: str = "dt") -> None:
    """``stage`` then ``publish`` one write: partitions ``dts`` of ``table`` become ``frame``'s."""
    publish([stage(frame, table, dts, run_id, tables, key)])


#: a table's data files: Parquet in a partition folder (``dt=``, ``as_of=``, …), one or two levels down
DATA_FILES = ("*=*/*.parquet", "*=*/*=*/*.parquet")


def has_data(table: Path) -> bool:
    """Any data file in the table (an empty partition folder or staging is not data)."""
    return any(any(table.glob(pattern)) for pattern in DATA_FILES)


def rows_in(partition: Path) -> int:
    """Rows in a partition folder's Parquet files, from their footers (0 when it holds none)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(path).metadata.num_rows for path in partition.glob("*.parquet"))


def read_table(spark: SparkSession, table: Path) -> DataFrame | None:
    """The table's current partitions, or None when it holds no data yet."""
    return spark.read.parquet(str(table)) if table.is_dir() and has_data(table) else None


def date_batches(sizes: dict[date, int], budget: int | None) -> list[list[date]]:
    """Consecutive partition dates in batches whose sizes add up to at most ``budget`` (a bigger
    date alone; None: one batch), for work that must not hold a whole run at once."""
    batches: list[list[date]] = []
    held = 0
    for dt in sorted(sizes):
        if batches and (budget is None or held + sizes[dt] <= budget):
            batches[-1].append(dt)
            held += sizes[dt]
        else:
            batches.append([dt])
            held = sizes[dt]
    return batches
