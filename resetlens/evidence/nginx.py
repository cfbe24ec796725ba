"""nginx error log and access log (src/core/ngx_log.c, src/http/ngx_http_request.c, ngx_http_log_module.c).

Error log: `<yyyy/mm/dd hh:mm:ss> [<level>] <pid>#<tid>: *<conn> <msg>[ (<errno>: <strerror>)]` then
` while <action>, client: <ip>, server: <name>, request: "...", upstream: "...", host: "..."`. Local
time, no offset, 1 s. `*<conn>` equals the access log's `$connection`: the join key between the two.

Access log: `combined` unless a `log_format` string is given; any format is compiled into a regex.
`$upstream_*` variables list one entry per tried peer joined by ", ", groups joined by " : ".
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from resetlens.evidence import events
from resetlens.evidence.base import (
    ISO_RE,
    MONTHS,
    LogRecord,
    Options,
    ParsedLog,
    iso_epoch,
    join_addr,
    local_epoch,
    offset_seconds,
    parse_addr,
    to_float,
    to_int,
)
from resetlens.evidence.template import compile_template

# -- error log ---------------------------------------------------------------------------------

# Layout of ngx_log_error_core().
ERROR_RE = re.compile(
    r"(\d{4})/(\d{2})/(\d{2}) (\d{2}):(\d{2}):(\d{2}) \[(\w+)\] (\d+)#(\d+): (?:\*(\d+) )?(.*)$"
)
# Context appended by ngx_http_log_error_handler(): key: value, quoted or not.
CONTEXT_START_RE = re.compile(r", (?:client|server|upstream|request|host): ")
CONTEXT_RE = re.compile(
    r', (client|server|request|subrequest|upstream|host|referrer): ("(?:[^"\\]|\\.)*"|[^,]*)'
)
# errno and strerror: " (104: Connection reset by peer)".
ERRNO_RE = re.compile(r"\((\d+): ([^)]*)\)")
# upstream: "http://10.0.0.9:8080/v1/orders", "10.0.0.9:8080" (stream), "http://backend/..." (group).
UPSTREAM_RE = re.compile(r"(?:(\w+)://)?(\[[0-9A-Fa-f:.]+\]:\d+|[^/\s:]+(?::\d+)?)(/.*)?$")
# errno values nginx reports about connections.
ECONNRESET = 104  # Connection reset by peer
EPIPE = 32  # Broken pipe
ETIMEDOUT = 110  # Connection timed out
ECONNREFUSED = 111  # Connection refused
UNREACHABLE = (101, 113)  # ENETUNREACH, EHOSTUNREACH

# Message start -> (event on the upstream side, event on the client side); None = decide by errno.
MESSAGES: list[tuple[re.Pattern[str], str | None, str | None]] = [
    (re.compile(r"^upstream prematurely closed connection"), events.UPSTREAM_FIN, events.UPSTREAM_FIN),
    (re.compile(r"^upstream timed out"), events.UPSTREAM_TIMEOUT, events.UPSTREAM_TIMEOUT),
    (re.compile(r"^no live upstreams"), events.NO_LIVE_UPSTREAMS, events.NO_LIVE_UPSTREAMS),
    (re.compile(r"^upstream sent too big header"), events.POLICY_REJECT, events.POLICY_REJECT),
    (
        re.compile(r"^upstream sent (?:invalid|no valid|unexpected)"),
        events.PROTOCOL_ERROR,
        events.PROTOCOL_ERROR,
    ),
    (re.compile(r"^client intended to send too large body"), events.POLICY_REJECT, events.POLICY_REJECT),
    (
        re.compile(r"^(?:\w+\(\) reported that )?client prematurely closed connection"),
        events.CLIENT_ABORT,
        events.CLIENT_ABORT,
    ),
    (re.compile(r"^client \S+ closed keepalive connection"), None, events.CLIENT_CLOSED_IDLE),
    (re.compile(r"^client closed connection$"), None, events.CLIENT_CLOSED_IDLE),
    (re.compile(r"^client timed out"), events.CLIENT_TIMEOUT, events.CLIENT_TIMEOUT),
    (
        re.compile(r"^(?:peer closed connection in SSL handshake|SSL_do_handshake\(\) failed)"),
        events.TLS_HANDSHAKE_FAILED,
        events.TLS_HANDSHAKE_FAILED,
    ),
    (re.compile(r"^limiting (?:requests|connections)"), events.POLICY_REJECT, events.POLICY_REJECT),
    (
        re.compile(r"^(?:connect|recv|readv|send|writev|sendfile|SSL_read|SSL_write|shutdown)\(\) failed"),
        None,
        None,
    ),
]


def _errno_event(errno: int | None, upstream_side: bool, connecting: bool) -> str:
    """Event of a failed socket call by errno and side."""
    if errno == ECONNRESET:
        return events.UPSTREAM_RESET if upstream_side else events.CLIENT_RESET
    if errno == EPIPE:
        return events.UPSTREAM_ABORT if upstream_side else events.CLIENT_ABORT
    if errno == ECONNREFUSED:
        return events.UPSTREAM_REFUSED if upstream_side else events.CLIENT_ABORT
    if errno == ETIMEDOUT:
        return events.UPSTREAM_TIMEOUT if upstream_side else events.CLIENT_TIMEOUT
    if errno in UNREACHABLE:
        return events.UPSTREAM_UNREACHABLE if upstream_side else events.CLIENT_ABORT
    if connecting:
        return events.UPSTREAM_CONNECT_FAILED
    return events.PROXY_ERROR


def parse_upstream(text: str) -> dict[str, Any]:
    """The parts of an `upstream: "..."` value: scheme, address and port (or a group name), uri."""
    out: dict[str, Any] = {"upstream": text}
    m = UPSTREAM_RE.match(text)
    if not m:
        return out
    if m[1]:
        out["upstream_scheme"] = m[1]
    addr = parse_addr(m[2])
    if addr:
        out["upstream_addr"], out["upstream_port"] = addr
    else:
        out["upstream_group"] = m[2]
    if m[3]:
        out["upstream_uri"] = m[3]
    return out


def classify_error(message: str) -> tuple[str, dict[str, Any]]:
    """(event, fields) of an error-log message without its time/level/pid prefix."""
    fields: dict[str, Any] = {}
    cut = CONTEXT_START_RE.search(message)
    core, context = (message[: cut.start()], message[cut.start() :]) if cut else (message, "")
    for key, value in CONTEXT_RE.findall(context):
        value = value[1:-1] if value.startswith('"') and value.endswith('"') and len(value) >= 2 else value
        fields.setdefault(key, value)
    if "upstream" in fields:
        fields.update(parse_upstream(fields["upstream"]))
    action = None
    w = core.rfind(" while ")
    if w >= 0:
        action = core[w + 7 :].strip()
        core = core[:w]
        fields["action"] = action
    e = ERRNO_RE.search(core)
    errno = None
    if e:
        errno = int(e[1])
        fields.update(errno=errno, strerror=e[2])
    fields["message"] = core
    upstream_side = bool(action and "upstream" in action) or (
        "upstream" in fields and not (action or "").endswith("client")
    )
    connecting = bool(action and action.startswith("connecting"))
    for pattern, up_event, client_event in MESSAGES:
        if pattern.search(core):
            event = up_event if upstream_side else client_event
            if event is None:
                event = _errno_event(errno, upstream_side, connecting)
            elif event == events.CLIENT_ABORT and errno == ECONNRESET:
                event = events.CLIENT_RESET
            elif event == events.TLS_HANDSHAKE_FAILED:
                fields["side"] = "upstream" if upstream_side else "client"
            return event, fields
    if errno is not None:
        return _errno_event(errno, upstream_side, connecting), fields
    return "", fields


def parse_error(lines: Iterable[str], log: ParsedLog, opts: Options) -> ParsedLog:
    log.resolution = 1.0
    for n, line in enumerate(lines, 1):
        log.lines_total += 1
        if not line.strip():
            log.lines_total -= 1
            continue
        m = ERROR_RE.match(line)
        if not m:
            if log.records and line[:1] in (" ", "\t"):
                log.ignored += 1  # continuation of a multi-line message
                continue
            log.bad(n, "not an nginx error-log line (yyyy/mm/dd hh:mm:ss [level] pid#tid: ...)", line)
            continue
        ts = local_epoch(*(int(m[i]) for i in range(1, 7)), 0.0, opts.tz)  # type: ignore[call-arg]
        if ts is None:
            log.bad(n, "impossible date", line)
            continue
        event, fields = classify_error(m[11])
        fields.update(level=m[7], pid=int(m[8]), tid=int(m[9]))
        if m[10]:
            fields["connection"] = int(m[10])
        if not event:
            log.ignored += 1
            continue
        log.records.append(LogRecord(n, ts, line, log.kind, opts.host, event, fields))
    return log


# -- access log --------------------------------------------------------------------------------

# Built-in formats: `combined` (ngx_http_log_module.c) and the stock nginx.conf `main`.
COMBINED = '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"'
MAIN = COMBINED + ' "$http_x_forwarded_for"'
# The format the reference recommends for resetlens.
RESETLENS = (
    '$time_iso8601 $msec $remote_addr:$remote_port $connection $request_id "$request" $status $body_bytes_sent '
    '$request_time ups="$upstream_addr" us="$upstream_status" uht="$upstream_header_time" urt="$upstream_response_time"'
)
FORMATS = {"combined": COMBINED, "main": MAIN, "resetlens": RESETLENS, "rl": RESETLENS}
# A variable in a log_format: $name or ${name}.
VAR_RE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
# One $upstream_* entry, and a list of them joined by ", " or " : ".
UPSTREAM_ITEM = r'[^\s,"]+'
UPSTREAM_LIST = rf"{UPSTREAM_ITEM}(?:(?:, | : ){UPSTREAM_ITEM})*"
# Upstream variables with one entry per tried peer.
UPSTREAM_LISTS = {
    "upstream_addr": "addr",
    "upstream_status": "status",
    "upstream_connect_time": "connect_time",
    "upstream_header_time": "header_time",
    "upstream_response_time": "response_time",
    "upstream_bytes_received": "bytes_received",
    "upstream_bytes_sent": "bytes_sent",
}
# $time_local: 31/Dec/2025:01:58:12 +0000.
TIME_LOCAL_RE = re.compile(r"(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-]\d{4})")
# Access-log status -> event when nothing else says more.
STATUS_EVENTS = {
    499: events.CLIENT_ABORT,  # NGX_HTTP_CLIENT_CLOSED_REQUEST
    502: events.UPSTREAM_ERROR,
    503: events.UPSTREAM_ERROR,
    504: events.UPSTREAM_TIMEOUT,
    444: events.POLICY_REJECT,  # closed without a response (an RST with reset_timedout_connection)
    413: events.POLICY_REJECT,
    408: events.CLIENT_TIMEOUT,
    429: events.POLICY_REJECT,
}


def _special(name: str) -> str | None:
    if name in UPSTREAM_LISTS:
        return UPSTREAM_LIST
    if name == "status":
        return r"\d{3}|-"
    if name == "time_local":
        return IN_TIME_LOCAL
    return None


# $time_local contains a space, so it needs its own pattern even outside brackets.
IN_TIME_LOCAL = r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}"


def format_string(fmt: str | None) -> str:
    """The log_format string: a known name, a bare format, or a whole `log_format name '...' '...';` directive."""
    if not fmt:
        return COMBINED
    if fmt in FORMATS:
        return FORMATS[fmt]
    text = fmt.strip()
    if text.startswith("log_format"):
        pieces = re.findall(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"", text)
        if pieces:
            return "".join(a or b for a, b in pieces)
    return text


def compile_format(fmt: str | None) -> tuple[re.Pattern[str], dict[str, str]]:
    return compile_template(format_string(fmt), VAR_RE, _special)


def upstream_tries(values: dict[str, str]) -> list[dict[str, Any]]:
    """One dict per tried peer from the $upstream_* lists (groups flattened, `group` numbered)."""
    tries: list[dict[str, Any]] = []
    for var, key in UPSTREAM_LISTS.items():
        if var not in values:
            continue
        i = 0
        for g, group in enumerate(values[var].split(" : ")):
            for item in group.split(", "):
                while len(tries) <= i:
                    tries.append({"group": g})
                value: Any = None if item == "-" else item
                if key == "status" and value is not None:
                    value = to_int(value)
                elif key.endswith("_time") and value is not None:
                    value = to_float(value)
                elif key == "addr" and value is not None:
                    addr = parse_addr(value)
                    if addr:
                        tries[i]["ip"], tries[i]["port"] = addr
                tries[i][key] = value
                i += 1
    return tries


def _access_time(values: dict[str, str], opts: Options) -> float | None:
    msec = to_float(values.get("msec"))
    if msec is not None:
        return msec
    iso = values.get("time_iso8601")
    if iso:
        m = ISO_RE.match(iso)
        if m:
            return iso_epoch(m, opts.tz)
    tl = values.get("time_local")
    if tl:
        m = TIME_LOCAL_RE.match(tl)
        off = offset_seconds(m[7]) if m else None
        if m and m[2] in MONTHS and off is not None:
            zone = dt.timezone(dt.timedelta(seconds=off))  # the written offset, not the manifest zone
            return local_epoch(int(m[3]), MONTHS[m[2]], int(m[1]), int(m[4]), int(m[5]), int(m[6]), 0.0, zone)
    return None


def access_record(n: int, line: str, values: dict[str, str], kind: str, opts: Options) -> LogRecord:
    fields: dict[str, Any] = {}
    for name, value in values.items():
        if value != "-" and name not in UPSTREAM_LISTS:
            fields[name] = value
    status = to_int(values.get("status"))
    if status is not None:
        fields["status"] = status
    for name in ("connection", "remote_port", "body_bytes_sent", "bytes_sent", "server_port"):
        if name in fields:
            fields[name] = to_int(fields[name])
    if "request_time" in fields:
        fields["request_time"] = to_float(fields["request_time"])
    if "request_id" in fields:
        fields["request_id"] = fields["request_id"].lower()
    client = fields.get("remote_addr")
    if client and fields.get("remote_port"):
        fields["client"] = join_addr(client, fields["remote_port"])
    tries = upstream_tries(values)
    if tries:
        fields["upstreams"] = tries
        last = tries[-1]
        if last.get("ip"):
            fields.update(upstream_addr=last["ip"], upstream_port=last["port"])
    event = STATUS_EVENTS.get(status or 0, events.REQUEST)
    if (
        status == 502
        and tries
        and any(t.get("header_time") is None and t.get("status") == 502 for t in tries)
    ):
        fields["synthesized_502"] = True  # nginx made it up: see the error log for the reason
    tuple4 = None
    if (
        client
        and isinstance(fields.get("remote_port"), int)
        and fields.get("server_addr")
        and isinstance(fields.get("server_port"), int)
    ):
        tuple4 = (client, fields["remote_port"], fields["server_addr"], fields["server_port"])
    return LogRecord(n, _access_time(values, opts), line, kind, opts.host, event, fields, tuple4)


def parse_access(lines: Iterable[str], log: ParsedLog, opts: Options) -> ParsedLog:
    regex, groups = compile_format(opts.fmt)
    names = set(groups.values())
    log.resolution = 0.001 if "msec" in names else 1.0
    if not names & {"msec", "time_local", "time_iso8601"}:
        log.warn(
            "the access-log format has no time ($msec, $time_local or $time_iso8601): lines cannot be placed in time"
        )
    for n, line in enumerate(lines, 1):
        log.lines_total += 1
        if not line.strip():
            log.lines_total -= 1
            continue
        m = regex.match(line)
        if not m:
            log.bad(n, "does not match the access-log format", line)
            continue
        values = {groups[g]: v for g, v in m.groupdict().items() if v is not None}
        log.records.append(access_record(n, line, values, log.kind, opts))
    return log
