"""HAProxy logs (doc/configuration.txt §8.2-8.5): httplog, tcplog, the SSL/PROXY error log, server state.

    [syslog header] %ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq             (tcplog)
    [syslog header] %ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/... %sq/%bq {..} "req"

The header may be `local`, `rfc3164`, `rfc5424`, `short`, `raw` or anything else: the payload is found by
its `ip:port [dd/Mon/yyyy:hh:mm:ss.mmm]` start. Dates are local time (manifest timezone). Extra fields a
custom log-format appends after the standard ones are read leniently: the first two `ip:port` there are
taken as `%bi:%bp %si:%sp` (the server leg's 4-tuple).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from resetlens.evidence import events
from resetlens.evidence.base import MONTHS, LogRecord, Options, ParsedLog, join_addr, local_epoch
from resetlens.evidence.syslog import parse_header

# Where the payload starts: client ip:port then the bracketed accept/request date.
START_RE = re.compile(
    r"(\S+):(\d{1,5}) \[(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?\] "
)
# After the date: frontend, backend/server, timers (3 = tcplog, 5 = httplog; `+` with logasap).
MIDDLE_RE = re.compile(r"(\S+) ([^/\s]+)/(\S+) ((?:\+?-?\d+/){2,4}\+?-?\d+) ")
# httplog after the timers.
HTTP_RE = re.compile(
    r"(-?\d+) \+?(\d+) (\S+) (\S+) ([A-Za-z-]{4}) (\d+)/(\d+)/(\d+)/(\d+)/\+?(\d+) (\d+)/(\d+)(.*)$"
)
# tcplog after the timers.
TCP_RE = re.compile(r"\+?(\d+) ([A-Za-z-]{2}) (\d+)/(\d+)/(\d+)/(\d+)/\+?(\d+) (\d+)/(\d+)(.*)$")
# Error log: "<ip>:<port> [<date>] <frontend>/<bind>: <message>".
ERROR_RE = re.compile(r"(\S+)/(\S+): (.*)$")
# Header captures and the quoted request line in the httplog tail.
CAPTURES_RE = re.compile(r" \{[^}]*\}")
REQUEST_RE = re.compile(r' "((?:[^"\\]|\\.)*)"')
# ip:port tokens in a custom tail.
ADDR_TOKEN_RE = re.compile(r"(?<![\w:.\[])(\[[0-9A-Fa-f:.]+\]|\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})\b")
# A termination state as its own token (tcplog 2 chars, httplog 4), for fully custom formats.
CUSTOM_STATE_RE = re.compile(r"(?<!\S)([CScsPLRIDUK-][RQCHDLT-](?:[-A-Za-z]{2})?)(?!\S)")
# Server state messages.
SERVER_STATE_RE = re.compile(r"Server (\S+)/(\S+) is (DOWN|UP)\b(.*)")
NO_SERVER_RE = re.compile(r"backend '?(\S+?)'? has no server available")

# Termination state, 1st char: the event that ended the stream (§8.5).
FIRST_CHAR = {
    "C": "the client aborted unexpectedly",
    "S": "the server aborted or explicitly refused it (RST or ICMP)",
    "P": "the proxy blocked it (limit, deny, security check)",
    "L": "handled locally by HAProxy (redirect, return, applet)",
    "R": "a HAProxy resource was exhausted (memory, sockets, source ports)",
    "I": "internal error in HAProxy",
    "D": "the server was detected down and the session killed (on-marked-down)",
    "U": "killed because a backup server came up (on-marked-up)",
    "K": "killed by an administrator",
    "c": "client-side timeout",
    "s": "server-side timeout",
    "-": "normal end",
}
# 2nd char: the stream's phase at that moment.
PHASE_CHAR = {
    "R": "waiting for the full request",
    "Q": "waiting in the queue",
    "C": "waiting for the connection to the server",
    "H": "waiting for complete response headers",
    "D": "in the data phase",
    "L": "sending the last data to the client",
    "T": "tarpitted",
    "-": "normal end",
}
# Two-letter states with a specific reading in the documentation (abridged).
STATE_MEANING = {
    "CD": "client aborted during data (crash, middlebox, routing, or keep-alive ended by the client)",
    "cD": "client timeout during data",
    "cH": "client timeout while the server response was pending (POST)",
    "cR": "client timeout before the full request (408)",
    "CH": "client aborted while waiting for the server's response",
    "CR": "client aborted before sending a full request",
    "CQ": "client aborted while queued",
    "CC": "client aborted while the server connection was being made",
    "CT": "client aborted while tarpitted",
    "SC": "the server or equipment explicitly refused the TCP connection (RST or ICMP)",
    "sC": "connect timeout to the server (no SYN-ACK)",
    "SH": "the server aborted before sending full headers, or crashed",
    "sH": "server timeout before complete headers",
    "SD": "RST or ICMP received from the server side while exchanging data",
    "sD": "server timeout during data (often a short L4 timeout in front of the server)",
    "sQ": "too long in the queue",
    "PR": "request blocked by the proxy (400/403)",
    "PH": "response blocked by the proxy (502)",
    "PD": "chunk blocked by the proxy",
    "PT": "tarpitted by the proxy",
    "PC": "proxy socket limit reached while connecting",
    "RC": "local resources exhausted (source ports)",
}
# 1st char -> event, with the server's phase refining "S".
EVENT_BY_FIRST = {
    "-": events.REQUEST,
    "C": events.CLIENT_ABORT,
    "c": events.CLIENT_TIMEOUT,
    "S": events.UPSTREAM_ABORT,
    "s": events.UPSTREAM_TIMEOUT,
    "P": events.POLICY_REJECT,
    "L": events.PROXY_LOCAL,
    "R": events.PROXY_RESOURCE,
    "I": events.PROXY_INTERNAL,
    "D": events.UPSTREAM_DOWN,
    "U": events.PROXY_INTERNAL,
    "K": events.PROXY_INTERNAL,
}
EVENT_BY_STATE = {"SC": events.UPSTREAM_REFUSED, "SD": events.UPSTREAM_RESET, "SH": events.UPSTREAM_ABORT}


def termination(state: str) -> tuple[str, str]:
    """(event, meaning) of a termination state's first two characters."""
    two = state[:2]
    event = EVENT_BY_STATE.get(two) or EVENT_BY_FIRST.get(two[:1], events.PROXY_ERROR)
    meaning = STATE_MEANING.get(two)
    if meaning is None:
        meaning = f"{FIRST_CHAR.get(two[:1], 'unknown event')}, {PHASE_CHAR.get(two[1:2], 'unknown phase')}"
    return event, meaning


