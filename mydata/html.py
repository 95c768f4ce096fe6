"""Self-contained HTML pages for the reports people read (no server, no JavaScript, no CDN).

One look for every report: a title, a line of facts, sections of tables and inline SVG bars.
Every value passes through ``escape``; callers hand in data, never markup, except through
``Markup`` (for a cell that is itself built here, such as a status badge or a bar).
"""
from __future__ import annotations

import html
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:72rem;
     color:#1d2330;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde}
h2.role{font-size:1.3rem;border-bottom:3px solid #4a6fd1}h3{font-size:1.02rem;margin:1.4rem 0 .2rem}
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


def _diverging(value: float, limit: float) -> str:
    """Blue below zero, red above, white at zero; saturated at ``±limit``."""
    share = max(-1.0, min(1.0, value / limit)) if limit > 0 else 0.0
    target = (178, 24, 43) if share > 0 else (33, 102, 172)
    mix = [round(255 + (c - 255) * abs(share)) for c in target]
    return "#{:02x}{:02x}{:02x}".format(*mix)


def heatmap(row_labels: Sequence[str], column_labels: Sequence[str], values: Sequence[Sequence[float]],
            titles: Sequence[Sequence[str]] | None = None, limit: float = 2.0, cell: int = 26) -> Markup:
    """Rows x columns of coloured cells (diverging around 0, saturated at ``±limit``); ``titles`` are
    the hover texts. Column labels are written at an angle above the cells."""
    left = 12 + 7 * max((len(r) for r in row_labels), default=0)
    top = 12 + int(6.2 * max((len(c) for c in column_labels), default=0) * 0.72)
    width = left + cell * len(column_labels) + top  # the last labels lean right as far as they rise
    height = top + cell * len(row_labels) + 34
    parts = [f'<svg width="{width}" height="{height}" role="img" font-size="11" font-family="system-ui,sans-serif">']
    for j, name in enumerate(column_labels):
        x = left + cell * j + cell / 2
        parts.append(f'<text transform="translate({x + 4:.0f},{top - 4}) rotate(-45)">{html.escape(name)}</text>')
    for i, name in enumerate(row_labels):
        y = top + cell * i
        parts.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4:.0f}" text-anchor="end">{html.escape(name)}</text>')
        for j, value in enumerate(values[i]):
            title = html.escape(titles[i][j]) if titles else f"{value:.2f}"
            parts.append(f'<rect x="{left + cell * j}" y="{y}" width="{cell - 1}" height="{cell - 1}" '
                         f'fill="{_diverging(value, limit)}"><title>{title}</title></rect>')
    legend_y = top + cell * len(row_labels) + 12
    for step in range(9):
        value = -limit + step * limit / 4
        parts.append(f'<rect x="{left + 18 * step}" y="{legend_y}" width="17" height="10" '
                     f'fill="{_diverging(value, limit)}"/>')
    parts.append(f'<text x="{left + 18 * 9 + 6}" y="{legend_y + 9}">{-limit:g} … 0 … +{limit:g} '
                 f'(standard deviations from the population)</text></svg>')
    return Markup("".join(parts))


def line_chart(xs: Sequence[float], series: dict[str, Sequence[float]], marked: float | None = None,
               width: int = 320, height: int = 150) -> Markup:
    """One small chart per series (each on its own scale), the ``marked`` x drawn as a dashed line."""
    charts = []
    for name, ys in series.items():
        if not ys:
            continue
        lo, hi = min(ys), max(ys)
        span, xspan = (hi - lo) or 1.0, (max(xs) - min(xs)) or 1.0
        def px(x: float, xspan: float = xspan) -> float:
            return 44 + (x - min(xs)) / xspan * (width - 56)

        def py(y: float, lo: float = lo, span: float = span) -> float:
            return 14 + (1 - (y - lo) / span) * (height - 40)

        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys))
        parts = [f'<svg width="{width}" height="{height}" role="img" font-size="11" '
                 f'font-family="system-ui,sans-serif"><text x="44" y="10" font-weight="600">{html.escape(name)}</text>',
                 f'<polyline points="{points}" fill="none" stroke="#4a6fd1" stroke-width="2"/>']
        for x, y in zip(xs, ys):
            parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="#4a6fd1"><title>{x:g}: '
                         f'{y:.4g}</title></circle>')
            parts.append(f'<text x="{px(x):.1f}" y="{height - 12}" text-anchor="middle">{x:g}</text>')
        if marked is not None:
            parts.append(f'<line x1="{px(marked):.1f}" x2="{px(marked):.1f}" y1="12" y2="{height - 24}" '
                         'stroke="#b00020" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="40" y="{py(hi) + 4:.1f}" text-anchor="end">{hi:.3g}</text>'
                     f'<text x="40" y="{py(lo) + 4:.1f}" text-anchor="end">{lo:.3g}</text></svg>')
        charts.append("".join(parts))
    return Markup(" ".join(charts))


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


def link(href: str, text: str) -> Markup:
    """A link to ``href`` (a relative path or URL)."""
    return Markup(f'<a href="{html.escape(href)}">{html.escape(text)}</a>')


def section(title: str, *parts: str, note: str | None = None, level: int = 2) -> str:
    intro = f'<p class="note">{escape(note)}</p>' if note else ""
    return f"<h{level}>{escape(title)}</h{level}>{intro}{''.join(parts)}"


def page(title: str, facts: dict[str, object], sections: Sequence[str]) -> str:
    line = "".join(f"<span><b>{escape(k)}</b> {escape(v)}</span>" for k, v in facts.items())
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>"
            f'<div class="facts">{line}</div>{"".join(sections)}</body></html>\n')


def write_page(path: Path, text: str) -> Path:
    """Write aside and rename, so a reader never opens half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # writers may race
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
