"""`parse_log(path, kind)`: read one log file with the parser for its kind (contract §2 `[[log]]`)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator

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
        with open(name, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ResetlensError(f"cannot read log file: {exc.strerror}", path=name) from exc
    if data[:2] == b"\x1f\x8b":
        import gzip
        import zlib

        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ResetlensError(f"broken gzip data: {exc}", path=name) from exc
    return parse_bytes(data, kind, path=name, opts=opts)