def _date(m: re.Match[str], opts: Options) -> float | None:
    month = MONTHS.get(m[4])
    if month is None:
        return None
    frac = float("0." + m[9]) if m[9] else 0.0
    return local_epoch(int(m[5]), month, int(m[3]), int(m[6]), int(m[7]), int(m[8]), frac, opts.tz)


def _timers(text: str) -> list[int]:
    return [int(t.lstrip("+")) for t in text.split("/")]


def _payload(
    text: str, start: re.Match[str], opts: Options
) -> tuple[str, dict[str, Any], Any, float | None] | None:
    """(event, fields, 4-tuple, end time) for a payload whose start matched."""
    fields: dict[str, Any] = {
        "client": join_addr(start[1].strip("[]"), start[2]),
        "client_addr": start[1],
        "client_port": int(start[2]),
    }
    accept = _date(start, opts)
    fields["accept_ts"] = accept
    pos = start.end()
    mid = MIDDLE_RE.match(text, pos)
    if not mid:
        err = ERROR_RE.match(text, pos)
        if not err:
            return None
        fields.update(frontend=err[1], bind=err[2], message=err[3])
        low = err[3].lower()
        event = events.TLS_HANDSHAKE_FAILED if "ssl" in low or "handshake" in low else events.PROXY_ERROR
        return event, fields, None, accept
    fields.update(frontend=mid[1], backend=mid[2], server=mid[3])
    if mid[1].endswith("~"):
        fields["ssl"] = True
    timers = _timers(mid[4])
    rest = mid.end()
    if len(timers) == 5:
        m = HTTP_RE.match(text, rest)
        if not m:
            return None
        fields.update(mode="http", TR=timers[0], Tw=timers[1], Tc=timers[2], Tr=timers[3], Ta=timers[4])
        fields.update(status=int(m[1]), bytes=int(m[2]), termination=m[5])
        fields.update(
            actconn=int(m[6]), feconn=int(m[7]), beconn=int(m[8]), srv_conn=int(m[9]), retries=int(m[10])
        )
        tail = m[13]
        total = timers[4]
    elif len(timers) == 3:
        m = TCP_RE.match(text, rest)
        if not m:
            return None
        fields.update(mode="tcp", Tw=timers[0], Tc=timers[1], Tt=timers[2])
        fields.update(bytes=int(m[1]), termination=m[2])
        fields.update(
            actconn=int(m[3]), feconn=int(m[4]), beconn=int(m[5]), srv_conn=int(m[6]), retries=int(m[7])
        )
        tail = m[10]
        total = timers[2]
    else:
        return None
    event, meaning = termination(fields["termination"])
    fields["termination_meaning"] = meaning
    tail = CAPTURES_RE.sub("", tail, count=2)
    req = REQUEST_RE.match(tail)
    if req:
        fields["request"] = req[1]
        tail = tail[req.end() :]
    tuple4 = None
    addrs = [(a.strip("[]"), int(p)) for a, p in ADDR_TOKEN_RE.findall(tail) if int(p) <= 65535]
    if len(addrs) >= 2:
        (bi, bp), (si, sp) = addrs[0], addrs[1]
        fields.update(
            backend_local=join_addr(bi, bp), upstream=join_addr(si, sp), upstream_addr=si, upstream_port=sp
        )
        tuple4 = (bi, bp, si, sp)
    elif len(addrs) == 1:
        fields.update(
            upstream=join_addr(addrs[0][0], addrs[0][1]), upstream_addr=addrs[0][0], upstream_port=addrs[0][1]
        )
    rid = re.search(
        r"\b([0-9A-Fa-f]{32}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})\b",
        tail,
    )
    if rid:
        fields["request_id"] = rid[1].lower()
    if tail.strip():
        fields["extra"] = tail.strip()
    if event == events.REQUEST and fields.get("status") in (502, 503, 504):
        event = events.UPSTREAM_ERROR if fields["status"] != 504 else events.UPSTREAM_TIMEOUT
    end = accept + total / 1000.0 if accept is not None and total >= 0 else accept
    return event, fields, tuple4, end


