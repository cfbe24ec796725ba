"""HTML report without a browser: strict CSP, nothing external, hostile text escaped, size caps."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

from resetlens.model import Analysis, LogLine, Reset, Sender, Sighting
from resetlens.report import html as html_report
from resetlens.report.html import render_html, write_html
from resetlens.report.sample import HOSTILE_IMG, HOSTILE_SCRIPT, many_resets, sample_analysis
from resetlens.report.snippets import snippet_name
from resetlens.report.view import display_filter, incidents

# Attributes that make a browser fetch or navigate.
URL_ATTRS = {"src", "href", "xlink:href", "action", "formaction", "poster", "srcset", "data", "background"}


class Page(HTMLParser):
    """Collects what the checks need: tags, URL attributes, meta CSP, inline style/script text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._in: tuple[str, dict[str, str | None]] | None = None
        self._buf: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        d = dict(attrs)
        self.tags.append((tag, d))
        if tag in ("style", "script"):
            self._in, self._buf = (tag, d), []

    def handle_endtag(self, tag: str) -> None:
        if self._in and tag == self._in[0]:
            body = "".join(self._buf)
            if tag == "style":
                self.styles.append(body)
            else:
                self.scripts.append((self._in[1], body))
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self._buf.append(data)
        else:
            self.text.append(data)


def parse(text: str) -> Page:
    p = Page()
    p.feed(text)
    p.close()
    return p


def sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_csp_strict_and_hashes_match_inline_code() -> None:
    page = parse(render_html(sample_analysis()))
    metas = [
        a
        for t, a in page.tags
        if t == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy"
    ]
    assert len(metas) == 1
    csp = {d.split()[0]: d.split()[1:] for d in (metas[0]["content"] or "").split(";") if d.strip()}
    assert csp["default-src"] == ["'none'"]
    assert csp["img-src"] == ["data:"]
    assert "'unsafe-inline'" not in csp["script-src"] + csp["style-src"]
    assert len(page.styles) == 1 and csp["style-src"] == [sha(page.styles[0])]
    code = [body for attrs, body in page.scripts if attrs.get("type") != "application/json"]
    assert len(code) == 1 and csp["script-src"] == [sha(code[0])]
    # the CSP comes before any style or script
    order = [t for t, _ in page.tags]
    assert order.index("meta") < order.index("style")


def test_nothing_external() -> None:
    text = render_html(sample_analysis(hostile=True))
    page = parse(text)
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            if name in URL_ATTRS and value is not None:
                assert value.startswith(("#", "data:")), (tag, name, value)
        assert tag not in ("link", "iframe", "img", "object", "embed", "base", "form", "audio", "video")
        assert "style" not in attrs, tag  # inline style attributes would be blocked by the CSP
        assert not any(n.startswith("on") for n in attrs), (tag, attrs)
    for css in page.styles:
        assert "url(" not in css and "@import" not in css and "@font-face" not in css
    js = "".join(body for _, body in page.scripts)
    for word in ("fetch(", "XMLHttpRequest", "import(", "WebSocket", "innerHTML", "eval(", "sendBeacon"):
        assert word not in js


def test_hostile_strings_are_text_not_markup() -> None:
    a = sample_analysis(hostile=True)
    text = render_html(a)
    page = parse(text)
    # no element came out of the data: only our own tags exist
    assert not [t for t, _ in page.tags if t in ("img", "iframe")]
    assert sum(1 for t, _ in page.tags if t == "script") == 2
    # the strings are all there, as text (vantage name, SNI, Host header, log lines)
    visible = "".join(page.text)
    assert HOSTILE_IMG in visible and HOSTILE_SCRIPT in visible
    assert f'server"{HOSTILE_IMG}' in visible
    assert "&lt;img src=x onerror=window.__pwned=1&gt;" in text
    # and attribute values carrying the vantage name stay inside their quotes
    marks = [attrs for t, attrs in page.tags if "rst-mark" in (attrs.get("class") or "")]
    assert {m["data-vantage"] for m in marks} >= {f'server"{HOSTILE_IMG}'}


