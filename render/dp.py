"""The page of a differentially private release (``reports/dp/<purpose>/<release>.html``): each
segment's noisy count and means beside the accuracy each carries, and the budget spent."""
from __future__ import annotations

from pathlib import Path

from render import html


def write_page(path: Path, release: dict, spent: float, budget: float) -> Path:
    confidence = f"{1 - release['alpha']:.0%}"
    features = list(release["segments"][0]["means"]) if release["segments"] else []
    rows = []
    for s in release["segments"]:
        rows.append((s["segment"], s["label"], "subjects", f"{s['count']:,}", f"± {s['count_accuracy']:,.0f}", ""))
        rows += [("", "", name, f"{m['mean']:,.1f}", f"± {m['accuracy']:,.1f}", m["unit"])
                 for name, m in s["means"].items()]
    bounds = [(name, *release["segments"][0]["means"][name]["bounds"]) for name in features]
    facts = {"purpose": release["purpose"], "as of": release["as_of"], "model": release["model"],
             "ε of this release": f"{release['epsilon']:g}" + (f", δ {release['delta']:g}" if release["delta"] else ""), "budget spent": f"{spent:g} of {budget:g}"}
    return html.write_page(path, html.page(f"Segment statistics under differential privacy: {release['purpose']}",
                                           facts, [
        html.section("Noisy statistics per segment", html.table(
            ("segment", "label", "statistic", "released value", f"{confidence} accuracy", "unit"), rows),
            note=f"Every value is noisy (OpenDP's {release['noise'].title()} mechanism); with {confidence} probability it is within "
                 "the accuracy shown of the value it stands for, which is released nowhere. Means are a noisy "
                 "clamped sum over a noisy count: their accuracy is a first-order bound."),
        html.section("Clamping bounds, as declared in features/definitions.py", html.table(
            ("feature", "low", "high"), bounds),
            note="Values outside the bounds count as the nearest bound; the bounds are declarations, never "
                 "read from the data.")]))
