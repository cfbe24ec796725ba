"""Records every log parser yields, and the time helpers they share.

A parser never raises on a bad line: it counts it in `ParsedLog.unparsed`, keeps a few examples with
their line numbers and reasons, and goes on. Times are UTC epoch floats; a time written without an
offset is read in the manifest timezone (`Options.tz`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from resetlens.errors import ResetlensError

# How many unparsed lines a ParsedLog keeps as examples.
MAX_EXAMPLES = 5
# Longest excerpt of a bad line kept in an example (hostile text: keep it short).
EXAMPLE_CHARS = 160
# Longest line a parser looks at; the rest is cut (and the cut is noted once per file).
MAX_LINE = 65536

# Month abbreviations as every log writes them (C locale).
MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}

# ANSI colour and cursor sequences some programs write into their logs.
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

# A 4-tuple as a line writes it: (local or source address, port, remote or destination address, port).
Tuple4 = tuple[str, int, str, int]


@dataclass
class LogRecord:
    """One parsed log line (or journal entry)."""

    line: int  # 1-based line number in the file (first line of the entry for multi-line formats)
    ts: float | None  # UTC epoch seconds, None when the line carries no usable time
    text: str  # the line as read, cut to MAX_LINE
    kind: str  # the parse_log kind that read it
    host: str | None = None  # host the line was written on (manifest, syslog header or _HOSTNAME)
    event: str = ""  # an events.EVENTS code, "" when the line says nothing about connections
    fields: dict[str, Any] = field(default_factory=dict)  # what the parser pulled out, by name
    tuple4: Tuple4 | None = None  # the connection's 4-tuple when the line names it, as written


@dataclass
class Unparsed:
    """One example of a line no parser rule accepted."""

    line: int
    reason: str
    text: str


@dataclass
class ParsedLog:
    """Everything read from one log file."""

    path: str
    kind: str
    records: list[LogRecord] = field(default_factory=list)
    lines_total: int = 0
    unparsed: int = 0
    examples: list[Unparsed] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    host: str | None = None  # the manifest host, when given
    resolution: float = 1.0  # coarsest time resolution of the format, seconds
    ignored: int = 0  # lines read fine that say nothing about connections (not kept as records)
    meta: dict[str, Any] = field(default_factory=dict)  # per-format extras (journald: unit -> PIDs)

    def bad(self, line: int, reason: str, text: str) -> None:
        """Count a line that could not be read and keep it as an example if there is room."""
        self.unparsed += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(Unparsed(line, reason, text[:EXAMPLE_CHARS]))

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    @property
    def parsed(self) -> int:
        """Lines (or entries) read: the records kept plus the ones that said nothing of interest."""
        return len(self.records) + self.ignored

    def stats(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "host": self.host,
            "lines": self.lines_total,
            "parsed": self.parsed,
            "unparsed": self.unparsed,
            "events": sum(1 for r in self.records if r.event),
            "unparsed_examples": [
                {"line": e.line, "reason": e.reason, "text": e.text} for e in self.examples
            ],
            "warnings": list(self.warnings),
        }


@dataclass
class Options:
    """How to read one file: the manifest's timezone and host, and an optional format string."""

    tz: dt.tzinfo = dt.UTC
    host: str | None = None
    fmt: str | None = None  # nginx log_format / envoy format string
    year: int | None = None  # for formats without a year (syslog); None = guess from the file's mtime
    mtime: float | None = None  # the file's modification time, epoch

    def year_for(self, month: int) -> int:
        """Year of a yearless date: the file's year, minus one if the month is after the file's month."""
        if self.year is not None:
            return self.year
        ref = dt.datetime.fromtimestamp(self.mtime or 0, dt.UTC) if self.mtime else dt.datetime.now(dt.UTC)
        return ref.year - 1 if month > ref.month else ref.year


def zone(name: str | None) -> dt.tzinfo:
    """The manifest timezone by IANA name ("UTC" when absent); an unknown name is a user mistake."""
    if not name or name.upper() in ("UTC", "Z", "GMT"):
        return dt.UTC
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", name)
    if m:
        delta = dt.timedelta(hours=int(m[2]), minutes=int(m[3]))
        return dt.timezone(-delta if m[1] == "-" else delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ResetlensError(f"unknown timezone {name!r} (use an IANA name like 'Europe/Berlin')") from exc


def local_epoch(
    year: int, month: int, day: int, h: int, mi: int, s: int, frac: float, tz: dt.tzinfo
) -> float | None:
    """Epoch seconds of a wall-clock time in `tz`; None when the fields are not a real date."""
    try:
        return dt.datetime(year, month, day, h, mi, s, tzinfo=tz).timestamp() + frac
    except (ValueError, OverflowError):
        return None


def offset_seconds(text: str) -> int | None:
    """'+0000', '+00:00', 'Z', '-0530' -> seconds east of UTC; None if not an offset."""
    if text in ("Z", "z"):
        return 0
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", text)
    if not m:
        return None
    sec = int(m[2]) * 3600 + int(m[3]) * 60
    return -sec if m[1] == "-" else sec


# ISO 8601 as logs write it: date, T or space, time, optional fraction, optional offset.
ISO_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?\s?(Z|z|[+-]\d{2}:?\d{2}|UTC|GMT)?"
)


def iso_epoch(m: re.Match[str], tz: dt.tzinfo) -> float | None:
    """Epoch of an ISO_RE match: its offset when written, else `tz`."""
    y, mo, d, h, mi, s = (int(m[i]) for i in range(1, 7))
    frac = float("0." + m[7]) if m[7] else 0.0
    off = m[8]
    if off in ("UTC", "GMT"):
        off = "Z"
    if off:
        sec = offset_seconds(off)
        if sec is not None:
            tz = dt.timezone(dt.timedelta(seconds=sec))
    return local_epoch(y, mo, d, h, mi, s, frac, tz)


# ip:port as logs write it: [v6]:port or v4:port.
ADDR_RE = re.compile(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([0-9]{1,3}(?:\.[0-9]{1,3}){3}):(\d{1,5})")


def join_addr(addr: str, port: int | str) -> str:
    """(address, port) -> '10.0.0.9:8080' or '[2001:db8::1]:443' (what parse_addr reads back)."""
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def parse_addr(text: str) -> tuple[str, int] | None:
    """'10.0.0.9:8080' or '[2001:db8::1]:443' -> (address, port); None when not ip:port."""
    m = ADDR_RE.fullmatch(text.strip())
    if not m:
        return None
    addr, port = (m[1], m[2]) if m[1] else (m[3], m[4])
    p = int(port)
    return (addr, p) if p <= 65535 else None


def to_int(text: str | None) -> int | None:
    """Integer of a log field; '-' and garbage become None."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def to_float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        v = float(text)
    except ValueError:
        return None
    return v if v == v and abs(v) != float("inf") else None
