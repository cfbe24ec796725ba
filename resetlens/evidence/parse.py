"""`parse_log(path, kind)`: read one log file with the parser for its kind (contract §2 `[[log]]`)."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

from resetlens.errors import ResetlensError
from resetlens.evidence import app, envoy, haproxy, journald, nginx
from resetlens.evidence.base import MAX_LINE, Options, ParsedLog, zone

# Kinds of the contract, plus the journald outputs resetlens reads besides -o json.
KINDS = (
    "nginx-error",
    "nginx-access",
    "haproxy",
    "envoy",
    "journald-json",
    "syslog",
    "app",
    "journald-export",
    "journald-text",
    "journal-binary",
)
# Kind -> line parser (the byte- and file-based journald kinds are handled in parse_log).
LINE_PARSERS: dict[str, Callable[..., ParsedLog]] = {
    "nginx-error": nginx.parse_error,
    "nginx-access": nginx.parse_access,
    "haproxy": haproxy.parse,
    "envoy": envoy.parse,
    "journald-json": journald.parse_json,
    "syslog": journald.parse_text,
    "journald-text": journald.parse_text,
    "app": app.parse,
}
# Other names people write for the same kinds.
ALIASES = {
    "journald": "journald-json",
    "journal": "journald-json",
    "journald-short": "journald-text",
    "journal-export": "journald-export",
    "journald-binary": "journal-binary",
    "nginx": "nginx-error",
    "application": "app",
}


def lines_of(data: bytes, log: ParsedLog) -> Iterator[str]:
    """Text lines of a file, decoded leniently; overlong lines are cut and NUL bytes dropped."""
    cut = False
    for raw in data.split(b"\n"):
        if len(raw) > MAX_LINE:
            raw = raw[:MAX_LINE]
            cut = True
        yield raw.rstrip(b"\r").replace(b"\x00", b"").decode("utf-8", "replace")
    if cut:
        log.warn(f"lines longer than {MAX_LINE} bytes were cut")


def parse_bytes(data: bytes, kind: str, *, path: str = "-", opts: Options | None = None) -> ParsedLog:
    """Parse the content of a log file already in memory (what parse_log does after reading it)."""
    opts = opts or Options()
    kind = ALIASES.get(kind, kind)
    log = ParsedLog(path=path, kind=kind, host=opts.host)
    if kind == "journald-export":
        return journald.parse_export(data, log, opts)
    if kind == "journal-binary":
        raise ResetlensError("binary journals are read from a file: use parse_log", path=path)
    parser = LINE_PARSERS.get(kind)
    if parser is None:
        raise ResetlensError(f"unknown log kind {kind!r} (one of: {', '.join(KINDS)})", path=path)
    if data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        return log
    return parser(lines_of(data, log), log, opts)


def parse_log(
    path: str | os.PathLike[str],
    kind: str,
    *,
    tz: str | dt.tzinfo = "UTC",
    host: str | None = None,
    fmt: str | None = None,
    year: int | None = None,
) -> ParsedLog:
    """Read one log file. A missing or unreadable file is a ResetlensError; bad lines are counted, never raised."""
    name = os.fspath(path)
    kind = ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise ResetlensError(f"unknown log kind {kind!r} (one of: {', '.join(KINDS)})", path=name)
    try:
        mtime = os.stat(name).st_mtime
    except OSError as exc:
        raise ResetlensError(f"cannot read log file: {exc.strerror}", path=name) from exc
    opts = Options(tz=zone(tz) if isinstance(tz, str) else tz, host=host, fmt=fmt, year=year, mtime=mtime)
    if kind == "journal-binary":
        return journald.parse_binary(name, ParsedLog(path=name, kind=kind, host=host), opts)
    try:
        f = open(name, "rb")
    except OSError as exc:
        raise ResetlensError(f"cannot read log file: {exc.strerror}", path=name) from exc
    with f:
        stream: BinaryIO = f
        if f.read(2) == b"\x1f\x8b":
            stream = gzip.GzipFile(fileobj=f, mode="rb")
        f.seek(0)
        log = ParsedLog(path=name, kind=kind, host=host)
        try:
            if kind == "journald-export":
                return journald.parse_export(stream.read(), log, opts)
            return LINE_PARSERS[kind](stream_lines(stream, log), log, opts)
        except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt gzip stream, or a read error
            log.warn(f"stopped reading: {exc}")
            return log


def stream_lines(stream: BinaryIO, log: ParsedLog) -> Iterator[str]:
    """Text lines of a file read one at a time (memory stays flat on huge logs); long lines are cut."""
    cut = False
    while True:
        raw = stream.readline(MAX_LINE + 1)
        if not raw:
            break
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            cut = True
            while True:  # skip the rest of the overlong line
                rest = stream.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
        yield raw[:MAX_LINE].rstrip(b"\r\n").replace(b"\x00", b"").decode("utf-8", "replace")
    if cut:
        log.warn(f"lines longer than {MAX_LINE} bytes were cut")
