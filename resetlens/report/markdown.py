"""The Markdown summary to paste into a ticket: verdict, incidents, top resets, checklist, what is missing.

Hostile strings are made inert for CommonMark/GFM renderers: `text()` backslash-escapes every ASCII
punctuation that Markdown gives meaning to and turns `<` `>` `&` into entities (no raw HTML, no
autolinks, no emphasis, no table breaks); `code()` writes a code span whose fence is longer than any
backtick run inside it (code spans show their content literally).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from resetlens.model import Analysis, Reset
from resetlens.report import view
from resetlens.report.jsonreport import atomic_write

# Resets given a section of their own (the rest are in the JSON and HTML).
TOP_RESETS = 10
# Rows of the incidents table.
INCIDENT_ROWS = 20
# Evidence bullets and log lines per reset.
BULLETS_MAX = 8
# Characters of one hostile string shown.
TEXT_MAX = 400

# Markdown punctuation that can start emphasis, code, links or images (`[`), a table cell or
# strikethrough; `<`, `>` and `&` become entities instead.  `(`, `!`, `#`, `+`, `-` only act next to
# an escaped `[` or at a line start, and text never starts a line: newlines are folded first.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
# GFM extended autolinks ("http://...", "www...") are broken by escaping one character.
_AUTOLINK = re.compile(r"(?i)(?<=[a-z])(:)(?=//)|(?<=www)(\.)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def text(value: object, limit: int = TEXT_MAX) -> str:
    """Hostile text as inert Markdown inline text (one line, escaped, clipped)."""
    s = "" if value is None else str(value)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    s = _CONTROL.sub("\N{REPLACEMENT CHARACTER}", " ".join(s.split()))
    s = _MD_SPECIAL.sub(r"\\\1", s)
    s = _AUTOLINK.sub(lambda m: "\\" + m.group(0), s)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(value: object, limit: int = TEXT_MAX, *, in_table: bool = False) -> str:
    """Hostile text as a code span: shown literally, backtick fence longer than any run inside.

    In a GFM table cell a pipe must be escaped even inside code (the table splits cells first)."""
    s = "" if value is None else str(value)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    s = _CONTROL.sub("\N{REPLACEMENT CHARACTER}", " ".join(s.split()))
    if in_table:
        s = s.replace("|", "\\|")
    if not s:
        return ""
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def _reset_heading(r: Reset) -> str:
    return (
        f"### {text(r.id)}: {code(view.endpoint(r.src, r.sport) + ' -> ' + view.endpoint(r.dst, r.dport))}"
        f" at {view.fmt_ts(r.ts)} UTC"
    )


def render_markdown(analysis: Analysis) -> str:
    groups = view.incidents(analysis)
    title = analysis.title or analysis.bundle or "TCP reset analysis"
    out: list[str] = [f"## resetlens: {text(title, 200)}", ""]
    meta = (
        f"{view.plural(len(analysis.captures), 'capture')}, {view.plural(len(analysis.resets), 'reset')}; "
        "times are UTC on the reference clock"
    )
    if analysis.reference_vantage:
        meta += f" ({code(analysis.reference_vantage, 80)})"
    out += [f"_{meta}._", "", "**Verdict.** " + text(view.verdict(analysis, groups), 4000), ""]

    if groups:
        out += [
            "### Incidents",
            "",
            "| incident | resets | when (UTC) | sent by | cause | confidence | what to fix |",
        ]
        out += ["|---|---:|---|---|---|---:|---|"]
        for inc in groups[:INCIDENT_ROWS]:
            who = text(view.sender_text(inc.sender))
            when = f"{view.fmt_ts(inc.first_ts)} to {view.fmt_ts(inc.last_ts, date=False)}"
            out.append(
                f"| {text(inc.id)} | {len(inc.resets)} | {when} | {who} | {text(view.cause_title(inc.cause))} "
                f"| {inc.confidence:.0%} | {text(inc.decision, 300)} |"
            )
        if len(groups) > INCIDENT_ROWS:
            out.append(f"\n_{len(groups) - INCIDENT_ROWS} more incidents in the JSON report._")
        out.append("")

    top = view.pick_resets(analysis, groups, 1, TOP_RESETS)
    if top:
        out += ["### Resets", ""]
    for r in top:
        out += [_reset_heading(r), ""]
        out.append(
            f"- **Sent by** {text(view.sender_text(r.sender))}; **cause** {text(view.cause_title(r.cause))} "
            f"({code(r.cause)}); **confidence** {r.confidence:.0%}"
        )
        out.append("- **Seen at** " + ", ".join(f"{code(s.vantage, 80)} frame {s.frame}" for s in r.seen_at))
        why = view.explanation(r)
        if why:
            out.append(f"- **Why**: {text(why, 1000)}")
        if r.decision:
            out.append(f"- **What to fix**: {text(r.decision, 1000)}")
        out.append(f"- **Wireshark display filter**: {code(view.display_filter(r), 600)}")
        evidence = [e for e in r.evidence if not e.missing][:BULLETS_MAX]
        if evidence:
            out.append("- **Evidence**:")
            for e in evidence:
                where = (
                    f" ({code(e.vantage, 80)}" + (f" frame {e.frame}" if e.frame else "") + ")"
                    if e.vantage
                    else ""
                )
                out.append(f"  - {text(e.text)}{where}")
        gaps = [e for e in r.evidence if e.missing][:BULLETS_MAX]
        if gaps:
            out.append("- **Missing**: " + "; ".join(text(e.text) for e in gaps))
        if r.logs:
            out.append("- **Log lines**:")
            for x in r.logs[:BULLETS_MAX]:
                out.append(f"  - {text(x.kind)} {code(f'{x.path}:{x.line}', 200)}: {code(x.text)}")
        out.append("")
    if len(analysis.resets) > len(top):
        out += [f"_{len(analysis.resets) - len(top)} more resets in the JSON and HTML reports._", ""]

    checks = view.checklist(analysis)
    out += ["### Checklist", ""]
    for item in checks:
        mark = {view.PRESENT: "[x]", view.NONE_FOUND: "[x]"}.get(item.status, "[ ]")
        out.append(f"- {mark} **{text(item.title)}** ({item.status}): {text(item.summary, 1000)}")
        for d in item.details[:5]:
            out.append(f"  - {text(d)}")
    out.append("")

    missing = [i for i in checks if i.status == view.MISSING]
    named = view.missing(analysis)
    if missing or named:
        out += ["### What is missing", ""]
        out += [f"- {text(i.title)}: {text(i.summary, 1000)}" for i in missing]
        out += [f"- {text(m)}" for m in named]
        out.append("")
    warnings = [f"{c.vantage}: {w}" for c in analysis.captures for w in c.warnings] + analysis.warnings
    if warnings:
        out += ["### Warnings", ""] + [f"- {text(w)}" for w in warnings[:20]] + [""]
    return "\n".join(out)


def write_markdown(analysis: Analysis, path: str | os.PathLike[str]) -> None:
    """Write the Markdown summary (atomically; '-' writes to stdout)."""
    body = render_markdown(analysis)
    if str(path) == "-":
        print(body)
        return
    atomic_write(Path(path), body.encode("utf-8", "backslashreplace"))
