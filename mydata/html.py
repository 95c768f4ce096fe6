"""Self-contained HTML pages for the reports people read (no server, no JavaScript, no CDN).

One look for every report: a title, a line of facts, sections of tables and inline SVG bars.
Every value passes through ``escape``; callers hand in data, never markup, except through
``Markup`` (for a cell that is itself built here, such as a status badge or a bar).
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:72rem;
     color:#1d2330;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde}
.facts{color:#556;margin:.2rem 0 1rem}.facts span{margin-right:1.2rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:13px}
th,td{padding:.25rem .6rem;border-bottom:1px solid #e4e6ee;text-align:left;vertical-align:top}
th{background:#f3f4f8;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#0a6b2d;font-weight:600}.bad{color:#b00020;font-weight:600}.muted{color:#778}
p.note{color:#445;max-width:60rem}code{background:#f3f4f8;padding:0 .2rem}
"""


@dataclass(frozen=True)
class Markup:
    """Trusted HTML built by this module."""
    text: str


def escape(value: object) -> str:
    if isinstance(value, Markup):
        return value.text
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return html.escape("" if value is None else str(value))


def status(ok: bool, yes: str = "pass", no: str = "FAIL") -> Markup:
    return Markup(f'<span class="{"ok" if ok else "bad"}">{yes if ok else no}</span>')


def code(text: str) -> Markup:
    return Markup(f"<code>{html.escape(text)}</code>")


def bar(value: float, maximum: float, width: int = 160, colour: str = "#4a6fd1") -> Markup:
    """A horizontal bar scaled to ``maximum``, for counts and shares inside a table cell."""
    share = 0.0 if maximum <= 0 else max(0.0, min(1.0, value / maximum))
    return Markup(f'<svg width="{width}" height="12" role="img"><rect width="{share * width:.1f}" '
                  f'height="12" fill="{colour}"/></svg>')


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    body = []
    for row in rows:
        cells = "".join(f'<td class="n">{escape(v)}</td>' if isinstance(v, (int, float))
                        and not isinstance(v, bool) else f"<td>{escape(v)}</td>" for v in row)
        body.append(f"<tr>{cells}</tr>")
    if not body:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def section(title: str, *parts: str, note: str | None = None) -> str:
    intro = f'<p class="note">{escape(note)}</p>' if note else ""
    return f"<h2>{escape(title)}</h2>{intro}{''.join(parts)}"


def page(title: str, facts: dict[str, object], sections: Sequence[str]) -> str:
    line = "".join(f"<span><b>{escape(k)}</b> {escape(v)}</span>" for k, v in facts.items())
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>"
            f'<div class="facts">{line}</div>{"".join(sections)}</body></html>\n')


def write_page(path: Path, text: str) -> Path:
    """Write aside and rename, so a reader never opens half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
