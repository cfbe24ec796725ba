"""The archive index page: one self-contained HTML file over the batch database.

Inline CSS and SVG only, no script, no network fetch (a strict Content-Security-Policy says so to the
browser too); every value from captures and logs is hostile text, escaped by jinja2 autoescape.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import jinja2

from resetlens.batch.db import BatchDB

# Bars in the resets-over-time chart.
TIME_BINS = 48
# Rows in each top-N table.
TOP_N = 10
# Content-Security-Policy of the page: nothing but its own inline style, data: images, links.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp|safe }}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>resetlens archive: {{ totals.bundles }} bundles, {{ totals.resets }} resets</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#1d232b}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;margin:1.4em 0 .4em;border-bottom:1px solid #dde}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{background:#f4f6fa;border-radius:6px;padding:.6em 1em}
.card b{display:block;font-size:1.5em}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:1.2em}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.25em .5em;border-bottom:1px solid #eef}
th{background:#f4f6fa}td.t{white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#14733a;font-weight:600}.failed{color:#b3261e;font-weight:600}.err{color:#b3261e;font-size:.9em;word-break:break-word}
svg text{font:11px system-ui,sans-serif;fill:#444}code{font-size:.92em}td code{word-break:break-all}.muted{color:#667}
</style></head><body>
<h1>resetlens archive</h1>
<p class="muted">Generated {{ generated }} from <code>{{ db_path }}</code>.</p>
<div class="cards">
<div class="card"><b>{{ totals.bundles }}</b>bundles</div>
<div class="card"><b class="ok">{{ totals.ok }}</b>analysed</div>
<div class="card"><b class="failed">{{ totals.failed }}</b>failed</div>
<div class="card"><b>{{ totals.resets }}</b>resets</div>
<div class="card"><b>{{ totals.connections }}</b>connections</div>
</div>

<h2>Resets over time</h2>
{% if timeline.bars %}
<svg role="img" aria-label="resets over time" viewBox="0 0 {{ timeline.width }} {{ timeline.height + 30 }}" width="100%">
{% for b in timeline.bars %}<rect x="{{ b.x }}" y="{{ b.y }}" width="{{ b.w }}" height="{{ b.h }}" fill="#3b6fd8"><title>{{ b.label }}: {{ b.count }}</title></rect>
{% endfor %}<line x1="0" y1="{{ timeline.height }}" x2="{{ timeline.width }}" y2="{{ timeline.height }}" stroke="#889"/>
<text x="0" y="{{ timeline.height + 16 }}">{{ timeline.start }}</text>
<text x="{{ timeline.width }}" y="{{ timeline.height + 16 }}" text-anchor="end">{{ timeline.end }}</text>
<text x="{{ timeline.width / 2 }}" y="{{ timeline.height + 16 }}" text-anchor="middle">max {{ timeline.peak }} per {{ timeline.bin }}</text>
</svg>
{% else %}<p class="muted">No resets with a time.</p>{% endif %}

<div class="grid">
{% for chart in bar_charts %}
<section><h2>{{ chart.title }}</h2>
{% if chart.rows %}
<svg role="img" aria-label="{{ chart.title }}" viewBox="0 0 360 {{ chart.rows|length * 22 }}" width="100%">
{% for r in chart.rows %}<text x="0" y="{{ loop.index0 * 22 + 15 }}">{{ r.label|truncate(28, true, '…') }}</text>
<rect x="170" y="{{ loop.index0 * 22 + 4 }}" width="{{ r.w }}" height="15" fill="{{ chart.color }}"><title>{{ r.label }}: {{ r.count }}</title></rect>
<text x="{{ 174 + r.w }}" y="{{ loop.index0 * 22 + 15 }}">{{ r.count }}</text>
{% endfor %}</svg>
{% else %}<p class="muted">none</p>{% endif %}
</section>
{% endfor %}
</div>

<div class="grid">
<section><h2>Top sender hosts</h2>
<table><tr><th>host</th><th>role</th><th class="n">resets</th><th class="n">bundles</th></tr>
{% for r in top_hosts %}<tr><td><code>{{ r.host }}</code></td><td>{{ r.role }}</td><td class="n">{{ r.count }}</td><td class="n">{{ r.bundles }}</td></tr>
{% else %}<tr><td colspan="4" class="muted">none</td></tr>{% endfor %}</table></section>
<section><h2>Top 4-tuples</h2>
<table><tr><th>src</th><th>dst</th><th class="n">resets</th></tr>
{% for r in top_tuples %}<tr><td><code>{{ r.src }}:{{ r.sport }}</code></td><td><code>{{ r.dst }}:{{ r.dport }}</code></td><td class="n">{{ r.count }}</td></tr>
{% else %}<tr><td colspan="3" class="muted">none</td></tr>{% endfor %}</table></section>
</div>

<h2>Bundles</h2>
<table><tr><th>bundle</th><th>status</th><th class="n">resets</th><th class="n">captures</th><th>first packet</th><th>analysed</th><th>report</th></tr>
{% for b in bundles %}<tr>
<td><code>{{ b.bundle }}</code>{% if b.bundle == "." %} <span class="muted">(archive root)</span>{% endif %}{% if b.title and b.title != b.bundle %}<br><span class="muted">{{ b.title }}</span>{% endif %}</td>
<td class="{{ b.status }}">{{ b.status }}{% if b.error %}<div class="err">{{ b.error }}</div>{% endif %}</td>
<td class="n">{{ b.resets if b.resets is not none else '' }}</td><td class="n">{{ b.captures if b.captures is not none else '' }}</td>
<td class="t">{{ b.first }}</td><td class="t">{{ b.analyzed }}</td>
<td>{% if b.html_link %}<a href="{{ b.html_link }}">HTML</a> {% endif %}{% if b.json_link %}<a href="{{ b.json_link }}">JSON</a>{% endif %}</td>
</tr>{% endfor %}</table>
</body></html>
"""


