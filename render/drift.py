"""A drift check's page: features by PSI, the segment shares side by side, and the verdict
(``reports/drift/<purpose>/<baseline>_to_<as_of>.html``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mydata.lake import Lake
from render import html


def report_path(lake: Lake, purpose: str, baseline: str, as_of: str) -> Path:
    return lake.report("drift") / purpose / f"{baseline}_to_{as_of}.html"


def write_report(path: Path, result: Any, facts: dict, expected_shares: pd.Series,
                 actual_shares: pd.Series, labels: dict[int, str]) -> Path:
    """Features by PSI (largest first) and segment shares side by side, with the verdict on top."""
    ordered = sorted(result.features.items(), key=lambda item: item[1], reverse=True)
    top = max([value for _, value in ordered] + [result.threshold])
    rows = [(name, value, html.bar(value, top, colour="#b00020" if value > result.threshold else "#4a6fd1"),
             html.status(value <= result.threshold, "stable" if value < 0.1 else "moderate", "DRIFTED"))
            for name, value in ordered]
    segments = sorted(set(expected_shares.index) | set(actual_shares.index))
    share_rows = [(s, labels.get(int(s), ""), float(expected_shares.get(s, 0.0)), float(actual_shares.get(s, 0.0)),
                   float(actual_shares.get(s, 0.0) - expected_shares.get(s, 0.0))) for s in segments]
    verdict = (f"Retraining is due: {', '.join(result.drifted)} passed the threshold." if result.retrain
               else "No feature and not the segment shares passed the threshold: the model still fits.")
    body = [
        html.section("Verdict", html.paragraph(html.status(not result.retrain, "stable", "RETRAIN"), " ", verdict),
                     note=f"PSI threshold {result.threshold:g} (MYDATA_DRIFT_THRESHOLD). Usual reading: below 0.1 "
                          "stable, 0.1–0.25 a moderate shift, above 0.25 a real change."),
        html.section("Segment shares", html.table(("segment", "label", "baseline share", "new share", "change"),
                                                  share_rows),
                     note=f"PSI of the segment shares: {result.segments:.4f}." if result.segments is not None else None),
        html.section("Features", html.table(("feature", "PSI", "", "verdict"), rows),
                     note="Each feature binned at the baseline's deciles, with missing values as a bin of their own."),
    ]
    return html.write_page(path, html.page(f"Drift {facts['purpose']}: {facts['baseline']} → {facts['as of']}",
                                           facts, body))
