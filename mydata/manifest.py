"""Run manifests: what a job read, wrote, quarantined and relied on, one JSON file per run.

A manifest is written atomically (aside, then renamed) under ``manifests/<job>/<run_id>.json``
and holds counts, paths, parameters, key versions and code version: never a secret, never a
link key or CI.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mydata
from mydata import lock
from mydata.config import PROJECT_ROOT
from mydata.lake import Lake


def new_run_id(job: str) -> str:
    return f"{job}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus the git commit when running from a checkout."""
    try:
        sha = subprocess.run(["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{mydata.__version__}+{sha}" if sha else mydata.__version__


@dataclass
class RunManifest:
    job: str
    run_id: str
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    quarantined: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    status: str = "running"
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    finished_at: str | None = None
    code_version: str = field(default_factory=code_version)
    #: why a failed run failed, in one line
    error: str | None = None
    #: where ``finish`` wrote it
    path: Path | None = field(default=None, repr=False, compare=False)

    @classmethod
    def start(cls, job: str, **parameters: Any) -> RunManifest:
        manifest = cls(job=job, run_id=new_run_id(job), parameters=parameters)
        # those waiting for the lake learn which run holds it; the run records what taking it finished
        manifest.notes += lock.announce(manifest.run_id)
        return manifest

    def finish(self, lake: Lake, status: str = "succeeded") -> Path:
        self.path = write_json_atomic(lake.manifest(self.job, self.run_id), self.finished(status))
        return self.path

    def finished(self, status: str = "succeeded") -> dict:
        """The manifest as it is written when the run ends (for a run that lands it with its outputs)."""
        self.status = status
        self.finished_at = datetime.now(UTC).isoformat()
        return self.document()

    def document(self) -> dict:
        """The manifest as the lake holds it (without the path it is written to)."""
        return {k: v for k, v in asdict(self).items() if k != "path"}

    def landed(self, lake: Lake) -> Path:
        """The manifest a publish landed (``finished`` staged with the outputs)."""
        self.path = lake.manifest(self.job, self.run_id)
        return self.path


def json_text(document: Any) -> str:
    """A document as the lake writes JSON: indented, UTF-8 as it is."""
    return json.dumps(document, indent=1, ensure_ascii=False, default=str) + "\n"


def write_json_atomic(path: Path, document: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json_text(document), encoding="utf-8")
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no half-written temp file
        raise
    os.replace(tmp, path)
    return path


def runs(lake: Lake, job: str) -> list[dict]:
    """Every manifest of ``job``, newest first."""
    folder = lake.manifests / job
    found = [json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.json")] if folder.is_dir() else []
    return sorted(found, key=lambda m: m.get("started_at", ""), reverse=True)


def ingest_rows(manifest: dict) -> tuple[int, int]:
    """Rows accepted and quarantined over every table and delivery date of an ingest manifest."""
    counts = [c for by_dt in manifest["outputs"].get("tables", {}).values() for c in by_dt.values()]
    return sum(c["accepted"] for c in counts), sum(c["quarantined"] for c in counts)


def reconciled(manifest: dict) -> dict[str, int]:
    """Every count of an ingest manifest's reconciliation, summed over sources and delivery dates."""
    totals: dict[str, int] = {}
    for by_dt in manifest["outputs"].get("reconciliation", {}).values():
        for entry in by_dt.values():
            for key, value in entry.items():
                if key != "balanced":
                    totals[key] = totals.get(key, 0) + value
    return totals


def latest_manifest(lake: Lake, job: str) -> dict | None:
    folder = lake.manifests / job
    if not folder.is_dir():
        return None
    paths = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(paths[-1].read_text(encoding="utf-8")) if paths else None


def latest_matching(lake: Lake, job: str, any_status: bool = False, **parameters: Any) -> dict | None:
    """The newest succeeded (or, with ``any_status``, any) manifest of ``job`` whose parameters
    include ``parameters``."""
    folder = lake.manifests / job
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True) \
            if folder.is_dir() else []:
        document = json.loads(path.read_text(encoding="utf-8"))
        if (any_status or document.get("status") == "succeeded") and all(
                document.get("parameters", {}).get(k) == v for k, v in parameters.items()):
            return document
    return None


def missing_input(lake: Lake, what: str, job: str, command: str, **parameters: Any) -> str:
    """Why a stage finds no input from ``job``: it never ran for these parameters, its last run
    failed (and why), or it succeeded and its output is gone since."""
    said = ", ".join(f"{k} {v}" for k, v in parameters.items())
    last = latest_matching(lake, job, any_status=True, **parameters)
    if last is None:
        return f"no {what} for {said}: {job} has not run for it; run `{command}` first"
    if last["status"] != "succeeded":
        return (f"no {what} for {said}: the last {job} run ({last['run_id']}) {last['status']}"
                f"{': ' + last['error'] if last.get('error') else ''}; fix that and run `{command}` again")
    return (f"no {what} for {said}, although {job} run {last['run_id']} succeeded: its output was removed "
            f"since; run `{command}` again")
