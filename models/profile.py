"""Segment profiles: who is in each segment, in words a marketer can use, and the report page.

A segment is described by how far its mean sits from the population's on the model's own scale
(after the signed log and scaling, so one standard deviation means the same for every feature).
The label names the segment's most distinctive features ("high card golf, high card travel,
low telecom micropay"); features that read the same (1- and 3-month card spend) are named once.
The profile is stored in the model's metadata, so the report can be rebuilt from the registry.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from features.definitions import BY_NAME
from mydata import html
from models.pipeline import model_matrix
from mydata.lake import Lake

LABEL_FEATURES = 3
#: a feature is called "high" or "low" only when the segment mean is this many standard deviations away
DISTINCT_Z = 0.5
#: a feature that moves with one already named (|correlation| above this) adds no new information
REDUNDANT_CORRELATION = 0.7
HEATMAP_FEATURES = 28


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


def report_path(lake: Lake, purpose: str, version: str) -> Path:
    return lake.report("models") / purpose / f"{version}.html"


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def write_report(lake: Lake, metadata: dict) -> Path:
    """The profile page of one registered model, from its metadata alone."""
    purpose, version = metadata["purpose"], metadata["version"]
    prof, metrics, selection = metadata["profile"], metadata.get("metrics", {}), metadata.get("selection", {})
    segments = prof["segments"]
    z = {int(s): v for s, v in prof["segment_z"].items()}
    spread = {f: max(abs(z[s["segment"]].get(f) or 0.0) for s in segments) for f in metadata["features"]}
    shown = sorted(spread, key=spread.get, reverse=True)[:HEATMAP_FEATURES]
    largest = max(s["size"] for s in segments)
    rows = [(s["segment"], s["label"], s["size"], s["share"], html.bar(s["size"], largest),
             "; ".join(f"{d['feature']} {d['z']:+.2f}σ" for d in s["distinctive"]) or "–") for s in segments]
    titles = [[f"segment {s['segment']} · {f}: mean {_number(prof['segment_mean'][str(s['segment'])].get(f))} "
               f"vs population {_number(prof['population_mean'].get(f))} ({z[s['segment']].get(f) or 0:+.2f}σ)"
               for f in shown] for s in segments]
    heat = html.heatmap([f"{s['segment']} {s['label'][:38]}" for s in segments], shown,
                        [[z[s["segment"]].get(f) or 0.0 for f in shown] for s in segments], titles)
    means = [(f, BY_NAME[f].unit if f in BY_NAME else "", _number(prof["population_mean"].get(f)),
              *[_number(prof["segment_mean"][str(s["segment"])].get(f)) for s in segments]) for f in shown]
    ks = sorted(int(k) for k in selection.get("silhouette", {}))
    curves = {}
    for key, name in (("silhouette", "silhouette (higher is better)"), ("bic", "BIC (lower is better)"),
                      ("inertia", "inertia (elbow)")):
        values = {int(k): v for k, v in (selection.get(key) or {}).items()}
        if values:
            curves[name] = [values[k] for k in ks]
    k_rows = [(k, *(curve[i] for curve in curves.values()), "chosen" if k == metrics.get("k") else "")
              for i, k in enumerate(ks)]
    quality = [("segments (k)", metrics.get("k")), ("silhouette", metrics.get("silhouette")),
               ("stability (mean ARI over bootstrap refits)", metrics.get("stability_ari")),
               ("smallest segment share", metrics.get("smallest_segment_share")),
               ("subjects trained on", metrics.get("rows"))]
    if "ari_vs_latent_types" in metrics:
        quality.append(("ARI vs the generator's latent customer types", metrics["ari_vs_latent_types"]))
    lineage = [("feature snapshot", html.code(metadata.get("snapshot", ""))),
               ("snapshot content hash (SHA-256)", html.code(metadata.get("snapshot_hash", ""))),
               ("consent snapshot", metadata.get("consent_snapshot")),
               ("parameters", html.code(str(metadata.get("parameters")))),
               ("features", f"{len(metadata['features'])} numeric released features"),
               ("libraries", ", ".join(f"{k} {v}" for k, v in metadata.get("libraries", {}).items()))]
    body = [
        html.section("Segments", html.table(("segment", "label", "subjects", "share", "", "most distinctive"), rows),
                     note="Labels name the features whose segment mean sits furthest from the population's, in "
                          "standard deviations (σ) on the model's scale: amounts and counts after a signed log."),
        html.section("How each segment differs from the population", heat.text,
                     note=f"The {len(shown)} features that separate segments most. Hover a cell for the means."),
        html.section("Means", html.table(("feature", "unit", "population",
                                          *[f"segment {s['segment']}" for s in segments]), means)),
        html.section("Choosing the number of segments", html.line_chart(ks, curves, metrics.get("k")).text,
                     html.table(("k", *curves, ""), k_rows),
                     note=f"k was chosen by {selection.get('rule', '?')} over {ks[0]}–{ks[-1]}." if ks else None),
        html.section("Quality", html.table(("measure", "value"), quality)),
        html.section("Lineage", html.table(("", ""), lineage)),
    ]
    facts = {"purpose": purpose, "version": version,
             "algorithm": metadata.get("parameters", {}).get("algorithm"), "as of": metadata.get("as_of"),
             "created": metadata.get("created_at", "")[:19]}
    return html.write_page(report_path(lake, purpose, version),
                           html.page(f"Segmentation model {purpose} {version}", facts, body))
