"""The skeleton every stage runs in: ``with stage_run(settings, JOB, **parameters) as run:``.

It starts the run's manifest, opens the engine the first time ``run.engine`` is asked for and
closes it, records a failure as a ``failed`` manifest with its error (then re-raises), finishes
the manifest ``succeeded`` when the block ends, and refreshes the front page either way; after the
block, ``run.result(**figures)`` is what the stage returns (a ``StageResult`` with its ``summary()``). A stage
that lands its manifest with its outputs (a journaled publish), or fails a run on purpose with its
own account, writes it itself; the skeleton leaves a written manifest as it is.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mydata.config import Settings
from mydata.engines import Engine, open_engine
from mydata.lake import Lake
from mydata.manifest import RunManifest
from render import summaries


@dataclass
class StageRun:
    """One stage's run: its settings, its manifest, and (opened when first asked for) its engine."""

    settings: Settings
    manifest: RunManifest
    spark: Any = field(default=None, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def lake(self) -> Lake:
        return self.settings.lake

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = open_engine(self.settings, self.spark)
        return self._engine

    @property
    def manifest_path(self) -> Path:
        """Where the manifest is (or will be, when the run ends) written."""
        return self.lake.manifest(self.manifest.job, self.manifest.run_id)

    def result(self, **figures: Any) -> StageResult:
        """The run's result once its block ended: its manifest's outputs (and path), plus ``figures``."""
        return StageResult({"manifest": str(self.manifest_path), **self.manifest.outputs, **figures},
                           self.manifest.document())

    def close_engine(self) -> None:
        """Release the engine now (before work that needs none, such as writing a report)."""
        if self._engine is not None:
            engine, self._engine = self._engine, None
            engine.close()


@dataclass(frozen=True)
class StageResult(Mapping):
    """What a stage run returns: its figures (read as a mapping: ``result["published"]``) and its
    line, ``summary()``, the same line the demo and the front page print for the run."""

    figures: dict[str, Any]
    document: dict = field(repr=False)  # the run's manifest as written

    def summary(self) -> str:
        return summaries.summary(self.document)

    def __getitem__(self, key: str) -> Any:
        return self.figures[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.figures)

    def __len__(self) -> int:
        return len(self.figures)


@contextlib.contextmanager
def stage_run(settings: Settings, job: str, *, spark: Any = None, **parameters: Any) -> Iterator[StageRun]:
    """Run a stage's block with its manifest and engine (module docstring); ``spark`` reuses a
    running SparkSession when the settings name the Spark engine."""
    run = StageRun(settings, RunManifest.start(job, **parameters), spark)
    try:
        yield run
    except BaseException as exc:
        if not run.manifest_path.exists():  # recorded first: an engine failing to close cannot lose the record
            run.manifest.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:2000]
            with contextlib.suppress(OSError):  # no room even for the manifest: the run's own error is what to say
                run.manifest.finish(run.lake, "failed")
        try:
            run.close_engine()
        except Exception as closing:  # noqa: BLE001 (the run's own error is the one to raise)
            logging.getLogger(__name__).warning("engine not closed cleanly: %s: %s", type(closing).__name__, closing)
        refresh_front_page(run.lake)
        raise
    run.close_engine()
    if not run.manifest_path.exists():
        run.manifest.finish(run.lake, "succeeded")
    refresh_front_page(run.lake)


def refresh_front_page(lake: Lake) -> None:
    """Every finished run shows on ``reports/index.html``; a page that cannot be built is said, and
    never fails the run (its manifest is written)."""
    from render import front

    try:
        front.refresh(lake)
    except Exception as exc:  # noqa: BLE001 (the run's own outcome stands)
        logging.getLogger(__name__).warning("reports/index.html not refreshed: %s: %s", type(exc).__name__, exc)
