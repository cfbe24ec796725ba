"""Envoy access logs: the default text format, custom `%OPERATOR%` formats, and json_format lines.

Default (docs/root/configuration/observability/access_log/usage.rst):
    [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
    %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%
    "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"
Fields appended after the default ones are read leniently (addresses, details, detected close types).
The event comes first from the detected close types (who sent the RST on each leg), then from
%RESPONSE_CODE_DETAILS%, then from %RESPONSE_FLAGS%, then from the status.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from resetlens.evidence import events
from resetlens.evidence.base import (
    ISO_RE,
    LogRecord,
    Options,
    ParsedLog,
    iso_epoch,
    join_addr,
    parse_addr,
    to_int,
)
from resetlens.evidence.template import compile_template

DEFAULT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% '
    "%RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "
    '"%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"'
)
# A command operator: %NAME%, %NAME(arg)%, %NAME(arg):len%.
OPERATOR_RE = re.compile(r"%([A-Z][A-Z0-9_]*(?:\([^)%]*\))?(?::\d+)?)%")
# Operators whose value names a request header -> field name.
HEADER_FIELDS = {
    ":METHOD": "method",
    "X-ENVOY-ORIGINAL-PATH?:PATH": "path",
    ":PATH": "path",
    ":AUTHORITY": "authority",
    "X-REQUEST-ID": "request_id",
    "X-FORWARDED-FOR": "x_forwarded_for",
    "USER-AGENT": "user_agent",
    "X-ENVOY-UPSTREAM-SERVICE-TIME": "upstream_service_time",
}

# %RESPONSE_FLAGS% (source/common/stream_info/utility.h): flag -> (event, meaning).
FLAGS: dict[str, tuple[str, str]] = {
    "UR": (events.UPSTREAM_RESET, "upstream remote reset"),
    "UC": (events.UPSTREAM_ABORT, "upstream connection termination"),
    "UF": (events.UPSTREAM_CONNECT_FAILED, "upstream connection failure"),
    "URX": (events.UPSTREAM_CONNECT_FAILED, "upstream retry limit or max connect attempts reached"),
    "LR": (events.PROXY_RESET, "connection local reset"),
    "UT": (events.UPSTREAM_TIMEOUT, "upstream request timeout"),
    "DC": (events.CLIENT_ABORT, "downstream connection termination"),
    "DR": (events.CLIENT_RESET, "downstream remote reset (RST_STREAM)"),
    "SI": (events.PROXY_TIMEOUT, "stream idle timeout"),
    "DT": (events.PROXY_TIMEOUT, "max connection duration reached"),
    "UMSDR": (events.PROXY_TIMEOUT, "max stream duration reached"),
    "UH": (events.NO_LIVE_UPSTREAMS, "no healthy upstream hosts"),
    "UO": (events.POLICY_REJECT, "upstream overflow (circuit breaker)"),
    "NR": (events.POLICY_REJECT, "no route configured"),
    "NC": (events.POLICY_REJECT, "upstream cluster not found"),
    "RL": (events.POLICY_REJECT, "rate limited"),
    "RLSE": (events.POLICY_REJECT, "rate limit service error"),
    "UAEX": (events.POLICY_REJECT, "denied by the external authorization service"),
    "LH": (events.POLICY_REJECT, "local service failed health check"),
    "IH": (events.POLICY_REJECT, "rejected for invalid header values (strict check)"),
    "OM": (events.POLICY_REJECT, "overload manager terminated the request"),
    "DO": (events.POLICY_REJECT, "dropped by drop_overloads"),
    "UDO": (events.POLICY_REJECT, "dropped by drop_overloads (100%)"),
    "DF": (events.UPSTREAM_CONNECT_FAILED, "DNS resolution failed"),
    "DPE": (events.PROTOCOL_ERROR, "downstream HTTP protocol error"),
    "UPE": (events.PROTOCOL_ERROR, "upstream HTTP protocol error"),
    "DI": (events.REQUEST, "delayed by fault injection"),
    "FI": (events.POLICY_REJECT, "aborted by fault injection"),
    "RFCF": (events.REQUEST, "response from cache filter"),
    "NFCF": (events.POLICY_REJECT, "no filter config found"),
}
# The order in which flags decide the event when several are set (most specific wire event first).
FLAG_PRIORITY = ("UR", "DR", "UC", "UF", "LR", "UT", "DC", "SI", "DT", "UMSDR", "UH", "DPE", "UPE")

# %RESPONSE_CODE_DETAILS%: upstream_reset_{before,after}_response_started{<reason>}.
RESET_DETAIL_RE = re.compile(r"upstream_reset_(before|after)_response_started\{([^}]*)\}")
# <reason> (Http::Utility::resetReasonToString, spaces -> _) -> event.
RESET_REASONS = {
    "remote_reset": events.UPSTREAM_RESET,
    "remote_refused_stream_reset": events.UPSTREAM_RESET,
    "connection_termination": events.UPSTREAM_ABORT,
    "local_reset": events.PROXY_RESET,
    "connection_timeout": events.UPSTREAM_CONNECT_FAILED,
    "local_connection_failure": events.UPSTREAM_CONNECT_FAILED,
    "remote_connection_failure": events.UPSTREAM_CONNECT_FAILED,
    "overflow": events.POLICY_REJECT,
    "overload_manager_reset": events.POLICY_REJECT,
    "protocol_error": events.PROTOCOL_ERROR,
}
# Other details -> event.
DETAILS = {
    "downstream_remote_disconnect": events.CLIENT_ABORT,
    "response_timeout": events.UPSTREAM_TIMEOUT,
    "upstream_per_try_timeout": events.UPSTREAM_TIMEOUT,
    "upstream_per_try_idle_timeout": events.UPSTREAM_TIMEOUT,
    "stream_idle_timeout": events.PROXY_TIMEOUT,
    "duration_timeout": events.PROXY_TIMEOUT,
    "no_healthy_upstream": events.NO_LIVE_UPSTREAMS,
    "overload": events.POLICY_REJECT,
    "drop_overload": events.POLICY_REJECT,
    "http2.remote_reset": events.CLIENT_RESET,
    "http2.remote_refuse": events.CLIENT_RESET,
}
# %CONNECTION_TERMINATION_DETAILS% (LocalCloseReasonValues) -> event.
TERMINATION_DETAILS = {
    "on_idle_timeout": events.PROXY_TIMEOUT,
    "http2_ping_timeout": events.PROXY_TIMEOUT,
    "transport_socket_timeout": events.PROXY_TIMEOUT,
    "max_connection_duration_reached": events.PROXY_TIMEOUT,
    "tcp_session_idle_timeout": events.PROXY_TIMEOUT,
    "http2_connection_protocol_violation": events.PROTOCOL_ERROR,
    "closing_upstream_tcp_connection_due_to_downstream_remote_close": events.CLIENT_ABORT,
    "closing_upstream_tcp_connection_due_to_downstream_reset_close": events.CLIENT_RESET,
    "closing_upstream_tcp_connection_due_to_downstream_local_close": events.PROXY_INTERNAL,
}
# %{UPSTREAM,DOWNSTREAM}_DETECTED_CLOSE_TYPE% values.
CLOSE_TYPES = ("Normal", "LocalReset", "RemoteReset")
# ip:port tokens in a lenient tail.
ADDR_TOKEN_RE = re.compile(r"(?<![\w:.\[])(\[[0-9A-Fa-f:.]+\]|\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})\b")
# JSON keys (lower case, any of these spellings) -> field name.
JSON_KEYS = {
    "start_time": "start_time",
    "response_code": "response_code",
    "response_flags": "response_flags",
    "response_code_details": "response_code_details",
    "connection_termination_details": "connection_termination_details",
    "upstream_host": "upstream_host",
    "upstream_local_address": "upstream_local_address",
    "upstream_remote_address": "upstream_remote_address",
    "downstream_remote_address": "downstream_remote_address",
    "downstream_direct_remote_address": "downstream_direct_remote_address",
    "downstream_local_address": "downstream_local_address",
    "duration": "duration",
    "x_request_id": "request_id",
    "request_id": "request_id",
    "x-request-id": "request_id",
    "upstream_transport_failure_reason": "upstream_transport_failure_reason",
    "upstream_detected_close_type": "upstream_detected_close_type",
    "downstream_detected_close_type": "downstream_detected_close_type",
    "connection_id": "connection_id",
    "upstream_connection_id": "upstream_connection_id",
    "method": "method",
    "path": "path",
    "authority": "authority",
    "protocol": "protocol",
}


def field_name(operator: str) -> str:
    """%REQ(X-REQUEST-ID)% -> request_id; %UPSTREAM_HOST% -> upstream_host."""
    m = re.fullmatch(r"(REQ|RESP|TRAILER)\(([^)]*)\)(?::\d+)?", operator)
    if m:
        return HEADER_FIELDS.get(m[2].upper(), m[2].lower().replace("-", "_").lstrip(":"))
    return re.sub(r"\(.*", "", operator).lower()


def compile_format(fmt: str | None) -> tuple[re.Pattern[str], dict[str, str]]:
    return compile_template(fmt or DEFAULT, OPERATOR_RE)


def classify(fields: dict[str, Any]) -> str:
    """The event of one access-log entry from its close types, details, flags and status."""
    up = fields.get("upstream_detected_close_type")
    down = fields.get("downstream_detected_close_type")
    if up == "RemoteReset":
        return events.UPSTREAM_RESET
    if down == "RemoteReset":
        return events.CLIENT_RESET
    if "LocalReset" in (up, down):
        return events.PROXY_RESET
    details = str(fields.get("response_code_details") or "")
    m = RESET_DETAIL_RE.search(details)
    if m:
        reason = m[2]
        if "refused" in reason.lower():
            return events.UPSTREAM_REFUSED
        for key, event in RESET_REASONS.items():
            if reason.startswith(key):
                return event
        return events.UPSTREAM_ABORT
    for key, event in DETAILS.items():
        if details == key or details.startswith(key + "(") or details.startswith(key + "{"):
            return event
    if details.startswith("downstream_local_disconnect"):
        return events.PROXY_TIMEOUT if "timeout" in details else events.PROXY_INTERNAL
    term = str(fields.get("connection_termination_details") or "")
    if term in TERMINATION_DETAILS:
        return TERMINATION_DETAILS[term]
    flags = fields.get("response_flags") or []
    for flag in FLAG_PRIORITY:
        if flag in flags:
            return FLAGS[flag][0]
    for flag in flags:
        if flag in FLAGS:
            return FLAGS[flag][0]
    code = fields.get("response_code")
    if code == 0:
        return events.CLIENT_ABORT  # the server never sent the beginning of a response
    return events.REQUEST


def _finish(n: int, line: str, fields: dict[str, Any], tail: str, kind: str, opts: Options) -> LogRecord:
    """Normalise the fields, read the lenient tail, classify, and build the record."""
    for key in list(fields):
        if fields[key] in ("-", "", None):
            del fields[key]
    flags = fields.get("response_flags")
    if isinstance(flags, str):
        fields["response_flags"] = [f for f in flags.split(",") if f and f != "-"]
        fields["response_flag_meanings"] = [FLAGS[f][1] for f in fields["response_flags"] if f in FLAGS]
    for key in ("response_code", "bytes_received", "bytes_sent", "duration"):
        if key in fields and not isinstance(fields[key], int):
            fields[key] = to_int(str(fields[key]))
    if "request_id" in fields:
        fields["request_id"] = str(fields["request_id"]).lower()
    if tail:
        for token in tail.replace('"', " ").split():
            if token in CLOSE_TYPES:
                key = (
                    "upstream_detected_close_type"
                    if "downstream_detected_close_type" in fields
                    or "upstream_detected_close_type" not in fields
                    else "downstream_detected_close_type"
                )
                fields.setdefault(key, token)
            elif token.startswith(("upstream_reset_", "downstream_")) or token in DETAILS:
                fields.setdefault("response_code_details", token)
            elif token in TERMINATION_DETAILS:
                fields.setdefault("connection_termination_details", token)
        addrs = [join_addr(a.strip("[]"), p) for a, p in ADDR_TOKEN_RE.findall(tail)]
        if addrs:
            fields["tail_addresses"] = addrs
            fields.setdefault("downstream_remote_address", addrs[0])
            if len(addrs) >= 2:
                fields.setdefault("upstream_local_address", addrs[1])
        fields["extra"] = tail.strip()
    if "response_code" in fields and fields["response_code"] is not None:
        fields["status"] = fields["response_code"]
    tuples = []
    up = parse_addr(str(fields.get("upstream_host") or fields.get("upstream_remote_address") or ""))
    if up:
        fields["upstream_addr"], fields["upstream_port"] = up
        fields["upstream"] = join_addr(up[0], up[1])
        ul = parse_addr(str(fields.get("upstream_local_address") or ""))
        if ul:
            tuples.append((ul[0], ul[1], up[0], up[1]))
    down = parse_addr(
        str(fields.get("downstream_direct_remote_address") or fields.get("downstream_remote_address") or "")
    )
    if down:
        fields["client"] = join_addr(down[0], down[1])
        fields["client_addr"], fields["client_port"] = down
        dl = parse_addr(str(fields.get("downstream_local_address") or ""))
        if dl:
            tuples.append((down[0], down[1], dl[0], dl[1]))
    event = classify(fields)
    side = events.EVENTS[event].side if event in events.EVENTS else ""
    tuple4 = None
    if tuples:
        fields["tuples"] = tuples
        tuple4 = tuples[-1] if side == "client" and len(tuples) > 1 else tuples[0]
    ts = None
    start = fields.get("start_time")
    if isinstance(start, str):
        m = ISO_RE.match(start)
        if m:
            ts = iso_epoch(m, opts.tz)
        elif re.fullmatch(r"\d{9,11}(?:\.\d+)?", start):
            ts = float(start)
    if ts is not None:
        fields["start_ts"] = ts
        if isinstance(fields.get("duration"), int):
            ts += fields["duration"] / 1000.0  # the log is written at the end
    return LogRecord(n, ts, line, kind, opts.host, event, fields, tuple4)


def parse(lines: Iterable[str], log: ParsedLog, opts: Options) -> ParsedLog:
    log.resolution = 0.001
    regex, groups = compile_format(opts.fmt)
    lenient = re.compile(regex.pattern[: -len(r"\s*$")] + r"(?P<tail>.*)$")
    for n, line in enumerate(lines, 1):
        log.lines_total += 1
        s = line.strip()
        if not s:
            log.lines_total -= 1
            continue
        if s.startswith("{"):
            try:
                obj = json.loads(s)
            except (ValueError, RecursionError):
                obj = None
            if isinstance(obj, dict):
                fields = {}
                for k, v in obj.items():
                    name = JSON_KEYS.get(str(k).lower())
                    if name and isinstance(v, (str, int, float)):
                        fields[name] = v
                if "start_time" not in fields and "response_code" not in fields:
                    log.bad(n, "JSON line without start_time or response_code", line)
                    continue
                if isinstance(fields.get("response_code"), float):
                    fields["response_code"] = int(fields["response_code"])
                log.records.append(_finish(n, line, fields, "", log.kind, opts))
                continue
        m = regex.match(line)
        tail = ""
        if not m:
            m = lenient.match(line)
            if not m:
                log.bad(n, "does not match the Envoy access-log format", line)
                continue
            tail = m["tail"]
        fields = {field_name(groups[g]): v for g, v in m.groupdict().items() if g in groups and v is not None}
        log.records.append(_finish(n, line, fields, tail, log.kind, opts))
    return log
