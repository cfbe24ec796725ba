"""The self-contained HTML incident report: one file, inline CSS/JS/SVG, opens offline from a ticket.

Layout decisions live here (timeline and ladder geometry, caps); markup lives in templates/.
Everything from captures and logs is hostile: the Jinja environment autoescapes every value, no data
goes through `|safe`, and the data handed to JavaScript sits in a JSON block with `<` escaped.
The page fetches nothing: a strict Content-Security-Policy allows only the inline style and script
by their SHA-256 hashes and data: images.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from resetlens import __version__
from resetlens.blame import catalog
from resetlens.model import Analysis, Reset, Sighting
from resetlens.report import view
from resetlens.report.jsonreport import atomic_write
from resetlens.report.snippets import snippet_name

TEMPLATES = Path(__file__).parent / "templates"

# Row caps: the JSON has everything; the page stays a sensible size with 10 k resets.
RESET_ROWS_MAX = 500  # rows of the resets table
DETAIL_MAX = 60  # resets with a full section (ladders, evidence, logs)
DETAIL_PER_INCIDENT = 3  # resets of each incident guaranteed a full section
INCIDENT_ROWS_MAX = 100  # rows of the incidents table
TIMELINE_MARKS_MAX = 4000  # sightings drawn on the timeline (whole resets, in time order, until this many)
TIMELINE_LOGS_MAX = 1500  # log lines drawn on the timeline
LADDER_ROWS_MAX = 20  # packets of one ladder diagram (the last ones, up to the RST and just after)
EVIDENCE_MAX = 40  # evidence items per reset
LOGS_PER_RESET_MAX = 30  # correlated log lines per reset
CONTEXT_LOGS_MAX = 100  # rows of the other-log-lines table
WARNINGS_MAX = 20  # warnings listed per capture or log source
TEXT_MAX = 2000  # characters of one log line shown
ROWS_MAX = 200  # rows of the captures, hosts and log-sources tables
FACTS_MAX = 40  # key/value rows of one RST record
TITLE_MAX = 200  # characters of a tooltip
SNIPPET_EMBED_MAX = 64 * 1024  # a pcap snippet up to this size is embedded as a data: link
SNIPPET_EMBED_BUDGET = 1024 * 1024  # total bytes of embedded snippets per report
SNIPPET_EXTS = ("pcap", "pcapng")  # snippet file kinds, as snippets.write_snippets names them

# Evidence codes (blame.catalog) saying a capture that should hold the reset does not: drawn as gaps.
ABSENCE_CODES = ("absent_at_sender",)

# Timeline geometry (SVG user units).
TL_LABEL_W = 190  # lane label column
TL_PLOT_W = 880  # plot area
TL_LANE_H = 34
TL_AXIS_H = 26
TL_MARK_H = 11  # half height of an RST mark
TL_LOG_H = 6  # half height of a log mark
# Ladder geometry.
LD_LEFT, LD_RIGHT, LD_W = 200, 700, 790  # x of the two endpoints, total width
LD_TOP, LD_ROW = 44, 24
SEQ_SPACE = 1 << 32  # TCP sequence numbers wrap here


@dataclass
class Mark:
    x: float
    y: float
    reset: Reset
    sighting: Sighting
    title: str


@dataclass
class ResetMarks:
    """One reset on the timeline: a mark per sighting, the line joining them, and expected-but-absent gaps."""

    reset: Reset
    marks: list[Mark] = field(default_factory=list)
    absent: list[Mark] = field(default_factory=list)
    link: str = ""  # SVG polyline points, when seen at two or more vantages


@dataclass
class LogMark:
    x: float
    y: float
    title: str
    reset_id: str | None
    anchor: str | None


@dataclass
class Lane:
    label: str
    y: float
    kind: str  # "capture" | "log"
    title: str = ""


@dataclass
class Timeline:
    width: float
    height: float
    label_w: float  # lane label column; the plot starts here
    plot_w: float
    mark_h: float  # half height of an RST mark
    log_h: float  # half height of a log mark
    t0: float
    t1: float
    lanes: list[Lane]
    groups: list[ResetMarks]  # per drawn reset: its marks, gaps and link
    logs: list[LogMark]
    ticks: list[tuple[float, str]]  # (x, label)
    drawn: int  # resets drawn
    total: int
    laneless: int  # log sources with no timed line to draw


@dataclass
class LadderRow:
    y: float
    x1: float
    x2: float
    head: str  # arrowhead polygon points
    label: str
    when: str
    frame: str
    cls: str  # "rst", "fin", "syn", "data", "other"


@dataclass
class Ladder:
    vantage: str
    height: float
    left_x: float  # x of the RST receiver's line
    right_x: float  # x of the RST writer's line
    width: float
    left: str
    right: str
    rows: list[LadderRow] = field(default_factory=list)
    more: int = 0


@dataclass
class Snippet:
    href: str
    filename: str
    size: int
    embedded: bool


def _num(value: Any, default: float = 0.0) -> float:
    """A finite float from a value that should be a number (ladder dicts are loosely typed)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if math.isfinite(out) else default


