"""Training with model selection: the number of segments chosen over a range, stability checked.

k is chosen by silhouette (on a sample, seeded) for KMeans-type models and by BIC for Gaussian
mixtures; both curves are kept for the profile report. Stability is the mean adjusted Rand index
between the chosen model's segments and those of the same model refitted with other seeds on
bootstrap samples, all compared on the full snapshot.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import combinations

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.pipeline import Pipeline

from features.health import frame_blank
from models.pipeline import (
    DEFAULT_KS,
    ModelSpec,
    build_pipeline,
    clusterer,
    model_features,
    model_matrix,
    preprocessing,
)
from models.profile import standardised
from mydata import progress
from mydata.errors import StageFailed

#: models are fitted on at most this many subjects (a seeded sample); every subject is then assigned.
#: Centres found on 50,000 subjects move very little with more, and training time stops growing.
FIT_ROWS = 50_000


class SegmentationRefused(StageFailed, ValueError):
    """The snapshot cannot be segmented: too few subjects, or no feature that separates anyone."""


@dataclass
class Selection:
    ks: list[int]
    silhouette: dict[int, float]
    bic: dict[int, float] = field(default_factory=dict)
    inertia: dict[int, float] = field(default_factory=dict)
    chosen: int = 0
    rule: str = ""
    #: the fitted clustering step per k (the chosen one becomes the model: no refit)
    models: dict[int, object] = field(default_factory=dict, repr=False)


@dataclass
class TrainedModel:
    pipeline: object
    spec: ModelSpec
    features: list[str]
    selection: Selection
    stability: float
    labels: np.ndarray
    metrics: dict
    #: every subject on the model's scale before any PCA (what the profile describes)
    scaled: pd.DataFrame | None = field(default=None, repr=False)
    #: features left out because they separate nobody in the training snapshot, with why
    left_out: dict[str, str] = field(default_factory=dict)


def select_k(prepared: np.ndarray, algorithm: str, ks=DEFAULT_KS, seed: int = 0,
             sample: int = 5_000) -> Selection:
    """Fit each k once; silhouette on a seeded sample, BIC for mixtures, inertia for k-means."""
    ks = [k for k in ks if 2 <= k < len(prepared)]
    if not ks:
        raise SegmentationRefused(f"not enough subjects ({len(prepared)}) for any number of segments")
    selection = Selection(ks, {})
    with progress.step("train", f"{algorithm} k={ks[0]}..{ks[-1]} on {len(prepared):,} subjects", unit="fits",
                       total=len(ks)) as shown:
        for k in ks:
            _fit_k(selection, prepared, algorithm, k, seed, sample)
            shown.advance()
    if algorithm == "gmm":
        selection.chosen, selection.rule = min(selection.bic, key=selection.bic.get), "lowest BIC"
    else:
        selection.chosen, selection.rule = (max(selection.silhouette, key=selection.silhouette.get),
                                            "highest silhouette")
    return selection


def _fit_k(selection: Selection, prepared: np.ndarray, algorithm: str, k: int, seed: int, sample: int) -> None:
    """Fit ``k`` segments into ``selection``: the model, its silhouette and its BIC or inertia."""
    model = selection.models[k] = clusterer(ModelSpec(algorithm=algorithm, k=k, seed=seed)).fit(prepared)
    labels = model.predict(prepared)
    if len(set(labels)) > 1:
        selection.silhouette[k] = float(silhouette_score(prepared, labels, sample_size=min(sample, len(prepared)),
                                                         random_state=seed))
    else:
        selection.silhouette[k] = -1.0
    if algorithm == "gmm":
        selection.bic[k] = float(model.bic(prepared))
    else:
        selection.inertia[k] = float(model.inertia_)


def stability(frame: pd.DataFrame, spec: ModelSpec, features: list[str], runs: int = 4) -> float:
    """Mean pairwise adjusted Rand index of segmentations refitted on bootstrap samples with other seeds."""
    rng = np.random.default_rng(spec.seed)
    labelings = []
    for run in range(runs):
        rows = rng.choice(len(frame), size=len(frame), replace=True)
        pipeline = build_pipeline(replace(spec, seed=spec.seed + 1 + run),
                                  features).fit(frame.iloc[rows][features])
        labelings.append(pipeline.predict(frame[features]))
    return float(np.mean([adjusted_rand_score(a, b) for a, b in combinations(labelings, 2)]))


def train(frame: pd.DataFrame, options: ModelSpec = ModelSpec(), fit_rows: int = FIT_ROWS) -> TrainedModel:
    """Choose k (unless given), fit the final pipeline, measure stability; seeded end to end.

    Fitting uses a seeded sample of ``fit_rows`` subjects when there are more; ``labels`` cover all.
    Every subject is transformed once: the labels and the profile (``scaled``) share it."""
    left_out = frame_blank(frame, model_features())
    features = [f for f in model_features() if f not in left_out]
    if not features:
        raise SegmentationRefused("every feature of the snapshot is constant or all null: nothing to segment on")
    frame = frame.sort_values("pseudonym").reset_index(drop=True)  # row order never changes a model
    matrix = model_matrix(frame, features)
    seed = options.seed
    fit = matrix if len(matrix) <= fit_rows else matrix.sample(n=fit_rows, random_state=seed).sort_index()
    prep = preprocessing(features, options.pca_components, seed)
    prepared = prep.fit_transform(fit)
    selection = select_k(prepared, options.algorithm, options.candidates, seed)
    spec = options.with_k(selection.chosen)
    pipeline = Pipeline([("prep", prep), ("model", selection.models[spec.k])])  # both already fitted
    scaled = standardised(pipeline, matrix, features)  # a PCA step, if any, comes after
    labels = selection.models[spec.k].predict(prep[2:].transform(scaled.to_numpy()) if len(prep) > 2
                                              else scaled.to_numpy())
    stable = stability(fit, spec, features)
    sizes = np.bincount(labels, minlength=spec.k)
    metrics = {"k": spec.k, "silhouette": selection.silhouette[spec.k], "stability_ari": stable,
               "rows": len(frame), "fit_rows": len(fit), "smallest_segment_share": float(sizes.min() / len(frame))}
    if selection.bic:
        metrics["bic"] = selection.bic[spec.k]
    metrics["features_left_out"] = len(left_out)
    return TrainedModel(pipeline, spec, features, selection, stable, labels, metrics, scaled, left_out)


def refit_like(model: TrainedModel, frame: pd.DataFrame):
    """The same pipeline (same parameters, unfitted) fitted on another frame: for comparisons."""
    return clone(model.pipeline).fit(frame[model.features])