def test_json_block_cannot_close_script() -> None:
    a = sample_analysis(hostile=True)
    a.resets[0].cause = HOSTILE_SCRIPT
    text = render_html(a)
    block = text.split('<script type="application/json" id="resetlens-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block
    data = json.loads(block)
    assert [HOSTILE_SCRIPT, "middlebox", "injected", 1] in data["combos"]
    assert data["total"] == 5
    assert sum(n for *_, n in data["combos"]) == 5


def test_timeline_one_mark_per_sighting_and_lanes() -> None:
    a = sample_analysis()
    page = parse(render_html(a))
    marks = [attrs for t, attrs in page.tags if "rst-mark" in (attrs.get("class") or "").split()]
    assert len(marks) == sum(len(r.seen_at) for r in a.resets) == 10
    assert {m["data-reset-id"] for m in marks} == {r.id for r in a.resets}
    by_reset = {r.id: {s.vantage for s in r.seen_at} for r in a.resets}
    for m in marks:
        assert m["data-vantage"] in by_reset[m["data-reset-id"]]
    # R1 (injected) is drawn at the client and firewall only, coloured as a middlebox
    r1 = [m for m in marks if m["data-reset-id"] == "R1"]
    assert {m["data-vantage"] for m in r1} == {"client", "firewall"}
    groups = {
        g["data-reset-id"]: g
        for t, g in page.tags
        if t == "g" and "tl-reset" in (g.get("class") or "").split()
    }
    assert set(groups) == {r.id for r in a.resets}
    assert "r-middlebox" in (groups["R1"]["class"] or "") and groups["R1"]["data-kind"] == "injected"
    links = [attrs for t, attrs in page.tags if "rst-link" in (attrs.get("class") or "")]
    assert len(links) == 4  # every reset seen at two or more vantages
    labels = [t for t in page.text if t.strip()]
    for c in a.captures:
        assert c.vantage in labels
    assert any(t.startswith("journald-json: app-journal") for t in labels)
    assert "logs/app-journal.json" in labels  # the lane title holds the full path
    logs = [attrs for t, attrs in page.tags if "log-mark" in (attrs.get("class") or "")]
    assert len(logs) == 6
    # R1 is absent from proxy-front's capture (the claimed sender's): drawn there as a gap
    gaps = [attrs for t, attrs in page.tags if "rst-absent" in (attrs.get("class") or "")]
    assert [(g["data-reset-id"], g["data-vantage"]) for g in gaps] == [("R1", "proxy-front")]


def test_sections_in_order_and_checklist() -> None:
    text = render_html(sample_analysis())
    positions = [text.index(f'<section id="{s}"') for s in ("verdict", "incidents", "timeline", "resets", "checklist", "captures", "log-sources")]  # fmt: skip
    assert positions == sorted(positions)
    page = parse(text)
    checks = {a["data-check"] for t, a in page.tags if t == "li" and "data-check" in a}
    assert checks == {"two_vantages", "tuples", "proxy_logs", "restart", "conntrack", "knobs"}
    assert (
        "ip.addr==10.30.1.1 &amp;&amp; ip.addr==10.20.4.7 &amp;&amp; tcp.port==443 &amp;&amp; tcp.port==51514"
        in text
    )
    assert text.count('class="ladder"') == 4  # one per sighting that carries ladder packets
    # ladder labels: relative seq/ack as Wireshark shows them, no ack on a segment without ACK
    assert "[S] seq=0 len=0 ttl=64 id=4411 win=502" in text
    assert "[SA] seq=0 ack=1 len=0" in text
    assert "[R] seq=1 len=0 ttl=63 id=0 win=0" in text  # R1: the forged RST at seq = the SYN-ACK + 1


def test_verdict_from_summary_when_given() -> None:
    a = sample_analysis()
    a.summary["verdict"] = "The firewall forged it <b>really</b>."
    text = render_html(a)
    assert '<p class="verdict">The firewall forged it &lt;b&gt;really&lt;/b&gt;.</p>' in text


def dense(a: Analysis) -> Analysis:
    """Every sighting with a full 40-packet ladder and every reset with 12 evidence items and 6 log lines."""
    ladder = sample_analysis().resets[0].seen_at[1].ladder
    for r in a.resets:
        for s in r.seen_at:
            s.ladder = (ladder * 8)[:40]
        r.evidence = (r.evidence * 12)[:12] if r.evidence else []
        r.logs = (r.logs * 6)[:6] if r.logs else []
    return a


def test_size_capped_with_many_dense_resets(tmp_path: Path) -> None:
    out = tmp_path / "dense.html"
    write_html(dense(many_resets(10_000)), out)
    assert out.stat().st_size < 5_000_000, out.stat().st_size


def test_size_capped_with_many_resets(tmp_path: Path) -> None:
    a = many_resets(10_000, hostile=True)
    out = tmp_path / "big.html"
    write_html(a, out)
    size = out.stat().st_size
    assert size < 5_000_000, size
    text = out.read_text(encoding="utf-8")
    assert f"{10_000 - html_report.RESET_ROWS_MAX} more resets" in text
    drawn = int(re.search(r"The first (\d+) of 10000 resets are drawn", text).group(1))
    assert text.count('<section class="reset"') == html_report.DETAIL_MAX
    page = parse(text)
    marks = len([1 for t, a in page.tags if "rst-mark" in (a.get("class") or "")])
    assert marks <= html_report.TIMELINE_MARKS_MAX
    assert marks == sum(len(r.seen_at) for r in sorted(a.resets, key=lambda r: r.ts)[:drawn])


def test_empty_analysis_renders() -> None:
    text = render_html(Analysis())
    assert "No TCP reset was found" in text
    assert "Nothing to draw" in text
    assert "<svg" not in text


def test_incidents_fallback_clusters_by_sender_cause_and_60s() -> None:
    a = many_resets(20)  # the 5 example resets repeated 4 times, 7 s apart
    groups = incidents(a)
    assert len(groups) == 5 and all(len(g.resets) == 4 for g in groups)
    far = many_resets(10)
    for r in far.resets[5:]:
        r.ts += 600  # second round 10 minutes later: new incidents
    assert len(incidents(far)) == 10


def test_display_filter_v4_v6_and_given() -> None:
    r = Reset("R", 0.0, "2001:db8::1", 443, "2001:db8::2", 5555, [Sighting("c", 0.0, 1, 64, None)], Sender())
    assert (
        display_filter(r)
        == "ipv6.addr==2001:db8::1 && ipv6.addr==2001:db8::2 && tcp.port==443 && tcp.port==5555"
    )
    r.display_filter = "tcp.stream eq 7"
    assert display_filter(r) == "tcp.stream eq 7"


def test_snippets_embedded_small_linked_large(tmp_path: Path) -> None:
    a = sample_analysis(hostile=True)
    snippets = tmp_path / "report-snippets"
    snippets.mkdir()
    small = snippets / snippet_name("R2", "proxy-back")
    small.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\0" * 20)
    large = snippets / snippet_name("R2", a.resets[1].seen_at[1].vantage)
    large.write_bytes(b"\0" * (html_report.SNIPPET_EMBED_MAX + 1))
    assert "/" not in large.name and "<" not in large.name
    out = tmp_path / "report.html"
    write_html(a, out, snippets_dir=snippets)
    page = parse(out.read_text(encoding="utf-8"))
    links = {attrs["download"]: attrs["href"] for t, attrs in page.tags if t == "a" and "download" in attrs}
    assert links[small.name].startswith("data:application/vnd.tcpdump.pcap;base64,")
    assert base64.b64decode(links[small.name].split(",", 1)[1]) == small.read_bytes()
    assert links[large.name] == f"report-snippets/{large.name}"
    assert re.search(r"pcap at two vantage points</strong>.*2 pcap snippets", out.read_text(), re.S)


def test_rst_record_facts_shown_escaped() -> None:
    a = sample_analysis(hostile=True)
    a.resets[0].seen_at[1].context = {
        "sni": HOSTILE_IMG,
        "race": {"weaver": True, "gap_us": 12},
        "n": list(range(3)),
    }
    text = render_html(a)
    assert "<summary>RST record at client</summary>" in text
    page = parse(text)
    visible = "".join(page.text)
    assert "race.weaver" in visible and HOSTILE_IMG in visible and "[0, 1, 2]" in visible
    assert not [t for t, _ in page.tags if t == "img"]


def test_log_source_without_timed_lines_gets_no_lane() -> None:
    a = sample_analysis()
    a.log_sources.append({"kind": "host", "path": "snapshots/fw", "host": "fw", "lines": 2, "unparsed": 0})
    a.context_logs.append(LogLine("host", "snapshots/fw/nstat-after.txt", 1, None, "TcpOutRsts +3", "fw"))
    text = render_html(a)
    page = parse(text)
    labels = [attrs for t, attrs in page.tags if t == "text" and "lane-label" in (attrs.get("class") or "")]
    assert len(labels) == 5 + 5  # five vantages, five timed log sources
    assert "2 log sources have no timed line to draw" in text


def test_log_sources_nested_values_readable() -> None:
    a = sample_analysis()
    a.log_sources.append(
        {"kind": "host", "path": "snapshots/fw", "host": "fw", "lines": 2, "unparsed": 0,
         "summary": {"sysctl": {"net.ipv4.tcp_abort_on_overflow": "1"}, "rejects": 0}}
    )  # fmt: skip
    text = render_html(a)
    assert "sysctl.net.ipv4.tcp_abort_on_overflow=1" in text and "rejects=0" not in text
    assert "summary." not in text
    assert "{&#39;" not in text


def test_no_python_none_or_repr_leaks_into_text() -> None:
    page = parse(render_html(sample_analysis()))  # R5 has no sender host, captures have no error, ...
    visible = " ".join(page.text)
    assert not re.search(r"\bNone\b", visible)
    assert "{'" not in visible and "[]" not in visible


def test_same_analysis_same_bytes(tmp_path: Path) -> None:
    """No clock, random nonce or dict-order dependence: re-rendering an unchanged analysis changes nothing."""
    write_html(sample_analysis(hostile=True), tmp_path / "1.html")
    write_html(sample_analysis(hostile=True), tmp_path / "2.html")
    assert (tmp_path / "1.html").read_bytes() == (tmp_path / "2.html").read_bytes()
