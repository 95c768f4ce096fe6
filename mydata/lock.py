"""One writer at a time per lake: the lake lock (docs/concurrency.md).

Every stage that writes (ingest, validate, consent, fuse, features, release, segment, score,
purge, collect, the reviews) runs inside ``writing(settings, stage)``; readers never need it.
A second writer waits up to ``MYDATA_LOCK_WAIT`` seconds, saying so once, then fails with one
line naming the holder's run, stage, pid, host and start.

What it relies on: an advisory lock on ``<data root>/_lock/lake.lock`` taken with ``filelock``
(``fcntl.flock`` on Linux). The kernel drops it the moment the holder's process dies, however
it dies (``kill -9`` included), so a dead holder never wedges the lake: the next writer takes
the lock and says whose it was, from the holder file the dead run left. On a data root shared
over NFS (a Spark cluster's), Linux maps ``flock`` to NFS byte-range locks, which NFSv4 servers
release when a dead client's lease expires (about 90 s). What it does not promise: mutual
exclusion on object stores (S3, GCS: no locks), on NFS mounted with ``nolock`` or
``local_lock``, or between writers that do not use it.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock, Timeout

from mydata.errors import StageFailed

LOCK_FOLDER = "_lock"
_POLL = 0.5  # seconds between tries while another writer holds the lake

F = TypeVar("F", bound=Callable[..., Any])


class LakeBusy(StageFailed):
    """Another writer held the lake for longer than this one would wait."""


@dataclass(frozen=True)
class Holder:
    """Who holds the lake: written beside the lock while it is held."""

    stage: str
    pid: int
    host: str
    started_at: str
    run: str = ""

    def said(self) -> str:
        run = f"run {self.run}, " if self.run else ""
        return f"{run}stage {self.stage}, pid {self.pid} on {self.host}, since {self.started_at}"


@dataclass
class _Held:
    lock: FileLock
    holder_file: Path
    holder: Holder
    depth: int = 1
    notes: list[str] = field(default_factory=list)  # what taking the lake finished for dead runs


_held: dict[Path, _Held] = {}  # per data root, what this process holds
_guard = threading.Lock()


def _paths(root: Path) -> tuple[Path, Path]:
    folder = root / LOCK_FOLDER
    return folder / "lake.lock", folder / "holder.json"


def current_holder(root: Path) -> Holder | None:
    """The holder the lake's holder file names (a live writer, or a dead one's leftover)."""
    try:
        return Holder(**json.loads(_paths(root)[1].read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _write_holder(path: Path, holder: Holder) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(asdict(holder)), encoding="utf-8")
    os.replace(tmp, path)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def lake_lock(root: Path, stage: str, wait: float) -> Iterator[Holder]:
    """Hold the lake at ``root`` for ``stage``; reentrant within a process (a stage inside another)."""
    root = Path(root)
    with _guard:
        held = _held.get(root)
        if held is not None:
            held.depth += 1
    if held is not None:
        try:
            yield held.holder
        finally:
            with _guard:
                held.depth -= 1
        return
    lock_file, holder_file = _paths(root)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_file))
    deadline, waiting = time.monotonic() + wait, False
    while True:
        try:
            lock.acquire(timeout=min(_POLL, max(0.0, deadline - time.monotonic())))
            break
        except Timeout:
            other = current_holder(root)
            if time.monotonic() >= deadline:
                raise LakeBusy(f"{stage}: the lake {root} is held by another writer "
                               f"({other.said() if other else 'holder unknown'}); waited {wait:g}s "
                               "(MYDATA_LOCK_WAIT), nothing done") from None
            if not waiting:
                waiting = True
                _say(f"{stage}: waiting up to {wait:g}s for the lake lock, held by "
                     f"{other.said() if other else 'another writer'}")
    left = current_holder(root)
    if left is not None:  # its process ended without releasing: the kernel let go of its lock
        _say(f"{stage}: took over the lake lock from {left.said()}, which ended without releasing it")
    holder = Holder(stage, os.getpid(), socket.gethostname(), datetime.now(UTC).isoformat(timespec="seconds"))
    _write_holder(holder_file, holder)
    held = _Held(lock, holder_file, holder)
    with _guard:
        _held[root] = held
    try:
        held.notes += _recover_dead_runs(root, stage)
        yield holder
    except BaseException:
        # a failed run leaves nothing for the next one: its staging goes (a write that failed beside
        # others, a full disk), a publish it journaled lands; a cleanup that fails too is the next writer's
        with contextlib.suppress(Exception):
            _recover_dead_runs(root, stage)
        raise
    finally:
        with _guard:
            _held.pop(root, None)
        with contextlib.suppress(OSError):
            holder_file.unlink()
        lock.release()


def announce(run_id: str) -> list[str]:
    """Name the run that holds the lake (a manifest just started), for those who wait; return what
    taking the lake finished for dead runs, for that run's manifest."""
    notes: list[str] = []
    with _guard:
        for held in _held.values():
            notes += held.notes
            held.notes = []
            if not held.holder.run:
                held.holder = Holder(**{**asdict(held.holder), "run": run_id})
                with contextlib.suppress(OSError):
                    _write_holder(held.holder_file, held.holder)
    return notes


def _recover_dead_runs(root: Path, stage: str) -> list[str]:
    """With the lake held, every unfinished publish is a dead run's: finish or undo it before anything reads."""
    from mydata import storage
    from mydata.lake import Lake

    done = storage.roll_forward(Lake(root).publish_journal)  # journaled publishes land whole
    for table in storage.leftovers(root):  # the others are undone: old partitions back, staging dropped
        done += [f"{table.relative_to(root)}: {line}" for line in storage.recover(table)]
    for line in done:
        _say(f"{stage}: {line}")
    return done


def writes_lake(stage: str) -> Callable[[F], F]:
    """Run the decorated stage (its first argument the run's Settings) holding the lake lock."""
    def decorate(fn: F) -> F:
        @wraps(fn)
        def holding(settings, *args, **kwargs):
            with lake_lock(settings.data_root, stage, settings.lock_wait):
                return fn(settings, *args, **kwargs)
        return holding  # type: ignore[return-value]
    return decorate
