"""Segment profiles: who is in each segment, in words a marketer can use, and the report page.

A segment is described by how far its mean sits from the population's on the model's own scale
(after the signed log and scaling, so one standard deviation means the same for every feature).
The label names the segment's most distinctive features ("high card golf, high card travel,
low telecom micropay"); features that read the same (1- and 3-month card spend) are named once.
The profile is stored in the model's metadata, so the report can be rebuilt from the registry.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from models.pipeline import model_matrix

LABEL_FEATURES = 3
#: a feature is called "high" or "low" only when the segment mean is this many standard deviations away
DISTINCT_Z = 0.5
#: a feature that moves with one already named (|correlation| above this) adds no new information
REDUNDANT_CORRELATION = 0.7


def readable(feature: str) -> str:
    """``card_spend_3m_avg`` -> ``card spend``: the window and the aggregation are in the report."""
    words = re.sub(r"_(\d+m)(_avg)?$|_(avg|mean)$", "", feature)
    return words.replace("_", " ")


def standardised(pipeline, frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The frame on the model's scale before any PCA: signed log, imputed, standardised."""
    scale = pipeline.named_steps["prep"][:2]  # columns (log + impute) and scale
    return pd.DataFrame(scale.transform(frame[features]), columns=scale.get_feature_names_out(), index=frame.index)


def label_segment(z: pd.Series, correlation: pd.DataFrame | None = None) -> tuple[str, list[dict]]:
    """A readable label from the segment's largest standardised differences, and those differences.

    A feature is skipped when it reads like one already named or moves with it (``correlation``)."""
    chosen, named = [], set()
    for feature in z.abs().sort_values(ascending=False).index:
        phrase = readable(feature)
        if abs(z[feature]) < DISTINCT_Z or len(chosen) == LABEL_FEATURES:
            break
        if phrase in named or (correlation is not None and any(
                abs(correlation.at[feature, c["feature"]]) > REDUNDANT_CORRELATION for c in chosen)):
            continue
        named.add(phrase)
        chosen.append({"feature": feature, "z": round(float(z[feature]), 3)})
    if not chosen:
        return "close to the population average", []
    words = [f"{'high' if c['z'] > 0 else 'low'} {readable(c['feature'])}" for c in chosen]
    return ", ".join(words), chosen


def profile(pipeline, frame: pd.DataFrame, labels: np.ndarray, features: list[str],
            scaled: pd.DataFrame | None = None) -> dict:
    """Sizes, labels, standardised and raw means per segment, population means: JSON-ready.
    ``scaled`` is ``standardised(pipeline, frame, features)`` when the caller already has it."""
    scaled = standardised(pipeline, frame, features) if scaled is None else scaled
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant feature correlates with nothing
        matrix = np.corrcoef(scaled.to_numpy(dtype="float64"), rowvar=False)  # imputed: no NaN, one matmul
    correlation = pd.DataFrame(matrix, index=scaled.columns, columns=scaled.columns).fillna(0.0)
    z_means = scaled.groupby(labels).mean()
    values = model_matrix(frame, features)
    raw_means = values.groupby(labels).mean()
    population = values.mean()
    sizes = pd.Series(labels).value_counts()
    segments, used = [], set()
    for segment in sorted(sizes.index):
        label, distinctive = label_segment(z_means.loc[segment], correlation)
        if label in used:  # two segments must never read alike
            label = f"{label} (segment {segment})"
        used.add(label)
        segments.append({"segment": int(segment), "size": int(sizes[segment]),
                         "share": round(float(sizes[segment] / len(labels)), 4), "label": label,
                         "distinctive": distinctive})

    def clean(series: pd.Series) -> dict:
        return {k: (None if pd.isna(v) else round(float(v), 4)) for k, v in series.items()}

    return {"segments": segments, "population_mean": clean(population),
            "segment_mean": {str(s): clean(raw_means.loc[s]) for s in raw_means.index},
            "segment_z": {str(s): clean(z_means.loc[s]) for s in z_means.index}}


