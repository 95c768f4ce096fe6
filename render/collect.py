"""The report of one collection run: per holder, calls, pages, retries and failed collections
(``reports/collect/<run id>.html``)."""
from __future__ import annotations

from mydata.lake import Lake
from mydata.manifest import RunManifest
from render import html


def write_report(lake: Lake, manifest: RunManifest) -> str:
    rows = [(org, h.get("subjects", 0), h.get("calls", 0), h.get("pages", 0), h.get("retries", 0),
             h.get("throttles", 0), ", ".join(f"{code} {n}" for code, n in sorted(h.get("failures", {}).items())) or "none",
             h.get("bytes", 0), h.get("seconds", "skipped" if h.get("skipped") else ""))
            for org, h in manifest.outputs["holders"].items()]
    path = lake.report("collect") / f"{manifest.run_id}.html"
    html.write_page(path, html.page(f"Collection: {manifest.parameters['source']} on {manifest.parameters['dt']}", {
        "source": manifest.parameters["source"], "delivery": manifest.parameters["dt"],
        "complete": html.status(manifest.outputs["complete"], "yes (_SUCCESS)", "NO")}, [
        html.section("Per holder", html.table(("holder", "subjects", "calls", "pages", "retries", "throttled",
                                               "failed collections by rsp_code", "bytes", "seconds"), rows),
                     note="A failed collection is landed with the holder's rsp_code (or the collector's C0xxx "
                          "when no good answer came) and counted by ingest.")]))
    return str(path)