def write_index(db: BatchDB, target: Path, out: Path) -> Path:
    """Render the index from the database into `target` (temp file + rename); links relative to `out`."""
    html = render_index(db, out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, target)
    return target


def render_index(db: BatchDB, out: Path) -> str:
    with db.connection() as con:
        bundles = _dicts(con.execute("SELECT * FROM bundles ORDER BY bundle"))
        # resets over time, binned in the database (an archive may hold millions of resets)
        lo, hi, n_times = con.execute(
            "SELECT min(ts), max(ts), count(ts) FROM resets WHERE ts IS NOT NULL AND isfinite(ts)"
        ).fetchone()
        bins: dict[int, int] = {}
        if n_times:
            step = max(hi - lo, 1.0) / TIME_BINS
            bins = dict(
                con.execute(
                    f"SELECT least(CAST(floor((ts - ?) / ?) AS BIGINT), {TIME_BINS - 1}) AS b, count(*) "
                    "FROM resets WHERE ts IS NOT NULL AND isfinite(ts) GROUP BY b",
                    [lo, step],
                ).fetchall()
            )
        total_resets = con.execute("SELECT count(*) FROM resets").fetchone()[0]
        by = {
            col: con.execute(
                f"SELECT coalesce({col}, 'unknown') AS k, count(*) AS n FROM resets GROUP BY k ORDER BY n DESC, k LIMIT {TOP_N}"
            ).fetchall()
            for col in ("cause", "sender_role", "sender_kind")
        }
        top_hosts = _dicts(
            con.execute(
                "SELECT sender_host AS host, mode(sender_role) AS role, count(*) AS count, count(DISTINCT bundle) AS bundles "
                f"FROM resets WHERE sender_host IS NOT NULL GROUP BY sender_host ORDER BY count DESC, host LIMIT {TOP_N}"
            )
        )
        top_tuples = _dicts(
            con.execute(
                "SELECT src, sport, dst, dport, count(*) AS count FROM resets "
                f"GROUP BY src, sport, dst, dport ORDER BY count DESC, src, sport, dst, dport LIMIT {TOP_N}"
            )
        )
        connections = con.execute("SELECT count(*) FROM connections").fetchone()[0]
    for b in bundles:
        b["html_link"] = _link(b.get("html_report"), out)
        b["json_link"] = _link(b.get("json_report"), out)
        b["first"] = _when(b.get("first_ts"))
        at = b.get("analyzed_at")
        b["analyzed"] = at.strftime("%Y-%m-%d %H:%M:%SZ") if at else ""
    totals = {
        "bundles": len(bundles),
        "ok": sum(b["status"] == "ok" for b in bundles),
        "failed": sum(b["status"] != "ok" for b in bundles),
        "resets": total_resets,
        "connections": connections,
    }
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_TEMPLATE).render(
        csp=CSP,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        db_path=str(db.path),
        totals=totals,
        timeline=_timeline(bins, lo, hi),
        bar_charts=[
            _bars("Resets by cause", by["cause"], "#d8663b"),
            _bars("Resets by sender role", by["sender_role"], "#3b8fd8"),
            _bars("Resets by sender kind", by["sender_kind"], "#7a5bd0"),
        ],
        top_hosts=top_hosts,
        top_tuples=top_tuples,
        bundles=bundles,
    )


def _timeline(
    bins: dict[int, int], lo: float | None, hi: float | None, width: int = 960, height: int = 120
) -> dict[str, Any]:
    """SVG bar geometry from {bin index: count} over [lo, hi] in TIME_BINS bins."""
    if not bins or lo is None or hi is None:
        return {"bars": []}
    step = max(hi - lo, 1.0) / TIME_BINS
    counts = [bins.get(i, 0) for i in range(TIME_BINS)]
    peak = max(counts)
    w = width / TIME_BINS
    bars = []
    for i, n in enumerate(counts):
        if n:
            h = max(1.0, height * n / peak)
            bars.append(
                {
                    "x": round(i * w, 1),
                    "y": round(height - h, 1),
                    "w": round(w * 0.9, 1),
                    "h": round(h, 1),
                    "count": n,
                    "label": _when(lo + i * step),
                }
            )
    return {
        "bars": bars,
        "width": width,
        "height": height,
        "start": _when(lo),
        "end": _when(hi),
        "peak": peak,
        "bin": _duration(step),
    }


def _bars(title: str, rows: list[tuple[str, int]], color: str) -> dict[str, Any]:
    peak = max((n for _, n in rows), default=1)
    return {
        "title": title,
        "color": color,
        "rows": [{"label": str(k), "count": n, "w": round(150 * n / peak, 1)} for k, n in rows],
    }


def _dicts(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _link(path: str | None, out: Path) -> str | None:
    """A report path as a relative link from the index (None when the file is gone)."""
    if not path or not Path(path).is_file():
        return None
    try:
        rel = os.path.relpath(path, out)
    except ValueError:
        return None
    return "/".join(_quote(part) for part in Path(rel).parts)


def _quote(part: str) -> str:
    from urllib.parse import quote

    return quote(part, safe="")


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    try:
        return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(ts)


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds * 1000:.3g} ms"
