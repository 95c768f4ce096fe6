"""Segmentation pipelines: the preprocessing every model shares, then a clustering step.

Preprocessing is declared by the features: amounts, counts and other heavy-tailed units get a
signed log transform (balances may be negative), then median imputation (means over no records
are null), scaling, and optionally PCA. The clustering step is KMeans, MiniBatchKMeans or a
Gaussian mixture. Everything is seeded: the same snapshot and parameters give the same model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from models.snapshots import released_features
from mydata.errors import UsageError

ALGORITHMS = ("kmeans", "minibatch_kmeans", "gmm")
#: units whose values are heavy-tailed: they are modelled on a signed log scale
SKEWED_UNITS = frozenset({"KRW", "count", "MB", "minutes", "sessions", "days"})


def model_features() -> list[str]:
    """The numeric released features a segmentation uses (quasi-identifiers are not behaviour)."""
    return [f.name for f in released_features() if f.dtype != "string"]


def skewed_features() -> list[str]:
    return [f.name for f in released_features() if f.dtype != "string" and f.unit in SKEWED_UNITS]


def model_matrix(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The features as float64, missing values NaN. Snapshots hold nullable integers, which
    scikit-learn would convert cell by cell on every transform (most of the time at 1M rows)."""
    return frame[features].astype("float64")


def signed_log1p(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log1p(np.abs(values))


DEFAULT_KS = tuple(range(3, 11))


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A segmentation model's options, checked when built: the algorithm, ``k`` (unset: chosen
    from the candidates ``ks`` by the selection rule), the seed and an optional PCA step."""

    algorithm: str = "kmeans"
    k: int | None = None
    ks: tuple[int, ...] = DEFAULT_KS
    seed: int = 0
    pca_components: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ks", tuple(self.ks))  # a range or a list is accepted, a tuple kept
        if self.algorithm not in ALGORITHMS:
            raise UsageError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        if self.k is not None and self.k < 2:
            raise UsageError(f"k must be at least 2, got {self.k}")
        if not self.ks or min(self.ks) < 2:
            raise UsageError(f"the candidate ks must be at least 2, got {list(self.ks)}")

    @property
    def candidates(self) -> tuple[int, ...]:
        """The ks model selection tries: k alone when it is given."""
        return (self.k,) if self.k is not None else self.ks

    def with_k(self, k: int) -> ModelSpec:
        """This spec with k chosen (its candidates stay on record)."""
        return replace(self, k=k, ks=self.candidates)

    def as_dict(self) -> dict:
        return {**asdict(self), "ks": list(self.candidates)}


def preprocessing(features: list[str], pca_components: int | None = None, seed: int = 0) -> Pipeline:
    skewed = [f for f in features if f in set(skewed_features())]
    plain = [f for f in features if f not in set(skewed)]
    columns = ColumnTransformer([
        ("log", Pipeline([("log", FunctionTransformer(signed_log1p, feature_names_out="one-to-one")),
                          ("impute", SimpleImputer(strategy="median", keep_empty_features=True))]), skewed),
        ("plain", SimpleImputer(strategy="median", keep_empty_features=True), plain),
    ], remainder="drop", verbose_feature_names_out=False)
    steps = [("columns", columns), ("scale", StandardScaler())]
    if pca_components:
        steps.append(("pca", PCA(n_components=pca_components, random_state=seed)))
    return Pipeline(steps)


def clusterer(spec: ModelSpec):
    if spec.algorithm == "kmeans":
        return KMeans(n_clusters=spec.k, n_init=10, random_state=spec.seed)
    if spec.algorithm == "minibatch_kmeans":
        return MiniBatchKMeans(n_clusters=spec.k, n_init=10, batch_size=4096, random_state=spec.seed)
    return GaussianMixture(n_components=spec.k, covariance_type="full", n_init=2, random_state=spec.seed)


def build_pipeline(spec: ModelSpec, features: list[str] | None = None) -> Pipeline:
    """Preprocessing plus the clustering step of ``spec``; ``predict`` gives segment numbers."""
    features = features or model_features()
    return Pipeline([("prep", preprocessing(features, spec.pca_components, spec.seed)),
                     ("model", clusterer(spec))])
