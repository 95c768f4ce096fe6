"""Profiles: segment labels a marketer can read, and a report page built from the registry alone."""
from __future__ import annotations

import re
import xml.dom.minidom

import pandas as pd

from models.pipeline import ModelSpec, model_features
from models.profile import label_segment, profile, readable
from models.train import train
from mydata.lake import Lake
from render.model import write_report


def test_labels_name_the_most_distinctive_features_once():
    z = pd.Series({"card_golf_3m": 2.4, "card_spend_1m": 1.9, "card_spend_3m_avg": 1.8, "bank_inflow_1m": 1.2,
                   "telecom_data_mb_3m_avg": -1.5, "loan_count": 0.2})
    assert readable("card_spend_3m_avg") == readable("card_spend_1m") == "card spend"
    label, distinctive = label_segment(z)
    assert label == "high card golf, high card spend, low telecom data mb"
    assert [d["feature"] for d in distinctive] == ["card_golf_3m", "card_spend_1m", "telecom_data_mb_3m_avg"]
    moves_with_golf = pd.DataFrame(0.0, index=z.index, columns=z.index)
    for spend in ("card_spend_1m", "card_spend_3m_avg"):
        moves_with_golf.loc["card_golf_3m", spend] = moves_with_golf.loc[spend, "card_golf_3m"] = 0.9
    assert label_segment(z, moves_with_golf)[0] == "high card golf, low telecom data mb, high bank inflow"
    assert label_segment(pd.Series({"loan_count": 0.1}))[0] == "close to the population average"


def test_profile_and_its_report(tmp_path, blobs):
    frame, truth = blobs(60)
    model = train(frame, ModelSpec(ks=range(2, 6), seed=2))
    found = profile(model.pipeline, frame, model.labels, model.features)
    segments = found["segments"]
    assert sorted(s["size"] for s in segments) == [60, 60, 60] and len({s["label"] for s in segments}) == 3
    assert abs(sum(s["share"] for s in segments) - 1) < 1e-3
    for s in segments:  # the label's first feature is the one furthest from the population on the model's scale
        z = found["segment_z"][str(s["segment"])]
        assert s["distinctive"][0]["feature"] == max(z, key=lambda f: abs(z[f] or 0))
        mean = found["segment_mean"][str(s["segment"])]
        members = frame[model.labels == s["segment"]]
        assert abs(mean[model_features()[0]] - members[model_features()[0]].mean()) < 1e-2
    metadata = {"purpose": "marketing", "version": "v0001", "features": model.features, "profile": found,
                "metrics": model.metrics, "parameters": model.spec.as_dict(), "as_of": "2026-10-01",
                "selection": {"rule": model.selection.rule,
                              "silhouette": {str(k): v for k, v in model.selection.silhouette.items()},
                              "inertia": {str(k): v for k, v in model.selection.inertia.items()}}}
    page = write_report(Lake(tmp_path), metadata).read_text(encoding="utf-8")
    for s in segments:
        assert s["label"] in page
    charts = re.findall(r"<svg.*?</svg>", page, re.S)
    for chart in charts:
        xml.dom.minidom.parseString(chart)  # well-formed: browsers draw it
    assert any("rotate(-45)" in c for c in charts), "heat map"
    assert sum("polyline" in c for c in charts) == 2, "silhouette and inertia curves"
    assert "highest silhouette over 2–5" in page
