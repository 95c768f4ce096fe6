"""Self-contained HTML pages for the reports people read (no server, no JavaScript, no CDN).

One look for every report: ``templates/base.html`` (a title, a line of facts, sections) with the
style in ``templates/style.css``, and the pieces in ``templates/macros.html`` (section, table,
status, code, link, paragraph). Jinja2 escapes every value; a number is formatted only by the
explicit ``number`` filter. The SVG helpers below build their markup with MarkupSafe's escaping.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape


def number(value: object) -> object:
    """The one way a report writes a number: thousands separated, floats to four significant digits."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else value
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return value


ENV = Environment(loader=PackageLoader("render", "templates"), autoescape=True, undefined=StrictUndefined,
                  keep_trailing_newline=True)
ENV.filters["number"] = number
_MACROS = ENV.get_template("macros.html").module


def section(title: str, *parts: object, note: str | None = None, level: int = 2) -> Markup:
    return _MACROS.section(title, parts, note, level)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> Markup:
    """Rows of cells; a number is right-aligned, and no rows say "none"."""
    return _MACROS.table(headers, [list(row) for row in rows])


def status(ok: bool, yes: str = "pass", no: str = "FAIL") -> Markup:
    return _MACROS.status(ok, yes, no)


def code(text: str) -> Markup:
    return _MACROS.code(text)


def link(href: str, text: str) -> Markup:
    """A link to ``href`` (a relative path or URL)."""
    return _MACROS.link(href, text)


def paragraph(*parts: object, kind: str | None = None) -> Markup:
    """A paragraph of text and pieces built here (``kind``: ok, bad, muted or note)."""
    return _MACROS.paragraph(parts, kind)


def role_heading(role: str) -> Markup:
    """The heading of one kind of user's part of a page."""
    return _MACROS.role_heading(role)


def page(title: str, facts: dict[str, object], sections: Sequence[object]) -> str:
    return ENV.get_template("base.html").render(title=title, facts=facts, sections=sections, lang="en")


def bar(value: float, maximum: float, width: int = 160, colour: str = "#4a6fd1") -> Markup:
    """A horizontal bar scaled to ``maximum``, for counts and shares inside a table cell."""
    share = 0.0 if maximum <= 0 else max(0.0, min(1.0, value / maximum))
    return Markup('<svg width="{}" height="12" role="img"><rect width="{:.1f}" height="12" fill="{}"/></svg>').format(
        width, share * width, colour)


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
        parts.append(f'<text transform="translate({x + 4:.0f},{top - 4}) rotate(-45)">{escape(name)}</text>')
    for i, name in enumerate(row_labels):
        y = top + cell * i
        parts.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4:.0f}" text-anchor="end">{escape(name)}</text>')
        for j, value in enumerate(values[i]):
            title = escape(titles[i][j]) if titles else f"{value:.2f}"
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
                 f'font-family="system-ui,sans-serif"><text x="44" y="10" font-weight="600">{escape(name)}</text>',
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


def write_page(path: Path, text: str) -> Path:
    """Write aside and rename, so a reader never opens half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # writers may race
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
