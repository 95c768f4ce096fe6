"""The model registry: one versioned folder per trained model, under the data root.

``models/<purpose>/v0001/`` holds ``model.joblib`` and ``metadata.json`` (feature snapshot path
and content hash, feature list, consent snapshot id, parameters, metrics, library versions,
created time). ``models/<purpose>/CURRENT`` names the promoted version. Versions are written
aside and renamed into place, and never edited; promotion rewrites only the pointer, atomically.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path

import joblib

from mydata.errors import UsageError
from mydata.lake import Lake
from mydata.manifest import code_version, write_json_atomic

LIBRARIES = ("scikit-learn", "numpy", "pandas", "pyarrow", "joblib", "pyspark")


class RegistryError(UsageError, LookupError):
    """No such model version, or nothing promoted yet."""


def purpose_folder(lake: Lake, purpose: str) -> Path:
    return lake.models / purpose


def snapshot_hash(folder: Path) -> str:
    """SHA-256 over the snapshot's Parquet files (names and bytes, in name order)."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.parquet")):
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "mydata": code_version()}
    for name in LIBRARIES:
        try:
            found[name] = package_version(name)
        except Exception:  # noqa: BLE001 - a missing optional library is just not listed
            continue
    return found


@dataclass(frozen=True)
class ModelVersion:
    purpose: str
    version: str
    folder: Path
    metadata: dict

    def load(self):
        return joblib.load(self.folder / "model.joblib")


def versions(lake: Lake, purpose: str) -> list[ModelVersion]:
    root = purpose_folder(lake, purpose)
    found = []
    for folder in sorted(root.glob("v[0-9][0-9][0-9][0-9]")) if root.is_dir() else []:
        meta = folder / "metadata.json"
        if meta.is_file():
            found.append(ModelVersion(purpose, folder.name, folder, json.loads(meta.read_text(encoding="utf-8"))))
    return found


def register(lake: Lake, purpose: str, artifact, metadata: dict) -> ModelVersion:
    """Store a trained model as the next version; returns it (not promoted)."""
    root = purpose_folder(lake, purpose)
    root.mkdir(parents=True, exist_ok=True)
    existing = versions(lake, purpose)
    number = int(existing[-1].version[1:]) + 1 if existing else 1
    name = f"v{number:04d}"
    staging = root / f".{name}.{os.getpid()}.tmp"
    staging.mkdir()
    joblib.dump(artifact, staging / "model.joblib")
    document = {**metadata, "purpose": purpose, "version": name,
                "created_at": datetime.now(UTC).isoformat(), "libraries": library_versions()}
    write_json_atomic(staging / "metadata.json", document)
    os.rename(staging, root / name)
    return ModelVersion(purpose, name, root / name, document)


def get(lake: Lake, purpose: str, version: str | None = None) -> ModelVersion:
    """A version by name (``v0003`` or ``3``), or the current one when ``version`` is None."""
    if version is None:
        pointer = purpose_folder(lake, purpose) / "CURRENT"
        if not pointer.is_file():
            raise RegistryError(f"no model promoted for {purpose} yet (`mydata model promote VERSION`)")
        version = pointer.read_text(encoding="utf-8").strip()
    name = version if str(version).startswith("v") else f"v{int(version):04d}"
    for found in versions(lake, purpose):
        if found.version == name:
            return found
    raise RegistryError(f"no model {name} for {purpose}; have {', '.join(v.version for v in versions(lake, purpose)) or 'none'}")


def promote(lake: Lake, purpose: str, version: str) -> ModelVersion:
    chosen = get(lake, purpose, version)
    pointer = purpose_folder(lake, purpose) / "CURRENT"
    tmp = pointer.with_name(f".CURRENT.{os.getpid()}.tmp")
    tmp.write_text(chosen.version + "\n", encoding="utf-8")
    os.replace(tmp, pointer)
    return chosen


def current_version(lake: Lake, purpose: str) -> str | None:
    pointer = purpose_folder(lake, purpose) / "CURRENT"
    return pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else None


def compare(a: ModelVersion, b: ModelVersion) -> dict:
    """What differs between two versions: parameters, metrics, inputs and the feature list."""
    def flat(meta: dict, key: str) -> dict:
        return meta.get(key, {}) or {}
    out = {}
    for key in ("parameters", "metrics"):
        left, right = flat(a.metadata, key), flat(b.metadata, key)
        out[key] = {k: (left.get(k), right.get(k)) for k in sorted(left.keys() | right.keys())
                    if left.get(k) != right.get(k)}
    out["inputs"] = {k: (a.metadata.get(k), b.metadata.get(k))
                     for k in ("snapshot", "snapshot_hash", "consent_snapshot") if a.metadata.get(k) != b.metadata.get(k)}
    fa, fb = set(a.metadata.get("features", [])), set(b.metadata.get("features", []))
    out["features"] = {"only_in_" + a.version: sorted(fa - fb), "only_in_" + b.version: sorted(fb - fa)}
    return out
