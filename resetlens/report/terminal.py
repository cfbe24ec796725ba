"""The terminal summary (rich): verdict, captures, resets, counts, log sources.

Every string from captures and logs reaches rich as a `Text` (never parsed for markup or emoji
codes, the same effect as `rich.markup.escape`) with control characters shown as escapes, so a
vantage name or log line such as "[bold red]" or "\\x1b[2J" prints as written and never drives
the terminal.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

from resetlens.model import Analysis
from resetlens.report import view

# Rows of the resets table before "N more" (the JSON and HTML have them all).
RESET_ROWS_MAX = 40
# Warnings shown per capture.
WARNINGS_MAX = 3
# Characters of one warning shown.
WARNING_CHARS = 120
# Columns of the summary when stdout is not a terminal and COLUMNS is not set.
PIPED_WIDTH = 120


# C0 controls, DEL and C1 controls: terminal escape sequences in hostile text are shown, not obeyed.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_CONTROLS[ord("\t")] = " "


def _e(value: object) -> Text:
    """Hostile text made inert for rich: a plain Text (no markup, no emoji codes), controls escaped."""
    return Text(("" if value is None else str(value)).translate(_CONTROLS))


def _role(role: str) -> Text:
    return Text(role.translate(_CONTROLS), style=view.ROLE_COLOURS.get(role, ""))


def summary_console() -> Console:
    """A console for the summary on stdout. Piped into a file or a CI log (no terminal, no COLUMNS), rich
    would lay it out for 80 columns and squeeze the resets table; such text is read in wide viewers."""
    piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    return Console(highlight=False, width=PIPED_WIDTH if piped else None)


def print_summary(analysis: Analysis, console: Console | None = None) -> None:
    """Print the human summary of an analysis."""
    console = console or summary_console()
    groups = view.incidents(analysis)
    title = analysis.title or analysis.bundle or "TCP reset analysis"
    console.rule(Text.assemble(("resetlens", "bold"), ": ", _e(title)))
    console.print(_e(view.verdict(analysis, groups)))
    console.print()

    captures = Table(title="Captures", title_justify="left", expand=False)
    for col, just in (
        ("vantage", "left"),
        ("packets", "right"),
        ("resets", "right"),
        ("clock offset", "right"),
    ):
        captures.add_column(col, justify=just)  # type: ignore[arg-type]
    captures.add_column("warnings", overflow="fold")
    for c in analysis.captures:
        warnings = [w[:WARNING_CHARS] for w in c.warnings[:WARNINGS_MAX]]
        if len(c.warnings) > WARNINGS_MAX:
            warnings.append(f"{len(c.warnings) - WARNINGS_MAX} more")
        captures.add_row(
            _e(c.vantage),
            f"{c.packets:,}",
            f"{c.resets:,}",
            _e(view.fmt_offset(c.clock_offset, c.clock_offset_error)),
            _e("; ".join(warnings)),
        )
    console.print(captures)

    if analysis.resets:
        resets = Table(title="Resets", title_justify="left")
        resets.add_column("id", no_wrap=True)
        resets.add_column("time (UTC)", no_wrap=True)
        # Long IPv6 tuples fold; sender and cause keep a readable width on an 80-column terminal.
        resets.add_column("reset as written", overflow="fold")  # writer, then receiver
        several = len(analysis.captures) > 1  # with one capture, "seen at" would name it on every row
        if several:
            resets.add_column("seen at", overflow="fold")  # long vantage names fold rather than vanish
        resets.add_column("sender")
        resets.add_column("cause")
        resets.add_column("conf.", justify="right", no_wrap=True)
        rows = sorted(analysis.resets, key=lambda r: r.ts)
        vantages = {c.vantage for c in analysis.captures}
        for r in rows[:RESET_ROWS_MAX]:
            host = r.sender.host if r.sender.host and r.sender.host != r.sender.role else ""
            sender = Text.assemble(_role(r.sender.role), " ", _e(f"{host} ({r.sender.kind})".lstrip()))
            where = [s.vantage for s in r.seen_at]
            seen = f"all {len(where)}" if len(where) > 2 and set(where) == vantages else ", ".join(where)
            resets.add_row(
                _e(r.id),
                view.fmt_ts(r.ts, date=False),
                _e(view.endpoint(r.src, r.sport)) + Text("\n-> ") + _e(view.endpoint(r.dst, r.dport)),
                *([_e(seen)] if several else []),
                sender,
                _e(view.cause_title(r.cause)),
                f"{r.confidence:.0%}",
            )
        console.print(resets)
        if len(rows) > RESET_ROWS_MAX:
            console.print(
                f"[italic]{len(rows) - RESET_ROWS_MAX} more resets: see the JSON or HTML report.[/]"
            )

        counts = view.counts(analysis)
        table = Table(title="Counts", title_justify="left")
        table.add_column("by sender role")
        table.add_column("by cause")
        table.add_column("by sender kind")
        columns = [
            [Text.assemble(_role(k), f": {n}") for k, n in counts["role"].most_common()],
            [_e(f"{k}: {n}") for k, n in counts["cause"].most_common()],
            [_e(f"{k}: {n}") for k, n in counts["kind"].most_common()],
        ]
        for i in range(max(len(c) for c in columns)):
            table.add_row(*(c[i] if i < len(c) else "" for c in columns))
        console.print(table)

    if analysis.log_sources:
        logs = Table(title="Log sources", title_justify="left")
        for col in ("kind", "path", "lines", "unparsed", "tied to resets"):
            logs.add_column(
                col, justify="right" if col in ("lines", "unparsed", "tied to resets") else "left"
            )
        tied: dict[str, int] = {}
        for line, rid in view.all_logs(analysis):
            if rid is not None:
                tied[line.path] = tied.get(line.path, 0) + 1
        for src in analysis.log_sources:
            path = str(src.get("path", ""))
            logs.add_row(
                _e(src.get("kind", "")),
                _e(path),
                _e(src.get("lines", "")),
                _e(src.get("unparsed", "")),
                str(tied.get(path, 0)),
            )
        console.print(logs)

    missing = [i for i in view.checklist(analysis) if i.status == view.MISSING]
    if missing:
        console.print("[bold]Missing for a defensible report:[/]")
        for item in missing:
            console.print(_e(f"  - {item.title}: {item.summary}"))
    for w in analysis.warnings[:WARNINGS_MAX]:
        console.print(Text.assemble(("warning: ", "yellow"), _e(w)))