def _other(message: str) -> tuple[str, dict[str, Any]] | None:
    """Server state changes and 'no server available', which explain 503s and retries."""
    m = SERVER_STATE_RE.search(message)
    if m:
        event = events.UPSTREAM_DOWN if m[3] == "DOWN" else events.UPSTREAM_UP
        return event, {"backend": m[1], "server": m[2], "detail": m[4].strip(" ,.")}
    m = NO_SERVER_RE.search(message)
    if m:
        return events.NO_LIVE_UPSTREAMS, {"backend": m[1]}
    return None


def _custom(message: str) -> tuple[str, dict[str, Any]] | None:
    """A fully custom log-format, read leniently: a termination state and ip:port fields in order.

    Three or more addresses are taken as %ci:%cp ... %bi:%bp %si:%sp (client first, server leg last);
    two as the server leg alone (marked as a guess).
    """
    state = CUSTOM_STATE_RE.search(message)
    addrs = [(a.strip("[]"), int(p)) for a, p in ADDR_TOKEN_RE.findall(message) if int(p) <= 65535]
    if not state or len(addrs) < 2:
        return None
    event, meaning = termination(state[1])
    fields: dict[str, Any] = {"termination": state[1], "termination_meaning": meaning, "custom_format": True}
    if len(addrs) >= 3:
        fields.update(client=join_addr(*addrs[0]), client_addr=addrs[0][0], client_port=addrs[0][1])
    else:
        fields["tuple_guess"] = True
    (bi, bp), (si, sp) = addrs[-2], addrs[-1]
    fields.update(
        backend_local=join_addr(bi, bp), upstream=join_addr(si, sp), upstream_addr=si, upstream_port=sp
    )
    fields["_tuple4"] = (bi, bp, si, sp)
    return event, fields


def payload_record(message: str, opts: Options | None = None) -> tuple[str, dict[str, Any], Any] | None:
    """(event, fields, 4-tuple) for a HAProxy message already split from its syslog header."""
    opts = opts or Options()
    start = START_RE.search(message)
    if start:
        got = _payload(message, start, opts)
        if got:
            return got[0], got[1], got[2]
    other = _other(message)
    return (other[0], other[1], None) if other else None


def parse(lines: Iterable[str], log: ParsedLog, opts: Options) -> ParsedLog:
    log.resolution = 0.001
    for n, line in enumerate(lines, 1):
        log.lines_total += 1
        if not line.strip():
            log.lines_total -= 1
            continue
        start = START_RE.search(line)
        head = parse_header(line[: start.start()] if start else line, opts)
        host = (head.host if head else None) or opts.host
        if start:
            got = _payload(line, start, opts)
            if got is None:
                log.bad(n, "HAProxy payload with unknown fields after the date", line)
                continue
            event, fields, tuple4, end = got
            if head and head.pid is not None:
                fields["pid"] = head.pid
            log.records.append(LogRecord(n, end, line, log.kind, host, event, fields, tuple4))
            continue
        other = _other(line) or _custom(head.message if head else line)
        if other:
            fields = other[1]
            tuple4 = fields.pop("_tuple4", None)
            log.records.append(
                LogRecord(n, head.ts if head else None, line, log.kind, host, other[0], fields, tuple4)
            )
        elif head is not None:
            log.ignored += 1  # startup and other messages
        else:
            log.bad(n, "no HAProxy payload (client ip:port [date]) and no syslog header", line)
    return log
