"""Landing inventory: which deliveries are complete, and how many records each holds.

The first stage of every pipeline run: it tells the data engineer what arrived, what is still
incomplete (no ``_SUCCESS``), and gives ingest the record counts it must reconcile against.
Runs on the configured engine; runnable as ``python -m jobs.landing`` (spark-submit).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from jobs.stage import StageResult, StageRun, stage_run
from mydata import progress
from mydata.config import Settings
from mydata.errors import StageFailed
from mydata.lake import Lake, is_complete
from mydata.lock import writes_lake
from schemas.dialects import Dialect
from schemas.landing import CSV_SOURCES, SOURCES

DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".csv", ".csv.gz")


@dataclass(frozen=True)
class Delivery:
    source: str
    dt: date
    path: Path
    complete: bool


class BadLanding(StageFailed):
    """The landing zone holds what is not a well-formed delivery (and no setting says to skip it)."""


@dataclass(frozen=True)
class LandingProblem:
    path: str  # under landing/
    reason: str

    def said(self) -> str:
        return f"landing/{self.path}: {self.reason}"


def _inside(path: Path, root: Path) -> bool:
    """``path``, symlinks followed, stays under the data ``root``."""
    return path.resolve().is_relative_to(root.resolve())


def _day(name: str) -> date | None:
    try:
        return date.fromisoformat(name[3:]) if name.startswith("dt=") and len(name) == 13 else None
    except ValueError:
        return None


def landing_problems(lake: Lake) -> list[LandingProblem]:
    """Everything under ``landing/`` that is not a well-formed delivery, with why: a file where a
    folder belongs, an unknown source folder, a bad ``dt=`` folder, a symlink out of the data root."""
    if not lake.landing.is_dir():
        return []
    problems = []

    def note(path: Path, reason: str) -> None:
        problems.append(LandingProblem(str(path.relative_to(lake.landing)), reason))

    for entry in sorted(lake.landing.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if not _inside(entry, lake.root):
            note(entry, "a symlink that leaves the data root: refused")
        elif not entry.is_dir():
            note(entry, f"a file where a source folder belongs (sources: {', '.join(SOURCES)})")
        elif entry.name not in SOURCES:
            note(entry, f"not a source: the sources are {', '.join(SOURCES)}")
        else:
            for delivery in sorted(entry.iterdir()):
                if delivery.name.startswith((".", "_")):
                    continue
                if not _inside(delivery, lake.root):
                    note(delivery, "a symlink that leaves the data root: refused")
                elif _day(delivery.name) is None:
                    note(delivery, "not a delivery folder: a delivery is dt=YYYY-MM-DD with a real date")
                elif not delivery.is_dir():
                    note(delivery, "a file where a delivery folder belongs")
                else:
                    problems += [LandingProblem(str(f.relative_to(lake.landing)), "a data file symlinked out of the "
                                                "data root: refused") for f in sorted(delivery.iterdir())
                                 if f.is_symlink() and not _inside(f, lake.root)]
    return problems


def check_landing(lake: Lake, skip: bool) -> list[LandingProblem]:
    """The landing's problems: a stage fails on them, naming each, unless told to skip them."""
    problems = landing_problems(lake)
    if problems and not skip:
        shown = "; ".join(p.said() for p in problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise BadLanding(f"{len(problems)} thing(s) under {lake.landing} are not well-formed deliveries: {shown} "
                         "(move them away, or set MYDATA_SKIP_BAD_LANDING=true to skip them)")
    return problems


def find_deliveries(lake: Lake, dt: date | None = None) -> list[Delivery]:
    """Every well-formed ``landing/<source>/dt=YYYY-MM-DD`` folder of a known source inside the data
    root (one date if ``dt`` is given); ``landing_problems`` names everything else."""
    found = []
    for source in SOURCES:
        for folder in sorted((lake.landing / source).glob("dt=*")):
            day = _day(folder.name)
            if day is None or not folder.is_dir() or not _inside(folder, lake.root):
                continue
            if dt is None or day == dt:
                found.append(Delivery(source, day, folder, is_complete(folder)))
    return found


def deliveries_ready(dt: date | str, settings: Settings | None = None) -> bool:
    """Every source has delivered ``dt`` completely (``_SUCCESS``): what the ingest DAG waits for."""
    lake = (settings or Settings.load()).lake
    day = dt if isinstance(dt, date) else date.fromisoformat(str(dt))
    complete = {d.source for d in find_deliveries(lake, day) if d.complete}
    return complete >= set(SOURCES)


def data_files(delivery: Delivery) -> list[Path]:
    """A delivery's data files; one symlinked out of the data root is never read."""
    root = delivery.path.parents[2]
    return sorted(p for p in delivery.path.iterdir()
                  if p.is_file() and p.name.endswith(DATA_SUFFIXES) and not p.name.startswith((".", "_"))
                  and (not p.is_symlink() or _inside(p, root)))


def text_bytes(path: Path) -> int:
    """A data file's size as text: a gzip member ends with its text's size (mod 4 GiB)."""
    size = path.stat().st_size
    if not path.name.endswith(".gz") or size < 18:
        return size
    with open(path, "rb") as handle:
        handle.seek(-4, 2)
        return int.from_bytes(handle.read(4), "little")


def count_records_sql(d: Dialect, lines: str) -> str:
    """Records per (source, dt) from the registered landing ``lines`` (non-blank, with their file
    path and delivery date); CSV headers excluded."""
    source = f"regexp_extract(file_path, {d.lit('/landing/([^/]+)/dt=')}, 1)"
    csv = ", ".join(d.lit(s) for s in CSV_SOURCES)
    header = "substring(value, 1, 21) = 'link_key,key_version,'"
    return (f"SELECT source, {d.text('dt')} AS dt, sum(CASE WHEN source IN ({csv}) AND {header} THEN 0 ELSE 1 END) "
            f"AS records FROM (SELECT {source} AS source, dt, value FROM {lines}) l GROUP BY source, dt "
            "ORDER BY source, dt")


@writes_lake("landing")
def run(settings: Settings, spark=None) -> StageResult:
    """Count the records of every complete delivery (or of ``settings.delivery_date`` only)."""
    with stage_run(settings, "landing", spark=spark, dt=settings.delivery_date) as run:
        figures = _inventory(run)
    return run.result(**figures)


def _inventory(run: StageRun) -> dict:
    settings, lake, manifest = run.settings, run.lake, run.manifest
    problems = check_landing(lake, settings.skip_bad_landing)
    manifest.outputs["landing_problems"] = [p.said() for p in problems]
    deliveries = find_deliveries(lake, settings.delivery_date)
    complete = [d for d in deliveries if d.complete]
    waiting = [d for d in deliveries if not d.complete]
    manifest.notes += [f"waiting for _SUCCESS: {d.source} dt={d.dt}" for d in waiting]
    files = [p for d in complete for p in data_files(d)]
    counts: dict[str, dict[str, int]] = {}
    if files:
        engine = run.engine
        try:
            with progress.step("landing", "inventory", unit="files", total=len(files)) as shown:
                engine.lines("landing_lines", files)
                for row in engine.rows(count_records_sql(engine.dialect, "landing_lines")):  # a row per delivery
                    counts.setdefault(row["source"], {})[row["dt"]] = int(row["records"])
                shown.advance(len(files), rows=sum(n for by_dt in counts.values() for n in by_dt.values()))
        finally:
            engine.drop("landing_lines")
    manifest.inputs = {"deliveries_complete": len(complete), "deliveries_waiting": len(waiting),
                       "files": len(files)}
    manifest.outputs.update({"records": counts,
                             "total_records": sum(n for by_dt in counts.values() for n in by_dt.values())})
    if not deliveries:
        manifest.notes.append(f"no deliveries under {lake.landing}")
    return {"total_records": manifest.outputs["total_records"],
            "deliveries_complete": len(complete), "deliveries_waiting": len(waiting),
            "skipped": manifest.outputs["landing_problems"]}


if __name__ == "__main__":  # spark-submit entry point
    print(run(Settings.load(), None), file=sys.stdout)