def _clip(text: Any, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def anchor(reset_id: str) -> str:
    """An HTML id for a reset: its id when tame, else a hashed one (ids are data too)."""
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "_" for ch in reset_id)
    if safe != reset_id or not safe:
        safe += "-" + hashlib.sha1(reset_id.encode("utf-8", "replace")).hexdigest()[:8]
    return "reset-" + safe


# ---------------------------------------------------------------------------------------------
# Blame timeline
# ---------------------------------------------------------------------------------------------


def _nice_step(span: float, target: int = 8) -> float:
    raw = max(span / target, 1e-6)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _tick_label(ts: float, step: float) -> str:
    text = view.fmt_ts(ts, date=False)  # HH:MM:SS.mmm
    return text if step < 1 else text[:8]


def timeline(analysis: Analysis, detailed: set[str]) -> Timeline | None:
    resets = []
    budget = TIMELINE_MARKS_MAX
    for r in sorted(analysis.resets, key=lambda r: r.ts):
        budget -= max(1, len(r.seen_at))
        if budget < 0:
            break
        resets.append(r)
    lanes_by_key: dict[tuple[str, str], Lane] = {}

    def lane(kind: str, key: str, label: str, title: str = "") -> Lane:
        if (kind, key) not in lanes_by_key:
            lanes_by_key[(kind, key)] = Lane(label, 0.0, kind, title)
        return lanes_by_key[(kind, key)]

    for c in analysis.captures:
        lane("capture", c.vantage, c.vantage, f"{c.vantage}: {c.path}")
    for r in resets:
        for s in r.seen_at:
            lane("capture", s.vantage, s.vantage)
    logs = [(x, rid) for x, rid in view.all_logs(analysis) if x.ts is not None and math.isfinite(x.ts)]
    logs = sorted(logs, key=lambda p: p[0].ts or 0.0)[:TIMELINE_LOGS_MAX]
    timed_paths = {x.path for x, _ in logs}
    all_sources = view.log_lanes(analysis)
    for path, label in all_sources:
        if path in timed_paths:  # a source with no timed line near the resets would be an empty lane
            lane("log", path, label, path)
    times = [s.ts for r in resets for s in r.seen_at] + [x.ts for x, _ in logs if x.ts is not None]
    times = [t for t in times if math.isfinite(t)]
    if not times:
        return None
    t0, t1 = min(times), max(times)
    span = t1 - t0
    pad = span * 0.03 if span > 0 else 0.5
    t0, t1 = t0 - pad, t1 + pad
    scale = TL_PLOT_W / (t1 - t0)
    ordered = list(lanes_by_key.values())
    for i, ln in enumerate(ordered):
        ln.y = TL_AXIS_H + TL_LANE_H * i + TL_LANE_H / 2
    height = TL_AXIS_H + TL_LANE_H * len(ordered) + 8

    def x_of(ts: float) -> float:
        return round((ts - t0) * scale, 2)

    groups: list[ResetMarks] = []
    for r in resets:
        group = ResetMarks(r)
        points = []
        for s in sorted(r.seen_at, key=lambda s: lanes_by_key[("capture", s.vantage)].y):
            if not math.isfinite(s.ts):
                continue
            y = lanes_by_key[("capture", s.vantage)].y
            title = _clip(
                f"{r.id} at {s.vantage} {view.fmt_ts(s.ts, date=False)} #{s.frame} [{s.flags or 'R'}] ttl {s.ttl}: "
                f"{r.sender.role} ({r.sender.kind}), {r.cause}",
                TITLE_MAX,
            )
            group.marks.append(Mark(x_of(s.ts), y, r, s, title))
            points.append(f"{x_of(s.ts)},{y}")
        if len(points) > 1:
            group.link = " ".join(points)
        seen = {s.vantage for s in r.seen_at}
        for e in r.evidence:
            lane_key = ("capture", e.vantage or "")
            if (
                e.code in ABSENCE_CODES
                and e.vantage not in seen
                and lane_key in lanes_by_key
                and math.isfinite(r.ts)
            ):
                gap = Sighting(e.vantage or "", r.ts, 0, 0, None)
                title = _clip(f"{r.id} NOT captured at {e.vantage}: {e.text}", TITLE_MAX)
                group.absent.append(Mark(x_of(r.ts), lanes_by_key[lane_key].y, r, gap, title))
        groups.append(group)
    log_marks = []
    for x, rid in logs:
        ln = lanes_by_key[("log", x.path)]
        tied = f" (tied to {rid})" if rid else ""
        title = _clip(f"{x.kind} {x.path}:{x.line} {view.fmt_ts(x.ts)}{tied}: {x.text}", TITLE_MAX)
        log_marks.append(
            LogMark(
                x_of(x.ts if x.ts is not None else t0),
                ln.y,
                title,
                rid,
                anchor(rid) if rid in detailed else None,
            )
        )
    step = _nice_step(t1 - t0)
    first = math.ceil(t0 / step) * step
    ticks = []
    n = 0
    while first + n * step <= t1 and n < 40:
        ts = first + n * step
        ticks.append((x_of(ts), _tick_label(ts, step)))
        n += 1
    return Timeline(
        width=TL_LABEL_W + TL_PLOT_W + 10,
        height=height,
        label_w=TL_LABEL_W,
        plot_w=TL_PLOT_W,
        mark_h=TL_MARK_H,
        log_h=TL_LOG_H,
        t0=t0,
        t1=t1,
        lanes=ordered,
        groups=groups,
        logs=log_marks,
        ticks=ticks,
        drawn=len(resets),
        total=len(analysis.resets),
        laneless=sum(1 for path, _ in all_sources if path not in timed_paths),
    )


