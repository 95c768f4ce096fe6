"""The reports' building blocks: values escaped, numbers formatted by one filter, and Korean text
drawn as glyphs in Debian's headless Chromium (the style names a Hangul font; `make test`
installs fonts-noto-cjk)."""
from __future__ import annotations

import pytest
from markupsafe import Markup

from render import html


def test_values_are_escaped_and_numbers_go_through_the_number_filter():
    table = html.table(("name", "count", "share"), [("<script>", 1234567, 0.123456), ("a&b", True, None)])
    assert table == ('<table><thead><tr><th>name</th><th>count</th><th>share</th></tr></thead><tbody>'
                     '<tr><td>&lt;script&gt;</td><td class="n">1,234,567</td><td class="n">0.1235</td></tr>'
                     '<tr><td>a&amp;b</td><td>True</td><td></td></tr></tbody></table>')
    assert html.table(("x",), []) == '<p class="muted">none</p>'
    assert html.number(12345) == "12,345" and html.number("12345") == "12345"  # text stays text


def test_pieces_built_here_stay_markup_and_text_around_them_is_escaped():
    shown = html.section("Verdict <b>", html.paragraph(html.status(False, "ok", "RETRAIN"), " because x < y"),
                         note="k & l")
    assert shown == ('<h2>Verdict &lt;b&gt;</h2><p class="note">k &amp; l</p>'
                     '<p><span class="bad">RETRAIN</span> because x &lt; y</p>')
    assert html.link('x" onclick="y', "t") == '<a href="x&#34; onclick=&#34;y">t</a>'


def test_a_page_declares_a_korean_capable_font_stack():
    page = html.page("동의 검토", {"subjects": 1200}, [html.section("요약")])
    assert "<title>동의 검토</title>" in page and "<b>subjects</b> 1,200" in page
    assert '"Noto Sans CJK KR"' in page and '"Malgun Gothic"' in page and '"Apple SD Gothic Neo"' in page


@pytest.mark.slow
def test_korean_on_a_report_renders_as_glyphs_not_boxes(tmp_path):
    from selenium.webdriver.common.by import By

    from tests.browser import chromium

    probe = Markup('<span id="probe" style="display:inline-block;width:60px;height:60px;font-size:40px"></span>')
    page = html.write_page(tmp_path / "report.html", html.page("한글 보고서", {}, [html.paragraph(probe)]))
    with chromium() as browser:
        browser.get(page.as_uri())

        def drawn(text: str) -> bytes:
            browser.execute_script("document.getElementById('probe').textContent = arguments[0]", text)
            return browser.find_element(By.ID, "probe").screenshot_as_png

        ga, na = drawn("가"), drawn("나")
        no_font_a, no_font_b = drawn("\U000f0001"), drawn("\U000f0002")  # private use: no font has them
    # what boxes look like: two characters no font draws come out the same
    assert no_font_a == no_font_b
    # Hangul does not: two syllables draw differently, and neither is the box
    assert ga != na and no_font_a not in (ga, na)
