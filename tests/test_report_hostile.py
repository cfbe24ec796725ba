"""Every string of an analysis made hostile at once (ids, vantages, hosts, causes, paths, log text, keys):
the HTML gains no element, the Markdown renders no HTML, the terminal gets no control sequence."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from rich.console import Console

from resetlens.model import Analysis
from resetlens.report.html import render_html
from resetlens.report.markdown import render_markdown
from resetlens.report.sample import HOSTILE_IMG, HOSTILE_SCRIPT, sample_analysis
from resetlens.report.terminal import print_summary

PAYLOADS = [
    HOSTILE_IMG,
    HOSTILE_SCRIPT,
    '"><svg onload=window.__pwned=1>',
    "'><a href=javascript:alert(1)>x</a>",
    "]]><!-- --!><style>*{}</style>",
    "[bold]x[/] :smile: \x1b[2J\x07",
    "`|*_~#![x](y)",
    "&lt;script&gt;",
]


def poison(value: Any, payload: str) -> Any:
    """The same structure with payload prepended to every string, dict keys included."""
    if isinstance(value, str):
        return payload + value
    if isinstance(value, dict):
        return {
            (payload + k if isinstance(k, str) and k not in KEEP_KEYS else k): poison(v, payload)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [poison(v, payload) for v in value]
    return value


# Model field names stay (they are ours); everything under them is data.
KEEP_KEYS = set(Analysis().to_dict()) | {
    "vantage", "path", "host", "packets", "resets", "first_ts", "last_ts", "clock_offset", "clock_offset_error",
    "warnings", "format", "link_types", "tcp_packets", "bytes", "clock_method", "ts", "orig_h", "orig_p", "resp_h",
    "resp_p", "conn_state", "history", "duration", "orig_bytes", "resp_bytes", "uid", "orig_pkts", "resp_pkts",
    "first_frame", "last_frame", "frame", "ttl", "ip_id", "src", "sport", "dst", "dport", "seq", "ack", "flags",
    "window", "local_ts", "connection", "context", "ladder", "flow_frames", "code", "text", "weight", "missing",
    "kind", "line", "event", "fields", "match", "role", "id", "seen_at", "sender", "cause", "confidence", "evidence",
    "logs", "decision", "flow", "incident", "effective", "explanation", "display_filter", "name", "addresses",
    "source", "reason", "summary", "len",
}  # fmt: skip

ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "main", "header", "h1", "h2", "h3", "h4", "p", "nav", "a",
    "code", "section", "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "span", "strong", "br", "em", "div",
    "label", "select", "option", "button", "svg", "rect", "line", "text", "g", "polyline", "polygon", "script",
    "details", "summary",
}  # fmt: skip


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def check_html(page: str) -> None:
    parser = Tags()
    parser.feed(page)
    tags = {t for t, _ in parser.tags}
    assert tags <= ALLOWED_TAGS, tags - ALLOWED_TAGS
    assert sum(1 for t, _ in parser.tags if t == "script") == 2
    assert sum(1 for t, _ in parser.tags if t == "style") == 1
    for _, attrs in parser.tags:
        for name, value in attrs:
            assert not name.startswith("on") and name != "style", name
            if name in ("href", "src"):
                assert value is not None and value.startswith(("#", "data:application/vnd.tcpdump.pcap")), (
                    value
                )


def check_markdown(md: str) -> None:
    out = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    assert not re.search(r"<(img|script|svg|a |style|b>)", out), out


def check_terminal(a: Analysis) -> None:
    console = Console(record=True, width=160, force_terminal=True, color_system="truecolor")
    print_summary(a, console)
    text = console.export_text(styles=False)
    assert "\x1b" not in text and "\x07" not in text


def hostile(payload: str) -> Analysis:
    a = sample_analysis(hostile=True)
    a.summary["verdict"] = payload + "verdict"
    return Analysis.from_dict(poison(a.to_dict(), payload))


def test_every_field_hostile_each_payload() -> None:
    for payload in PAYLOADS:
        a = hostile(payload)
        assert a.resets[0].id.startswith(payload) and a.captures[0].vantage.startswith(payload)
        check_html(render_html(a))
        check_markdown(render_markdown(a))
        check_terminal(a)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(
        alphabet=st.sampled_from(list("<>&\"'`/\\=![](){}|*_~#:;- \n\tabcsriptonload\x1b\x00\u2028")),
        max_size=40,
    )
)
def test_random_hostile_strings(payload: str) -> None:
    a = hostile(payload)
    check_html(render_html(a))
    check_markdown(render_markdown(a))
    check_terminal(a)


def test_odd_values_from_a_saved_file_render(tmp_path: Any) -> None:
    """NaN/inf times (Python's json accepts them), loosely typed ladder packets and RST records, odd kinds."""
    import json

    from resetlens.report.jsonreport import load_json

    data = sample_analysis().to_dict()
    data["resets"][0]["ts"] = float("nan")
    data["resets"][1]["seen_at"][0]["ts"] = float("inf")
    data["resets"][1]["seen_at"][0]["ladder"] = [
        {"frame": "x", "ts": None, "src": 5, "sport": "http", "flags": None, "seq": "1e99", "ip_id": "<b>"},
        {},
    ]
    data["resets"][2]["seen_at"][0]["context"] = {"deep": {"er": {"list": [1, {"x": None}]}}, "": ""}
    data["log_sources"].append({"kind": None, "path": 7, "lines": "many", "warnings": "not a list"})
    data["context_logs"][0]["ts"] = float("-inf")
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(data))  # writes NaN/Infinity literals
    a = load_json(path)
    html_text = render_html(a)
    check_html(html_text)
    assert "id=&lt;b&gt;" in html_text
    check_markdown(render_markdown(a))
    check_terminal(a)
