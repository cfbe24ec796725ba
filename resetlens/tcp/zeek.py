"""Zeek's TCP constants: endpoint states, timeouts, history bits, likely server ports.

Values are those of zeek/zeek `scripts/base/init-bare.zeek` and `src/analyzer/protocol/tcp/TCP_Endpoint.h`
(read at the zeek/zeek repository, 2026), so connection splitting and conn_state match Zeek's conn.log.
"""

from __future__ import annotations

# Endpoint states (Zeek's TCP_ENDPOINT_* enum, same numbering).
INACTIVE = 0  # nothing seen from this endpoint yet
SYN_SENT = 1  # sent a SYN
SYN_ACK_SENT = 2  # sent a SYN-ACK (as originator: an odd start)
PARTIAL = 3  # active, but no SYN seen (midstream)
ESTABLISHED = 4  # handshake seen
CLOSED = 5  # sent a FIN
RESET = 6  # sent a RST

STATE_NAMES = ("INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED", "RESET")

# Timeouts (seconds), scripts/base/init-bare.zeek.
TCP_SYN_TIMEOUT = 5.0  # first ExpireTimer after the connection starts
TCP_SESSION_TIMER = 6.0  # ExpireTimer re-check period
TCP_CONNECTION_LINGER = 5.0  # idle time after a close before ExpireTimer removes the connection
TCP_ATTEMPT_DELAY = 5.0  # an unanswered SYN is given up (S0) after this
TCP_CLOSE_DELAY = 5.0  # a fully closed / reset connection is removed this long after its last packet
TCP_PARTIAL_CLOSE_DELAY = 3.0  # half-closed partial connection removal
TCP_RESET_DELAY = 5.0  # RST after FIN: removal delay
TCP_INACTIVITY_TIMEOUT = 300.0  # idle established connection removal
UDP_INACTIVITY_TIMEOUT = 60.0  # Zeek's TCP adapter starts with this until the handshake completes
TOO_LARGE_SEQ_DELTA = 1048576  # SYN/RST sequence jumps beyond this are not trusted

# History "seen" bits (TCP_Endpoint.h HIST_*); the responder's bits are shifted left by 16.
HIST_SYN_PKT = 0x1
HIST_FIN_PKT = 0x2
HIST_RST_PKT = 0x4
HIST_FIN_RST_PKT = 0x8
HIST_DATA_PKT = 0x10
HIST_ACK_PKT = 0x20
HIST_MULTI_FLAG_PKT = 0x40
HIST_RESP_SHIFT = 16

# Ports Zeek's default analyzers register (Analyzer::register_for_ports -> likely_server_ports); used
# only to pick the originator of a connection whose first packet is not a SYN.
LIKELY_SERVER_PORTS = frozenset(
    {
        20, 21, 22, 23, 25, 53, 69, 80, 81, 88, 110, 111, 123, 135, 137, 139, 143, 161, 162, 179, 389,
        443, 445, 465, 502, 514, 563, 585, 587, 614, 631, 636, 750, 853, 989, 990, 992, 993, 994, 995,
        1080, 1194, 1433, 1434, 1812, 1813, 1883, 2049, 2811, 3128, 3138, 3268, 3306, 3389, 4789, 5060,
        5061, 5222, 5223, 5269, 5353, 5355, 5432, 5671, 5672, 5900, 6379, 6666, 6667, 6668, 6669, 8000,
        8080, 8443, 8888, 9200, 11211, 20000, 27017,
    }
)  # fmt: skip
