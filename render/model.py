"""A segmentation model's profile page: segment sizes and labels, how each differs from the
population, the k-selection curves, quality and lineage (``reports/models/<purpose>/<version>.html``)."""
from __future__ import annotations

from pathlib import Path

from features.definitions import BY_NAME
from mydata.lake import Lake
from render import html

HEATMAP_FEATURES = 28  # the features most different across segments, shown in the heat map


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
        html.section("How each segment differs from the population", heat,
                     note=f"The {len(shown)} features that separate segments most. Hover a cell for the means."),
        html.section("Means", html.table(("feature", "unit", "population",
                                          *[f"segment {s['segment']}" for s in segments]), means)),
        html.section("Choosing the number of segments", html.line_chart(ks, curves, metrics.get("k")),
                     html.table(("k", *curves, ""), k_rows),
                     note=f"k was chosen by {selection.get('rule', '?')} over {ks[0]}–{ks[-1]}." if ks else None),
        html.section("Quality", html.table(("measure", "value"), quality)),
        left_out_section(metadata.get("features_left_out", {})),
        html.section("Lineage", html.table(("", ""), lineage)),
    ]
    facts = {"purpose": purpose, "version": version,
             "algorithm": metadata.get("parameters", {}).get("algorithm"), "as of": metadata.get("as_of"),
             "created": metadata.get("created_at", "")[:19]}
    return html.write_page(report_path(lake, purpose, version),
                           html.page(f"Segmentation model {purpose} {version}", facts, body))


def left_out_section(left_out: dict[str, str]) -> str:
    """The released features training did not use, and why."""
    if not left_out:
        return html.section("Features left out", html.paragraph(
            "None: every released numeric feature varies in the training snapshot."))
    return html.section("Features left out", html.table(("feature", "why"), [
        (html.code(name), f"{why} in the training snapshot: it separates no segment") for name, why in left_out.items()]),
        note="A feature that is constant or all null for every subject carries no information for segmentation, "
             "so training leaves it out rather than listing it among the features that separate segments.")