# ---------------------------------------------------------------------------------------------
# Ladder (sequence) diagrams
# ---------------------------------------------------------------------------------------------


def _packet_class(flags: str) -> str:
    if "R" in flags:
        return "rst"
    if "F" in flags:
        return "fin"
    if "S" in flags:
        return "syn"
    return "data"


def _when(dt: float) -> str:
    return f"{dt * 1000:+.3f} ms" if abs(dt) < 1 else f"{dt:+.3f} s"


def ladder(reset: Reset, s: Sighting) -> Ladder | None:
    """The flow's last packets at one vantage: left = the RST's receiver, right = its writer."""
    if not s.ladder:
        return None
    right = (s.src or reset.src, s.sport or reset.sport)
    left = (s.dst or reset.dst, s.dport or reset.dport)
    packets = [p for p in s.ladder if isinstance(p, dict)][-LADDER_ROWS_MAX:]
    out = Ladder(
        vantage=s.vantage,
        height=LD_TOP + LD_ROW * len(packets) + 12,
        left_x=LD_LEFT,
        right_x=LD_RIGHT,
        width=LD_W,
        left=view.endpoint(*left),
        right=view.endpoint(*right),
        more=len(s.ladder) - len(packets),
    )
    # seq/ack relative to the first sequence number each side shows (its ISN when the SYN is in view)
    base: dict[tuple[str, int], int] = {}
    for p in packets:
        base.setdefault((str(p.get("src", "")), int(_num(p.get("sport")))), int(_num(p.get("seq"))))
    for i, p in enumerate(packets):
        y = LD_TOP + LD_ROW * i + 14
        src = (str(p.get("src", "")), int(_num(p.get("sport"))))
        dst = (str(p.get("dst", "")), int(_num(p.get("dport"))))
        flags = str(p.get("flags", ""))
        if src == right or (src[0] == right[0] and src[0] != left[0]):
            x1, x2 = LD_RIGHT, LD_LEFT
        else:
            x1, x2 = LD_LEFT, LD_RIGHT
        d = 1 if x2 > x1 else -1
        head = f"{x2},{y} {x2 - 9 * d},{y - 4} {x2 - 9 * d},{y + 4}"
        seq = (int(_num(p.get("seq"))) - base[src]) % SEQ_SPACE
        ack = int(_num(p.get("ack")))
        ack_text = f" ack={(ack - base[dst]) % SEQ_SPACE if dst in base else ack}" if "A" in flags else ""
        ip_id = p.get("ip_id")
        label = (
            f"[{flags}] seq={seq}{ack_text} len={int(_num(p.get('len')))} ttl={int(_num(p.get('ttl')))}"
            + (f" id={ip_id}" if ip_id is not None else "") + f" win={int(_num(p.get('window')))}"
        )  # fmt: skip
        frame = int(_num(p.get("frame")))
        cls = _packet_class(flags) + (" this" if frame == s.frame else "")
        out.rows.append(
            LadderRow(
                y, x1, x2, head, _clip(label, 90), _when(_num(p.get("ts"), s.ts) - s.ts), f"#{frame}", cls
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# Page
# ---------------------------------------------------------------------------------------------


def find_snippets(
    resets: list[Reset], snippets_dir: Path | None, html_dir: Path
) -> dict[tuple[str, str], Snippet]:
    """Links to the pcap snippets written beside the report: small ones embedded as data: URLs."""
    if snippets_dir is None:
        return {}
    out: dict[tuple[str, str], Snippet] = {}
    budget = SNIPPET_EMBED_BUDGET
    for r in resets:
        for s in r.seen_at:
            names = [snippet_name(r.id, s.vantage, ext) for ext in SNIPPET_EXTS]
            path = next((snippets_dir / n for n in names if (snippets_dir / n).is_file()), None)
            if path is None:
                continue
            name = path.name
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size <= SNIPPET_EMBED_MAX and size <= budget:
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                budget -= size
                href = "data:application/vnd.tcpdump.pcap;base64," + base64.b64encode(data).decode("ascii")
                out[(r.id, s.vantage)] = Snippet(href, name, size, True)
            else:
                rel = os.path.relpath(path, html_dir)
                out[(r.id, s.vantage)] = Snippet(Path(rel).as_posix(), name, size, False)
    return out


def facts(record: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """A nested record flattened to (dotted key, short text) rows, capped (hostile text: escaped later)."""
    out: list[tuple[str, str]] = []
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += facts(value, name + ".")
        else:
            out.append(
                (
                    _clip(name, 80),
                    _clip(
                        json.dumps(value, default=str, ensure_ascii=False)
                        if not isinstance(value, str)
                        else value,
                        300,
                    ),
                )
            )
        if len(out) >= FACTS_MAX:
            return out[:FACTS_MAX]
    return out


def brief(value: Any, limit: int = 300) -> str:
    """A table cell for any JSON value: nested dicts as 'key=value; ...', lists comma-joined."""
    if isinstance(value, dict):
        return _clip("; ".join(f"{k}={v}" for k, v in facts(value)), limit)
    if isinstance(value, list):
        return _clip(", ".join(brief(v, limit) for v in value[:20]), limit)
    return _clip("" if value is None else value, limit)


def _json_block(value: Any) -> Markup:
    """JSON for a <script type="application/json"> block: nothing in it can close the element."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # our own escaping above: no raw '<' can reach the HTML parser


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every {{ }} is HTML-escaped, in HTML and inline SVG alike
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ts"] = view.fmt_ts
    env.filters["hms"] = lambda ts: view.fmt_ts(ts, date=False)
    env.filters["pct"] = lambda x: f"{_num(x):.0%}"
    env.filters["clip"] = _clip
    env.filters["brief"] = brief
    env.filters["anchor"] = anchor
    env.filters["cause_title"] = view.cause_title
    env.filters["endpoint"] = lambda pair: view.endpoint(*pair)
    env.filters["sender"] = view.sender_text
    env.filters["offset"] = lambda c: view.fmt_offset(c.clock_offset, c.clock_offset_error)
    return env


def _asset(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def render_html(analysis: Analysis, *, snippets_dir: Path | None = None, html_dir: Path = Path(".")) -> str:
    """The whole report page as text; pcap snippets are looked up in snippets_dir, linked from html_dir."""
    groups = view.incidents(analysis)
    detailed = sorted(view.pick_resets(analysis, groups, DETAIL_PER_INCIDENT, DETAIL_MAX), key=lambda r: r.ts)
    snippets = find_snippets(detailed, snippets_dir, html_dir)
    detailed_ids = {r.id for r in detailed}
    tl = timeline(analysis, detailed_ids)
    counts = view.counts(analysis)
    reset_rows = sorted(analysis.resets, key=lambda r: r.ts)
    incident_of = {rid: inc.id for inc in groups for rid in inc.resets}
    css, js = _asset("report.css"), _asset("report.js")
    csp = (
        f"default-src 'none'; style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )
    resets_by_id = {r.id: r for r in analysis.resets}
    combos = Counter((r.cause, r.sender.role, r.sender.kind) for r in analysis.resets)
    page_data = {
        # resets per (cause, role, kind): the filter status counts all resets, drawn or not
        "combos": [[c, r, k, n] for (c, r, k), n in sorted(combos.items())],
        "total": len(analysis.resets),
        "t0": tl.t0 if tl else None,
        "t1": tl.t1 if tl else None,
    }
    template = _env().get_template("report.html.j2")
    return template.render(
        a=analysis,
        title=analysis.title or (analysis.bundle or "TCP reset analysis"),
        version=analysis.resetlens_version or __version__,
        verdict=view.verdict(analysis, groups),
        incidents=groups[:INCIDENT_ROWS_MAX],
        incidents_more=max(0, len(groups) - INCIDENT_ROWS_MAX),
        resets_by_id=resets_by_id,
        counts=counts,
        roles=view.ordered_roles(set(counts["role"])),
        causes=sorted(counts["cause"]),
        kinds=sorted(counts["kind"]),
        role_colours=view.ROLE_COLOURS,
        tl=tl,
        reset_rows=reset_rows[:RESET_ROWS_MAX],
        reset_rows_more=max(0, len(reset_rows) - RESET_ROWS_MAX),
        incident_of=incident_of,
        detailed=detailed,
        detailed_ids=detailed_ids,
        detailed_more=len(analysis.resets) - len(detailed),
        ladder=ladder,
        explanation=view.explanation,
        display_filter=view.display_filter,
        snippets=snippets,
        checklist=view.checklist(analysis, {k: v.href for k, v in snippets.items()}),
        missing=view.missing(analysis),
        context_logs=analysis.context_logs[:CONTEXT_LOGS_MAX],
        context_logs_more=max(0, len(analysis.context_logs) - CONTEXT_LOGS_MAX),
        log_sources=analysis.log_sources,
        source_rows=source_rows(analysis.log_sources),
        catalog=catalog,
        limits={
            "evidence": EVIDENCE_MAX,
            "logs": LOGS_PER_RESET_MAX,
            "warnings": WARNINGS_MAX,
            "text": TEXT_MAX,
            "rows": ROWS_MAX,
        },
        facts=facts,
        css=Markup(css),  # our own stylesheet, hashed into the CSP: not data
        js=Markup(js),  # our own script, hashed into the CSP: not data
        csp=csp,
        page_data=_json_block(page_data),
    )


@dataclass
class SourceRow:
    """One log source as a table row: the usual facts in columns, anything else in 'details'."""

    kind: str
    path: str
    host: str
    lines: str
    unparsed: str
    matched: str
    clock: str
    details: str
    warnings: list[str]


# Flattened values that say nothing (zero counters, empty lists), left out of a source's details.
QUIET_VALUES = frozenset({"0", "false", "null", "[]", "{}", '""', "0.0"})
# Log-source keys shown in their own column (the rest go to "details" when they say something).
SOURCE_COLUMNS = ("kind", "path", "host", "lines", "unparsed", "matched", "clock_offset", "warnings")


def _details(other: dict[str, Any]) -> str:
    """A source's other facts as 'key=value; ...', without empty values or what the columns already show."""
    parts = []
    for key, value in facts(other):
        key = key.removeprefix("summary.")
        if value not in QUIET_VALUES and key.rsplit(".", 1)[-1] not in SOURCE_COLUMNS:
            parts.append(f"{key}={value}")
    return _clip("; ".join(parts), 600)


def source_rows(sources: list[dict[str, Any]]) -> list[SourceRow]:
    rows = []
    for src in sources[:ROWS_MAX]:
        offset = src.get("clock_offset")
        other = {
            k: v
            for k, v in src.items()
            if k not in SOURCE_COLUMNS
            and v not in (None, False, 0, "", [], {})
            and not k.startswith("clock_offset_")
        }
        warnings = src.get("warnings")
        rows.append(
            SourceRow(
                kind=brief(src.get("kind"), 40),
                path=brief(src.get("path"), 200),
                host=brief(src.get("host"), 80),
                lines=brief(src.get("lines"), 20),
                unparsed=brief(src.get("unparsed"), 20),
                matched=brief(src.get("matched"), 20),
                clock=view.fmt_offset(_num(offset), None) if isinstance(offset, (int, float)) else "",
                details=_details(other),
                warnings=[brief(w, 300) for w in warnings] if isinstance(warnings, list) else [],
            )
        )
    return rows


def write_html(
    analysis: Analysis, path: str | os.PathLike[str], *, snippets_dir: str | os.PathLike[str] | None = None
) -> None:
    """Write the self-contained HTML report (atomically); link or embed pcap snippets from snippets_dir."""
    target = Path(path)
    html_dir = target.parent if str(target.parent) else Path(".")
    page = render_html(analysis, snippets_dir=Path(snippets_dir) if snippets_dir else None, html_dir=html_dir)
    atomic_write(target, page.encode("utf-8", "backslashreplace"))
