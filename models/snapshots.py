"""Feature snapshots for data scientists: one call gives a released snapshot as a pandas frame.

    from models.snapshots import load_snapshot
    frame = load_snapshot("marketing")            # the newest published snapshot
    frame = load_snapshot("marketing", "2026-11-01", data_root="var")

Columns are ``pseudonym``, the released quasi-identifiers (``age_band``, ``gender``, ``region``)
and every other declared feature, with the dtypes the declarations give (``feature_dtypes``).
Reads Parquet with pyarrow: no Spark session needed.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from features.definitions import FEATURES, Feature
from features.release import RELEASED_QUASI_IDENTIFIERS
from mydata import storage
from mydata.config import Settings
from mydata.errors import MissingInput
from mydata.lake import Lake

_PANDAS_DTYPES = {"double": "float64", "int": "Int64", "string": "string"}


def released_features() -> list[Feature]:
    """The declared features a released snapshot carries (raw quasi-identifiers are generalised)."""
    return [f for f in FEATURES if not f.quasi_identifier]


def feature_dtypes() -> dict[str, str]:
    """Column -> pandas dtype of a released snapshot, from the declarations."""
    dtypes = {"pseudonym": "string", **{q: "string" for q in RELEASED_QUASI_IDENTIFIERS}}
    dtypes.update({f.name: _PANDAS_DTYPES[f.dtype] for f in released_features()})
    return dtypes


def snapshot_folder(purpose: str, as_of: date | str | None = None, data_root: Path | str | None = None) -> Path:
    lake = Lake(Path(data_root)) if data_root else Settings.load().lake
    table = lake.published_features(purpose)
    if as_of is None:
        published = sorted(p for p in table.glob("as_of=*") if any(p.glob("*.parquet")))
        if not published:
            raise MissingInput(f"no published feature snapshot for {purpose} under {table}")
        return published[-1]
    folder = table / f"as_of={as_of if isinstance(as_of, str) else as_of.isoformat()}"
    if not folder.is_dir():
        raise MissingInput(f"no published feature snapshot {folder}")
    return folder


def load_snapshot(purpose: str = "marketing", as_of: date | str | None = None,
                  data_root: Path | str | None = None) -> pd.DataFrame:
    """A published snapshot as a pandas frame, columns in declaration order with declared dtypes."""
    folder = snapshot_folder(purpose, as_of, data_root)
    lake = Lake(Path(data_root)) if data_root else Settings.load().lake
    storage.refuse_unfinished(lake.publish_journal, folder)  # never a mix of two releases
    frame = pq.read_table(folder).to_pandas()
    dtypes = feature_dtypes()
    return frame[list(dtypes)].astype(dtypes)
