"""Live progress of a run: a stage names each step it takes and counts what it has done (files,
rows, fits); whoever runs the stage decides how that is shown.

- On a terminal (`mydata <stage>`, `mydata demo`): a live ``rich`` display, one line per step with
  its count, elapsed time and throughput, updated as the step goes.
- Anywhere else (CI, Airflow task logs, a pipe): one plain line per finished step, through
  ``logging`` by default, so an Airflow task's log says what each step did and how fast.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

#: the logger plain progress lines go to when no display is installed (Airflow tasks, library use)
LOGGER = logging.getLogger("mydata.progress")
#: marks a progress line in a log, so a follower of the log can find them
MARK = "progress:"


def _amount(value: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


@dataclass
class Step:
    """One step of a stage: ``done`` of ``total`` ``unit`` so far, and the ``rows`` they held."""

    stage: str
    label: str = ""
    unit: str = "rows"
    total: int | None = None
    done: int = 0
    rows: int | None = None
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    failed: bool = False
    #: how the step ended when that is more than done or failed (an Airflow task's state)
    outcome: str = ""
    _display: Display | None = field(default=None, repr=False)

    def advance(self, done: int = 1, rows: int | None = None) -> None:
        """Count ``done`` more units (and ``rows`` more rows) and let the display know."""
        self.done += done
        if rows is not None:
            self.rows = (self.rows or 0) + rows
        if self._display is not None:
            with _lock:
                self._display.update(self)

    @property
    def name(self) -> str:
        return f"{self.stage} {self.label}".strip()

    @property
    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def count(self) -> str:
        """``3/6 files, 120,345 rows``: what is done, in the step's own words ('' when it counts nothing)."""
        if self.total is None and not self.done and self.rows is None:
            return ""
        done = f"{self.done:,}/{self.total:,} {self.unit}" if self.total is not None else f"{self.done:,} {self.unit}"
        return done if self.rows is None or self.unit == "rows" else f"{done}, {self.rows:,} rows"

    def rate(self) -> str:
        """Throughput: rows per second when the step counts rows, else its unit per second."""
        if not self.count():
            return ""
        per_second = (self.rows if self.rows is not None else self.done) / max(self.elapsed, 1e-6)
        return f"{_amount(per_second)} {'rows' if self.rows is not None else self.unit}/s"

    def line(self) -> str:
        """``ingest card: 6/6 files, 120,345 rows in 4.2s (28.7k rows/s)``."""
        said = ", ".join(filter(None, [self.count(), self.outcome]))
        timing = f"{'FAILED after' if self.failed else 'in'} {self.elapsed:.1f}s"
        return f"{self.name}: {said + ' ' if said else ''}{timing}{f' ({self.rate()})' if self.rate() else ''}"


class Display(Protocol):
    def begin(self, step: Step) -> None: ...

    def update(self, step: Step) -> None: ...

    def end(self, step: Step) -> None: ...

    def note(self, text: str) -> None: ...

    def close(self) -> None: ...

    #: the display shows elapsed time by itself (a terminal's live display), so no heartbeat is needed
    live: bool


class LineDisplay:
    """One plain line per finished step (and per note), for logs and pipes."""

    live = False

    def __init__(self, say: Callable[[str], None], prefix: str = "") -> None:
        self.say, self.prefix = say, prefix

    def begin(self, step: Step) -> None:
        pass

    def update(self, step: Step) -> None:
        pass

    def end(self, step: Step) -> None:
        self.say(f"{self.prefix}{step.line()}")

    def note(self, text: str) -> None:
        self.say(text)

    def close(self) -> None:
        pass


class RichDisplay:
    """A live display on a terminal: a spinner, the step, its count, elapsed time and throughput."""

    live = True

    def __init__(self, stream: IO[str]) -> None:
        self.progress = Progress(SpinnerColumn(finished_text="[green]✓"), TextColumn("{task.description}"),
                                 BarColumn(bar_width=20), TextColumn("{task.fields[count]}"), TimeElapsedColumn(),
                                 TextColumn("{task.fields[rate]}"), console=Console(file=stream),
                                 refresh_per_second=4)
        self.tasks: dict[int, int] = {}

    def begin(self, step: Step) -> None:
        self.progress.start()  # once: started again, it goes on
        self.tasks[id(step)] = self.progress.add_task(step.name, total=step.total, count="", rate="")

    def update(self, step: Step) -> None:
        self.progress.update(self.tasks[id(step)], completed=step.done, count=step.count(), rate=step.rate())

    def end(self, step: Step) -> None:  # a finished step leaves the live part as a line that stays
        self.progress.remove_task(self.tasks.pop(id(step)))
        mark = "[red]✗" if step.failed else "[green]✓"
        self.progress.console.print(f"{mark}[/] {escape(step.line())}", highlight=False)

    def note(self, text: str) -> None:
        self.progress.console.print(escape(text), highlight=False)

    def close(self) -> None:
        self.progress.stop()


_lock = threading.Lock()
_display: Display = LineDisplay(LOGGER.info, prefix=f"{MARK} ")


def display() -> Display:
    return _display


def for_stream(stream: IO[str]) -> Display:
    """A live display when ``stream`` is a terminal, else one plain line per step on it."""
    if stream.isatty():
        return RichDisplay(stream)
    return LineDisplay(lambda text: print(text, file=stream, flush=True))


@contextmanager
def shown_by(shown: Display) -> Iterator[Display]:
    """Show every step taken inside the block on ``shown`` (steps in worker threads too)."""
    global _display
    with _lock:
        before, _display = _display, shown
    try:
        yield shown
    finally:
        with _lock:
            _display = before
            shown.close()


@contextmanager
def step(stage: str, label: str = "", *, unit: str = "rows", total: int | None = None) -> Iterator[Step]:
    """A step of ``stage``: shown when it begins, as it advances, and when it ends (even by an error)."""
    shown = _display
    current = Step(stage, label, unit, total, _display=shown)
    with _lock:
        shown.begin(current)
    try:
        yield current
    except BaseException:
        current.failed = True
        raise
    finally:
        current.ended = time.monotonic()
        with _lock:
            shown.end(current)
