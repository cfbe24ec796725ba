"""The catalog of events a log line can state, read by correlation and the blame engine.

Modelled on pyflakes' messages: one small declaration per event, with its meaning. `signal` says
what the line implies on the wire, `side` which peer it is about (as seen by the writer of the log).
"""

from __future__ import annotations

from typing import NamedTuple


class Event(NamedTuple):
    code: str
    meaning: str
    signal: str  # rst | fin | rst_or_fin | timeout | refused | policy | tls | lifecycle | host | info
    side: str  # upstream | client | proxy | peer | host | unit | self (the writer of the line acted)


EVENTS: dict[str, Event] = {}


def _event(code: str, meaning: str, signal: str, side: str) -> str:
    EVENTS[code] = Event(code, meaning, signal, side)
    return code


# -- proxies: the upstream (server) leg --------------------------------------------------------
UPSTREAM_RESET = _event(
    "upstream_reset", "the upstream reset the connection (RST received by the proxy)", "rst", "upstream"
)
UPSTREAM_FIN = _event(
    "upstream_fin",
    "the upstream closed the connection (FIN) before or during the response",
    "fin",
    "upstream",
)
UPSTREAM_ABORT = _event(
    "upstream_abort",
    "the upstream aborted or closed the connection; the log does not say FIN or RST",
    "rst_or_fin",
    "upstream",
)
UPSTREAM_TIMEOUT = _event(
    "upstream_timeout",
    "the proxy gave up waiting for the upstream and closed its side",
    "timeout",
    "upstream",
)
UPSTREAM_REFUSED = _event(
    "upstream_refused", "the upstream refused the connection (RST to SYN, or ICMP)", "refused", "upstream"
)
UPSTREAM_CONNECT_FAILED = _event(
    "upstream_connect_failed",
    "connecting to the upstream failed (RST to SYN, timeout or TLS)",
    "refused",
    "upstream",
)
UPSTREAM_UNREACHABLE = _event(
    "upstream_unreachable",
    "the upstream was unreachable (ICMP host/network unreachable)",
    "refused",
    "upstream",
)
UPSTREAM_DOWN = _event("upstream_down", "the proxy considered the upstream server down", "info", "upstream")
UPSTREAM_UP = _event("upstream_up", "the proxy considered the upstream server up again", "info", "upstream")
NO_LIVE_UPSTREAMS = _event(
    "no_live_upstreams", "every upstream peer had failed; the proxy answered 502 itself", "policy", "upstream"
)
UPSTREAM_ERROR = _event(
    "upstream_error",
    "the proxy answered 502/503 for the upstream; its error log says why",
    "rst_or_fin",
    "upstream",
)
# -- proxies: the client (downstream) leg ------------------------------------------------------
CLIENT_ABORT = _event(
    "client_abort",
    "the client closed the connection before the response was complete (FIN, or RST not stated)",
    "rst_or_fin",
    "client",
)
CLIENT_RESET = _event(
    "client_reset", "the client reset the connection (RST received by the proxy)", "rst", "client"
)
CLIENT_TIMEOUT = _event(
    "client_timeout", "the proxy gave up waiting for the client and closed its side", "timeout", "client"
)
CLIENT_CLOSED_IDLE = _event(
    "client_closed_idle", "the client closed an idle connection before sending a request", "fin", "client"
)
# -- proxies: their own decisions --------------------------------------------------------------
PROXY_TIMEOUT = _event(
    "proxy_timeout", "the proxy enforced an idle, stream or duration timeout", "timeout", "proxy"
)
PROXY_RESET = _event("proxy_reset", "the proxy reset the connection itself", "rst", "proxy")
PROXY_RESOURCE = _event(
    "proxy_resource",
    "the proxy ran out of a local resource (source ports, memory, connection slots)",
    "policy",
    "proxy",
)
PROXY_INTERNAL = _event(
    "proxy_internal", "the proxy hit an internal error or an admin kill", "rst_or_fin", "proxy"
)
PROXY_LOCAL = _event("proxy_local", "the proxy answered locally (redirect, return, applet)", "info", "proxy")
POLICY_REJECT = _event(
    "policy_reject",
    "a proxy or firewall rule rejected the request or connection (limit, ACL, size, rate)",
    "policy",
    "proxy",
)
PROTOCOL_ERROR = _event(
    "protocol_error",
    "a peer broke the HTTP protocol and the proxy closed the connection",
    "rst_or_fin",
    "peer",
)
TLS_HANDSHAKE_FAILED = _event(
    "tls_handshake_failed",
    "the TLS handshake failed (peer closed or reset it, or a protocol/SNI mismatch)",
    "tls",
    "peer",
)
REQUEST = _event("request", "a request completed normally", "info", "proxy")
PROXY_ERROR = _event("proxy_error", "the proxy logged an error not about a connection close", "info", "proxy")
# -- systemd unit lifecycle (PID 1 and systemd-oomd) -------------------------------------------
UNIT_STARTING = _event("unit_starting", "systemd began starting the unit", "lifecycle", "unit")
UNIT_STARTED = _event("unit_started", "systemd finished starting the unit", "lifecycle", "unit")
UNIT_STOPPING = _event(
    "unit_stopping", "systemd began stopping the unit (its sockets close soon after)", "lifecycle", "unit"
)
UNIT_STOPPED = _event("unit_stopped", "systemd finished stopping the unit", "lifecycle", "unit")
UNIT_START_FAILED = _event("unit_start_failed", "systemd failed to start the unit", "lifecycle", "unit")
UNIT_EXITED = _event(
    "unit_exited", "the unit's main process exited (code, status or signal in fields)", "lifecycle", "unit"
)
UNIT_FAILED = _event(
    "unit_failed", "the unit entered the failed state (result in fields)", "lifecycle", "unit"
)
UNIT_RESTART_SCHEDULED = _event(
    "unit_restart_scheduled", "systemd scheduled a restart of the unit", "lifecycle", "unit"
)
UNIT_OOM = _event("unit_oom", "a process of the unit was killed by the OOM killer", "lifecycle", "unit")
OOMD_KILL = _event("oomd_kill", "systemd-oomd killed a cgroup under memory pressure", "lifecycle", "unit")
# -- kernel ------------------------------------------------------------------------------------
OOM_KILL = _event(
    "oom_kill",
    "the kernel OOM killer killed a process (its sockets were closed by the kernel)",
    "lifecycle",
    "host",
)
SYN_FLOOD = _event(
    "syn_flood", "the kernel saw a SYN flood on a listening port (cookies or dropped SYNs)", "host", "host"
)
CONNTRACK_FULL = _event(
    "conntrack_full",
    "the conntrack table was full; new flows were dropped (timeouts, not RSTs)",
    "host",
    "host",
)
FIREWALL_LOG = _event(
    "firewall_log",
    "a firewall LOG rule matched a packet (a reject rule sends a policy RST)",
    "policy",
    "host",
)
ORPHAN_SOCKETS = _event(
    "orphan_sockets", "too many orphaned sockets: the kernel reset connections to free them", "rst", "host"
)
TCP_MEM_PRESSURE = _event(
    "tcp_mem_pressure", "TCP memory exhausted (tcp_mem): the kernel reset connections", "rst", "host"
)
# -- applications and clients ------------------------------------------------------------------
APP_RST_RECEIVED = _event(
    "app_rst_received", "the program received a RST (connection reset by peer)", "rst", "peer"
)
APP_FIN_RECEIVED = _event(
    "app_fin_received",
    "the peer closed the connection (FIN/EOF) where the program expected data",
    "fin",
    "peer",
)
APP_BROKEN_PIPE = _event(
    "app_broken_pipe", "the program wrote after the peer had reset or closed (EPIPE)", "rst", "peer"
)
APP_REFUSED = _event("app_refused", "the connection attempt was refused (RST to SYN)", "refused", "peer")
APP_TLS_RESET = _event(
    "app_tls_reset", "the connection was reset or closed during the TLS handshake", "tls", "peer"
)
APP_CONN_LOST = _event(
    "app_conn_lost",
    "the program lost the connection; the message does not say FIN or RST",
    "rst_or_fin",
    "peer",
)
APP_RESET_SENT = _event(
    "app_reset_sent",
    "the writer of the line reset the connection itself (SO_LINGER 0, close with unread data, an IPS/DPI saying it sent RSTs)",
    "rst",
    "self",
)
APP_IDLE_CLOSE = _event(
    "app_idle_close",
    "the writer of the line closed an idle (keep-alive) connection: a FIN; a late request on it gets an RST",
    "fin",
    "self",
)
# -- host snapshots (snapshots.py) -------------------------------------------------------------
LISTEN_OVERFLOW = _event(
    "listen_overflow",
    "accept queues overflowed between the snapshots (ListenOverflows/ListenDrops)",
    "host",
    "host",
)
ABORT_COUNTERS = _event(
    "abort_counters",
    "the kernel aborted connections between the snapshots (TcpExtTCPAbortOn*)",
    "rst",
    "host",
)
RST_COUNTERS = _event("rst_counters", "the host sent RSTs between the snapshots (TcpOutRsts)", "rst", "host")
ABORT_ON_OVERFLOW = _event(
    "abort_on_overflow",
    "net.ipv4.tcp_abort_on_overflow=1: a full accept queue answers with RST",
    "host",
    "host",
)
NFT_REJECT_RULE = _event("nft_reject_rule", "an nftables rule rejects with tcp reset", "policy", "host")
CONNTRACK_PRESSURE = _event(
    "conntrack_pressure", "conntrack count near its max, or drops/insert failures counted", "host", "host"
)
LINK_DROPS = _event("link_drops", "an interface dropped packets between the snapshots", "host", "host")
SOCKET_OWNER = _event("socket_owner", "the process that owned the connection's socket (ss)", "info", "host")

# Application error classes (the brief's words) -> event codes.
APP_CLASSES = {
    "rst_received": APP_RST_RECEIVED,
    "fin_received": APP_FIN_RECEIVED,
    "broken_pipe": APP_BROKEN_PIPE,
    "refused": APP_REFUSED,
    "tls_reset": APP_TLS_RESET,
    "conn_lost": APP_CONN_LOST,
    "reset_sent": APP_RESET_SENT,
    "idle_close": APP_IDLE_CLOSE,
}

# Events about a unit or the host that explain resets a short while after them.
LIFECYCLE = frozenset(code for code, e in EVENTS.items() if e.signal == "lifecycle")


def meaning(code: str) -> str:
    e = EVENTS.get(code)
    return e.meaning if e else ""
