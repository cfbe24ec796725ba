"""Markdown ticket summary: content, and hostile strings inert under a Markdown renderer that allows HTML."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from resetlens.report.markdown import code, render_markdown, text, write_markdown
from resetlens.report.sample import HOSTILE_IMG, HOSTILE_SCRIPT, sample_analysis

# CommonMark with raw HTML allowed (the worst case: what a lax ticket renderer does) plus GFM tables.
RENDER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def rendered(md: str) -> str:
    return RENDER.render(md)


def visible(html_text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", html_text))


HOSTILE = [
    HOSTILE_IMG,
    HOSTILE_SCRIPT,
    "*bold* _em_ `code` [link](javascript:alert(1)) ![i](x) <b>b</b> | cell | ~~s~~ # h &amp; \\",
    "http://evil.example/x www.evil.example <http://evil.example>",
    "line\nbreak\r\n- item\n# heading\n",
    "```fence``` `` two ``",
]


@pytest.mark.parametrize("s", HOSTILE)
def test_text_is_inert_and_shown_as_written(s: str) -> None:
    out = rendered(f"before {text(s)} after")
    assert "<img" not in out and "<script" not in out and "<a " not in out and "<b>" not in out
    assert "<em>" not in out and "<strong>" not in out and "<code>" not in out and "<del>" not in out
    assert visible(out).strip() == f"before {' '.join(s.split())} after"


@pytest.mark.parametrize("s", HOSTILE)
def test_code_span_is_literal(s: str) -> None:
    out = rendered(f"x {code(s)} y")
    assert "<img" not in out and "<script" not in out and "<a " not in out
    assert out.count("<code>") == 1
    assert visible(out).strip() == f"x {' '.join(s.split())} y"


def test_table_cells_not_broken_by_pipes() -> None:
    md = "| a | b |\n|---|---|\n| " + text("x | y | z") + " | " + code("p || q", in_table=True) + " |\n"
    out = rendered(md)
    assert out.count("<td>") == 2
    assert "<code>p || q</code>" in out


def test_display_filter_with_pipes_kept() -> None:
    out = rendered("- " + code("tcp.port==80 || tcp.port==443"))
    assert "<code>tcp.port==80 || tcp.port==443</code>" in out


def test_summary_content(tmp_path: Path) -> None:
    a = sample_analysis()
    out = tmp_path / "s.md"
    write_markdown(a, out)
    md = out.read_text(encoding="utf-8")
    assert md.startswith("## resetlens: payments 502s")
    assert "**Verdict.** 5 resets seen across 5 vantage points." in md
    assert (
        md.index("### Incidents")
        < md.index("### Resets")
        < md.index("### Checklist")
        < md.index("### What is missing")
    )
    assert "`ip.addr==10.40.0.20 && ip.addr==10.40.0.1 && tcp.port==8080 && tcp.port==40112`" in md
    assert "- [ ] **conntrack and port\\-range state**" not in md  # '-' needs no escape
    assert "- [ ] **conntrack and port-range state** (missing)" in md
    assert "- [x] **proxy log lines** (present)" in md
    assert "proxy\\-front's capture has a gap" not in md and "proxy-front's capture has a gap" in md
    page = rendered(md)
    assert page.count("<h3>") >= 5 and "<table>" in page
    assert "recv() failed (104: Connection reset by peer)" in visible(page)


def test_hostile_summary_renders_no_markup() -> None:
    md = render_markdown(sample_analysis(hostile=True))
    page = rendered(md)
    assert "<img" not in page and "<script" not in page
    shown = visible(page)
    assert HOSTILE_IMG in shown and HOSTILE_SCRIPT in shown
    assert f'server"{HOSTILE_IMG}' in shown


def test_markdown_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    write_markdown(sample_analysis(), "-")
    assert "### Checklist" in capsys.readouterr().out
