"""Application and client error lines: Go, Python, Java, Node, curl, openssl, PostgreSQL, MySQL, Redis.

Each recognised message is classified as one of `events.APP_CLASSES` (rst_received, fin_received,
broken_pipe, refused, tls_reset, conn_lost). Go's `OpError` text carries the whole 4-tuple:
`read tcp LOCAL->REMOTE: read: connection reset by peer` (Source = local, Addr = remote).
Lines that match no rule are read (counted) but not kept: an app log is mostly about other things.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from resetlens.evidence.base import (
    ANSI_RE,
    ISO_RE,
    MONTHS,
    LogRecord,
    Options,
    ParsedLog,
    iso_epoch,
    join_addr,
    local_epoch,
    parse_addr,
    to_float,
)
from resetlens.evidence.events import APP_CLASSES
from resetlens.evidence.syslog import parse_header

# Go net.OpError: "<op> <net> [<local>->]<remote>: <err>" (src/net/net.go OpError.Error).
GO_OP_RE = re.compile(
    r"\b(read|write|dial|accept|close) (tcp[46]?) (?:(\[?[0-9A-Fa-f:.]+\]?:\d+)->)?(\[?[0-9A-Fa-f:.]+\]?:\d+): (.*)"
)
# Vault CLI seal status (command/status.go) wraps a Go error.
VAULT_RE = re.compile(r'Error checking seal status: (\w+) "([^"]*)"')
# Go net/http server: client closed during the TLS handshake.
GO_TLS_RE = re.compile(r"http: TLS handshake error from (\S+): (.*)")
# Node: "connect ECONNREFUSED 10.0.0.9:8080".
NODE_REFUSED_RE = re.compile(r"connect ECONNREFUSED (\S+)")
# curl: "curl: (56) Recv failure: ..."; TLS errors name "in connection to host:port".
CURL_RE = re.compile(r"curl: \((\d+)\) (.*)")
CURL_TLS_TARGET_RE = re.compile(r"in connection to (\S+?):(\d+)")
# openssl s_client: "write:errno=104" / "read:errno=104".
OPENSSL_ERRNO_RE = re.compile(r"\b(read|write):errno=(\d+)")
# PostgreSQL log_connections: "connection received: host=10.0.0.5 port=51514".
PG_CONN_RE = re.compile(r"connection received: host=(\S+?)(?: port=(\d+))?$")
# MySQL ER 1184.
MYSQL_ABORTED_RE = re.compile(
    r"Aborted connection (\d+) to db: '([^']*)' user: '([^']*)' host: '([^']*)' \(([^)]*)\)"
)

# Message rules, first match wins: (pattern, class, runtime). Order: specific before generic.
RULES: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"Remote end closed connection without response"), "fin_received", "python"),
    (re.compile(r"RemoteDisconnected"), "fin_received", "python"),
    (re.compile(r"server closed idle connection"), "fin_received", "go"),
    (re.compile(r"Remote host terminated the handshake"), "tls_reset", "java"),
    (re.compile(r"SSL_connect: .*(?:[Rr]eset by peer|SSL_ERROR_SYSCALL)"), "tls_reset", "curl"),
    (re.compile(r"curl: \(56\) Recv failure: Connection reset by peer"), "rst_received", "curl"),
    (re.compile(r"curl: \(55\) Send failure: Broken pipe"), "broken_pipe", "curl"),
    (re.compile(r"curl: \(52\) Empty reply from server"), "fin_received", "curl"),
    (re.compile(r"curl: \(35\) .*(?:[Rr]eset by peer|SSL_ERROR_SYSCALL)"), "tls_reset", "curl"),
    (re.compile(r"curl: \(7\) (?:.*Connection refused|Failed to connect)"), "refused", "curl"),
    (re.compile(r"server closed the connection unexpectedly"), "conn_lost", "libpq"),  # EOF and RST alike
    (re.compile(r"unexpected eof while reading"), "fin_received", "openssl"),
    (re.compile(r"\b(?:read|write):errno=104\b"), "rst_received", "openssl"),
    (
        re.compile(r"could not receive data from client: Connection reset by peer"),
        "rst_received",
        "postgresql",
    ),
    (re.compile(r"unexpected EOF on client connection"), "fin_received", "postgresql"),
    (re.compile(r"Aborted connection \d+ to db:"), "conn_lost", "mysql"),
    (re.compile(r"Lost connection to MySQL server"), "conn_lost", "mysql"),
    (re.compile(r"Reading from client: Connection reset by peer"), "rst_received", "redis"),
    (re.compile(r"Error 104 while (?:writing to|reading from) socket"), "rst_received", "redis-py"),
    (re.compile(r"Connection closed by server\."), "fin_received", "redis-py"),
    (re.compile(r"java\.net\.SocketException: Connection reset(?! by peer)"), "rst_received", "java"),
    (re.compile(r"\bread ECONNRESET\b"), "rst_received", "node"),
    (re.compile(r"\bwrite EPIPE\b"), "broken_pipe", "node"),
    (re.compile(r"connect ECONNREFUSED"), "refused", "node"),
    (re.compile(r"socket hang up"), "conn_lost", "node"),
    (
        re.compile(
            r"SO_LINGER\s*(?:=\s*)?(?:0|\{\s*1\s*,\s*0\s*\})|\babortive(?:ly)? clos|clos\w* with unread data"
        ),
        "reset_sent",
        "",
    ),
    (
        re.compile(
            r"\breset both (?:ends|sides)\b|\b(?:sen[dt]|sending|inject\w*|forg\w*)\b.{0,24}\b(?:RST|TCP resets?)\b"
        ),
        "reset_sent",
        "",
    ),
    (re.compile(r"\bidle\b.{0,24}\bclos(?:e|ed|ing)\b"), "idle_close", ""),
    (re.compile(r"\bpeer closed\b|\bclosed by (?:the )?peer\b"), "fin_received", ""),
    (
        re.compile(r"ConnectionResetError|\[Errno 104\]|ECONNRESET|[Cc]onnection reset by peer"),
        "rst_received",
        "",
    ),
    (re.compile(r"BrokenPipeError|\[Errno 32\]|EPIPE|[Bb]roken pipe"), "broken_pipe", ""),
    (re.compile(r"ConnectionRefusedError|\[Errno 111\]|ECONNREFUSED|[Cc]onnection refused"), "refused", ""),
    (re.compile(r"\bunexpected EOF\b"), "fin_received", "go"),
]

# Leading times apps write besides syslog headers and ISO 8601.
GO_LOG_TIME_RE = re.compile(r"(\d{4})/(\d{2})/(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")
REDIS_TIME_RE = re.compile(
    r"\d+:[A-Z] (\d{1,2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
)
JSON_TS_RE = re.compile(r'"(?:ts|time|timestamp|@timestamp)"\s*:\s*(?:(\d{9,11}(?:\.\d+)?)|"([^"]{10,40})")')
# How far into a line a leading time may start (after a level tag or bracket).
TIME_SEARCH_CHARS = 48


def line_time(text: str, opts: Options) -> float | None:
    """The time an application line was written, from the usual places; None if none is found."""
    head = text[: TIME_SEARCH_CHARS + 40]
    m = ISO_RE.search(head)
    if m and m.start() <= TIME_SEARCH_CHARS:
        return iso_epoch(m, opts.tz)
    m = GO_LOG_TIME_RE.search(head)
    if m and m.start() <= TIME_SEARCH_CHARS:
        frac = float("0." + m[7]) if m[7] else 0.0
        return local_epoch(*(int(m[i]) for i in range(1, 7)), frac, opts.tz)  # type: ignore[call-arg]
    m = REDIS_TIME_RE.match(text)
    if m and m[2] in MONTHS:
        frac = float("0." + m[7]) if m[7] else 0.0
        return local_epoch(int(m[3]), MONTHS[m[2]], int(m[1]), int(m[4]), int(m[5]), int(m[6]), frac, opts.tz)
    m = JSON_TS_RE.search(text)
    if m:
        if m[1]:
            return to_float(m[1])
        m2 = ISO_RE.match(m[2])
        if m2:
            return iso_epoch(m2, opts.tz)
    return None


# key=value endpoints many programs log: local=, peer=, client=, src=, dst=, ...
KV_ADDR_RE = re.compile(
    r"\b(local|laddr|src|source|peer|remote|raddr|client|dst|destination|upstream)[=:]\s?"
    r"(\[[0-9A-Fa-f:.]+\]:\d{1,5}|\d{1,3}(?:\.\d{1,3}){3}:\d{1,5})"
)
# Keys that name the writer's own end of the connection (the others name the far end).
KV_LOCAL = ("local", "laddr", "src", "source")
# "A:P -> B:P" with spaces (IPS/DPI and firewall tools).
ARROW_RE = re.compile(
    r"(\[[0-9A-Fa-f:.]+\]:\d{1,5}|\d{1,3}(?:\.\d{1,3}){3}:\d{1,5})\s+->\s+"
    r"(\[[0-9A-Fa-f:.]+\]:\d{1,5}|\d{1,3}(?:\.\d{1,3}){3}:\d{1,5})"
)


def endpoints(message: str, fields: dict[str, Any]) -> tuple[str, int, str, int] | None:
    """Fill fields local/remote from key=value or arrow endpoints; the 4-tuple when both ends are named."""
    local = remote = None
    for key, value in KV_ADDR_RE.findall(message):
        addr = parse_addr(value)
        if addr is None:
            continue
        if key in KV_LOCAL:
            local = local or addr
        else:
            remote = remote or addr
    if local is None and remote is None:
        m = ARROW_RE.search(message)
        if m:
            local, remote = parse_addr(m[1]), parse_addr(m[2])
    if remote:
        fields.setdefault("remote", join_addr(remote[0], remote[1]))
    if local:
        fields.setdefault("local", join_addr(local[0], local[1]))
    if local and remote:
        return (local[0], local[1], remote[0], remote[1])
    return None


def _addr(text: str) -> tuple[str, int] | None:
    return parse_addr(text.strip("[]") if text.count(":") == 1 else text)


# Every rule above needs one of these words: lines without any are skipped cheaply (most of an app log).
PREFILTER_RE = re.compile(
    r"reset|rst\b|pipe|refused|eof|clos|hang up|lost connection|abort|errno|econn|linger|idle|handshake"
    r"|remote|disconnect|curl: \(|tcp|connection received|ssl",
    re.IGNORECASE,
)


def classify(message: str) -> tuple[str, dict[str, Any], tuple[str, int, str, int] | None] | None:
    """(class, fields, 4-tuple) for an application error message; None when it is not one."""
    if not PREFILTER_RE.search(message):
        return None
    fields: dict[str, Any] = {}
    tuple4 = None
    cls = None
    m = GO_OP_RE.search(message)
    if m:
        err = m[5].lower()
        fields.update(runtime="go", op=m[1], net=m[2])
        local = _addr(m[3]) if m[3] else None
        remote = _addr(m[4])
        if remote:
            fields["remote"] = join_addr(remote[0], remote[1])
        if local and remote:
            fields["local"] = join_addr(local[0], local[1])
            tuple4 = (local[0], local[1], remote[0], remote[1])
        if "connection reset by peer" in err:
            cls = "rst_received"
        elif "broken pipe" in err:
            cls = "broken_pipe"
        elif "connection refused" in err:
            cls = "refused"
        elif err.endswith("eof"):
            cls = "fin_received"
        v = VAULT_RE.search(message)
        if v:
            fields.update(tool="vault", url=v[2])
        if cls:
            return cls, fields, tuple4
    m = GO_TLS_RE.search(message)
    if m:
        fields.update(runtime="go", client=m[1], error=m[2])
        return "tls_reset", fields, None
    for pattern, rule_cls, runtime in RULES:
        if pattern.search(message):
            cls = rule_cls
            if runtime:
                fields["runtime"] = runtime
            break
    if cls is None:
        return None
    m = NODE_REFUSED_RE.search(message)
    if m:
        fields["remote"] = m[1]
    m = CURL_RE.search(message)
    if m:
        fields["curl_code"] = int(m[1])
        t = CURL_TLS_TARGET_RE.search(m[2])
        if t:
            fields["remote"] = f"{t[1]}:{t[2]}"
        if "SSL_ERROR_SYSCALL" in m[2]:
            fields["wire"] = "fin"
    tuple4 = endpoints(message, fields)
    m = OPENSSL_ERRNO_RE.search(message)
    if m:
        fields.update(op=m[1], errno=int(m[2]))
    m = MYSQL_ABORTED_RE.search(message)
    if m:
        fields.update(mysql_conn=int(m[1]), db=m[2], user=m[3], client_host=m[4], reason=m[5])
    return cls, fields, tuple4


def parse(lines: Iterable[str], log: ParsedLog, opts: Options) -> ParsedLog:
    """Read an application log: one record per line that states a connection error."""
    for n, line in enumerate(lines, 1):
        log.lines_total += 1
        record = record_for(n, line, log.kind, opts)
        if record is None:
            log.ignored += 1
        else:
            log.records.append(record)
    return log


def record_for(n: int, line: str, kind: str, opts: Options) -> LogRecord | None:
    """A record for one application line, or None when it says nothing about a connection."""
    found = classify(ANSI_RE.sub("", line) if "\x1b" in line else line)
    if found is None:
        pg = PG_CONN_RE.search(line) if "connection received" in line else None
        if not pg:
            return None
        fields: dict[str, Any] = {"client_host": pg[1]}
        if pg[2]:
            fields["client"] = join_addr(pg[1], pg[2])
        return LogRecord(n, line_time(line, opts), line, kind, opts.host, "", fields)
    cls, fields, tuple4 = found
    fields["class"] = cls
    host = opts.host
    header = parse_header(line, opts)
    ts = header.ts if header else None
    if header and header.ident:  # a real syslog header, not a time followed by a level word
        host = host or header.host
        if header.ident:
            fields.setdefault("ident", header.ident)
    if ts is None:
        ts = line_time(line, opts)
    return LogRecord(n, ts, line, kind, host, APP_CLASSES[cls], fields, tuple4)
