"""The packet story of one reset at one vantage: what came before it, what it answered, what followed.

Computed from the packets of the reset's connection as captured at one vantage (a flow table in
frame order). Every field is a plain fact the rules in `engine.py` reason over, documented here.

`tell_python` is the readable reference; `_cstory.c` restates it in C (tests/test_blame_cstory.py checks
both give identical stories). `tell` is the compiled one unless the extension was not built or
RESETLENS_PURE_PYTHON is set (`AVAILABLE`).
"""

from __future__ import annotations

import os
from bisect import bisect_left
from dataclasses import dataclass, field, fields

import numpy as np

from resetlens.capture.table import ACK, FIN, OPT_TS, PACKET_DTYPE, RST, SYN, field_layout

try:
    from resetlens.blame import _cstory  # type: ignore[attr-defined]
except ImportError:  # not built: tell_python is used
    _cstory = None

# A segment the RST answers arrived at most this long before it (kernel replies take microseconds;
# at a vantage far from the sender add the path's round trip).
REPLY_WINDOW = 0.25
# A gap before the RST at least this long makes the RST "after idle".
IDLE_GAP = 0.5
# First payload bytes of a TLS handshake record (content type 22, version major 3).
TLS_HANDSHAKE_HEAD = 0x1603
# What HTTP requests start with (4 bytes, big-endian), for "answered a request" facts.
HTTP_HEADS = {
    int.from_bytes(m, "big") for m in (b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC")
}
# Frames kept in each of a story's "after the RST" lists.
AFTER_CAP = 20
# RSTs from one sender at most this many seconds apart belong to one burst.
BURST_WINDOW = 1.0


@dataclass
class Story:
    """Facts about one RST in its connection at one vantage (times on that capture's clock)."""

    rst_index: int  # index of the RST row in the flow
    sender_is_orig: bool  # the RST's source is the connection's originator (first SYN / first packet)
    rst_ack: bool  # RST carries ACK (RST+ACK: an active reset from a socket, or a reply to a SYN)
    syn_seen: bool  # the originator's SYN is in the capture
    synack_seen: bool  # the responder's SYN-ACK is in the capture
    established: bool  # a handshake completed (SYN, SYN-ACK, then an ACK from the originator)
    sender_data_before: int  # payload bytes the RST's sender sent before it
    peer_data_before: int  # payload bytes its peer sent before it
    sender_fin_before: bool  # the sender had sent FIN before (it had closed)
    peer_fin_before: bool  # the peer had sent FIN before
    sender_rst_before: bool  # the sender had already sent a RST on this connection
    answers: str  # what the RST replies to: "syn", "data", "fin", "ack", "synack", "" (spontaneous)
    answered_frame: int | None  # frame of the segment it answers
    reply_exact: bool  # seq/ack equal what a kernel reply to that segment carries
    gap_before: float  # seconds since the previous packet of the connection (either direction)
    peer_idle_before_trigger: float  # seconds the connection was idle before the answered segment
    since_handshake: float | None  # seconds from the originator's handshake ACK to the RST
    since_peer_request: float | None  # seconds from the peer's last data to the RST
    peer_first_head: int  # first 4 payload bytes the peer sent (0 if none)
    peer_sent_tls_hello: bool  # the peer's first payload is a TLS handshake record
    peer_sent_http: bool  # the peer's first payload starts like an HTTP request
    sender_first_head: int  # first 4 payload bytes the sender sent (0 if none)
    sender_fin_delay: float | None  # seconds from the sender's last data to its FIN (how long it waited)
    sender_ttl_baseline: int | None  # most common TTL of the sender's earlier packets here
    sender_ipid_prev: int | None  # IP ID of the sender's last packet before the RST
    sender_used_ts: bool  # the sender's earlier packets carried TCP timestamps
    sender_after: list[int] = field(default_factory=list)  # frames the sender sent after the RST (race)
    sender_data_after: list[int] = field(default_factory=list)  # of those, frames carrying data
    peer_after: list[int] = field(default_factory=list)  # frames the peer sent after the RST
    peer_data_after: list[int] = field(default_factory=list)  # of those, frames carrying data
    rst_burst: int = 1  # RSTs from the same sender within 1 s, this one included
    burst_seq_changes: bool = False  # those RSTs carry different sequence numbers
    rst_ts: float = 0.0
    packets: int = 0


def round_timeout(seconds: float | None) -> bool:
    """A wait that ends on a configured timer: at least 0.5 s and within 15 ms of a multiple of 0.5 s."""
    if seconds is None or seconds < 0.5:
        return False
    return abs(seconds - round(seconds * 2) / 2) <= 0.015


def is_tls_record(head: int) -> bool:
    """First payload bytes of a TLS record: content type 20-23, version major 3."""
    return 20 <= (head >> 24) <= 23 and ((head >> 16) & 0xFF) == 3


class _Columns:
    """A flow's columns as Python lists: a story reads ~20 values per packet of a short flow, where
    numpy's per-call overhead would cost more than the work (thousands of resets per capture)."""

    __slots__ = (
        "ack",
        "flags",
        "flow",
        "frame",
        "head",
        "ip_id",
        "opts",
        "plen",
        "rst_rows",
        "seq",
        "sport",
        "src_lo",
        "ts",
        "ttl",
    )

    def __init__(self, flow: np.ndarray) -> None:
        self.flow = flow  # keeps the array alive while its id() keys the cache
        self.frame = flow["frame"].tolist()
        self.ts = flow["ts"].tolist()
        self.src_lo = flow["src_lo"].tolist()
        self.sport = flow["sport"].tolist()
        self.flags = flow["flags"].tolist()
        self.plen = flow["payload_len"].tolist()
        self.head = flow["head"].tolist()
        self.ttl = flow["ttl"].tolist()
        self.ip_id = flow["ip_id"].tolist()
        self.opts = flow["opts"].tolist()
        self.seq = flow["seq"].tolist()
        self.ack = flow["ack"].tolist()
        self.rst_rows = [i for i, f in enumerate(self.flags) if f & RST]  # a flow has few: bursts scan these


_COLUMNS: dict[int, _Columns] = {}
_COLUMNS_MAX = 4096  # flows whose columns are remembered (a reset's story is told at each vantage)


def _columns(flow: np.ndarray) -> _Columns:
    got = _COLUMNS.get(id(flow))
    if got is None or got.flow is not flow:
        if len(_COLUMNS) >= _COLUMNS_MAX:
            _COLUMNS.clear()
        got = _COLUMNS[id(flow)] = _Columns(flow)
    return got


def tell_python(
    flow: np.ndarray, rst_frame: int, src_lo: int | None = None, sport: int | None = None
) -> Story | None:
    """The story of the RST with `rst_frame` in `flow` (packets of one connection, frame order).

    When the RST itself is not in this capture, pass its claimed sender (`src_lo`, `sport`) and the
    frame nearest its time: the story then describes the connection around that moment.
    """
    n = len(flow)
    if n == 0:
        return None
    c = _columns(flow)
    idx = bisect_left(c.frame, rst_frame)
    if idx >= n or c.frame[idx] != rst_frame:
        return None
    ts, slo, spt, fl, pl = c.ts, c.src_lo, c.sport, c.flags, c.plen
    s_lo = slo[idx] if src_lo is None else src_lo
    s_port = spt[idx] if sport is None else sport
    rst_ts, rst_fl = ts[idx], fl[idx]
    ttl, opts = c.ttl, c.opts

    # One walk over the packets before the RST: the handshake's SYNs, what each side sent, and the
    # sender's non-RST packets (its TTLs, last IP ID, timestamps). The sender is matched inline: a
    # per-packet list of the match would cost more than the walks that read it.
    first_syn = first_synack = -1
    s_data = p_data = 0
    s_fin = p_fin = s_rst = False
    last_peer = first_peer_data = last_peer_data = first_s_data = last_s_data = first_s_fin = -1
    last_s_row = -1  # the sender's last non-RST packet
    ttl_counts: dict[int, int] = {}  # TTL -> the sender's non-RST packets with it
    all_ts = True  # every one of them carried TCP timestamps
    for i in range(idx):
        f, p = fl[i], pl[i]
        if f & SYN:
            if not f & ACK:
                if first_syn < 0:
                    first_syn = i
            elif first_synack < 0:
                first_synack = i
        if slo[i] == s_lo and spt[i] == s_port:
            s_data += p
            if f & FIN:
                s_fin = True
                if first_s_fin < 0:
                    first_s_fin = i
            if f & RST:
                s_rst = True
            else:
                last_s_row = i
                ttl_counts[ttl[i]] = ttl_counts.get(ttl[i], 0) + 1
                if not opts[i] & OPT_TS:
                    all_ts = False
            if p > 0:
                if first_s_data < 0:
                    first_s_data = i
                last_s_data = i
        else:
            p_data += p
            if f & FIN:
                p_fin = True
            last_peer = i
            if p > 0:
                if first_peer_data < 0:
                    first_peer_data = i
                last_peer_data = i
    o = first_syn if first_syn >= 0 else 0
    orig_lo, orig_port = slo[o], spt[o]
    sender_is_orig = s_lo == orig_lo and s_port == orig_port

    established = False
    since_handshake = None
    if first_syn >= 0 and first_synack >= 0:
        for i in range(first_synack + 1, idx):
            if slo[i] == orig_lo and spt[i] == orig_port and fl[i] & (ACK | SYN) == ACK:
                established = True
                since_handshake = rst_ts - ts[i]
                break

    gap_before = rst_ts - ts[idx - 1] if idx > 0 else 0.0

    # What does the RST answer? The peer's last segment shortly before it.
    answers, answered_frame, reply_exact, idle_trigger = "", None, False, 0.0
    if last_peer >= 0:
        last = last_peer
        if rst_ts - ts[last] <= REPLY_WINDOW and last == idx - 1:
            lf = fl[last]
            seg_len = pl[last] + (1 if lf & SYN else 0) + (1 if lf & FIN else 0)
            if lf & SYN and not lf & ACK:
                answers = "syn"
            elif lf & SYN:
                answers = "synack"
            elif pl[last] > 0:
                answers = "data"
            elif lf & FIN:
                answers = "fin"
            elif lf & RST:
                answers = ""
            else:
                answers = "ack"
            if answers:
                answered_frame = c.frame[last]
                if rst_fl & ACK:
                    reply_exact = c.ack[idx] == (c.seq[last] + seg_len) & 0xFFFFFFFF
                else:
                    reply_exact = bool(lf & ACK) and c.seq[idx] == c.ack[last]
                idle_trigger = ts[last] - ts[last - 1] if last > 0 else 0.0

    since_req = rst_ts - ts[last_peer_data] if last_peer_data >= 0 else None
    first_head = c.head[first_peer_data] if first_peer_data >= 0 else 0
    fin_delay = None
    if first_s_fin >= 0 and last_s_data >= 0 and last_s_data < first_s_fin:
        fin_delay = ts[first_s_fin] - ts[last_s_data]
    sender_head = c.head[first_s_data] if first_s_data >= 0 else 0

    ttl_base = None
    if len(ttl_counts) == 1:  # the usual case: one TTL
        ttl_base = next(iter(ttl_counts))
    elif ttl_counts:
        top = max(ttl_counts.values())
        ttl_base = min(
            t for t, k in ttl_counts.items() if k == top
        )  # ties: the lowest TTL, as np.unique + argmax
    ipid_prev = c.ip_id[last_s_row] if last_s_row >= 0 else None
    used_ts = last_s_row >= 0 and all_ts

    s_after: list[int] = []
    s_data_after: list[int] = []
    p_after: list[int] = []
    p_data_after: list[int] = []
    for i in range(idx + 1, n):
        f = fl[i]
        if slo[i] == s_lo and spt[i] == s_port:
            if not f & RST:
                s_after.append(c.frame[i])
                if pl[i] > 0:
                    s_data_after.append(c.frame[i])
        else:
            p_after.append(c.frame[i])
            if pl[i] > 0 and not f & RST:
                p_data_after.append(c.frame[i])
    burst = [
        i for i in c.rst_rows if slo[i] == s_lo and spt[i] == s_port and abs(ts[i] - rst_ts) <= BURST_WINDOW
    ]
    seq_changes = len({c.seq[i] for i in burst}) > 1 if len(burst) > 1 else False

    return Story(
        rst_index=idx,
        sender_is_orig=sender_is_orig,
        rst_ack=bool(rst_fl & ACK),
        syn_seen=first_syn >= 0,
        synack_seen=first_synack >= 0,
        established=established,
        sender_data_before=s_data,
        peer_data_before=p_data,
        sender_fin_before=s_fin,
        peer_fin_before=p_fin,
        sender_rst_before=s_rst,
        answers=answers,
        answered_frame=answered_frame,
        reply_exact=reply_exact,
        gap_before=gap_before,
        peer_idle_before_trigger=idle_trigger,
        since_handshake=since_handshake,
        since_peer_request=since_req,
        peer_first_head=first_head,
        peer_sent_tls_hello=(first_head >> 16) == TLS_HANDSHAKE_HEAD,
        peer_sent_http=first_head in HTTP_HEADS,
        sender_first_head=sender_head,
        sender_fin_delay=fin_delay,
        sender_ttl_baseline=ttl_base,
        sender_ipid_prev=ipid_prev,
        sender_used_ts=used_ts,
        sender_after=s_after[:AFTER_CAP],
        sender_data_after=s_data_after[:AFTER_CAP],
        peer_after=p_after[:AFTER_CAP],
        peer_data_after=p_data_after[:AFTER_CAP],
        rst_burst=len(burst),
        burst_seq_changes=bool(seq_changes),
        rst_ts=rst_ts,
        packets=n,
    )


# Packet-table fields the C story reads, in the order of its layout tuple (offset, size per field).
C_FIELDS = (
    "frame", "ts", "src_lo", "sport", "flags", "payload_len", "head", "ttl", "ip_id", "opts", "seq", "ack",
)  # fmt: skip


def _configure_c() -> None:
    """Hand the C story the table layout, the Story class and this module's constants."""
    if hasattr(Story, "__post_init__"):  # the C story sets the fields itself: __init__ never runs
        raise TypeError("the C story cannot make a Story with __post_init__: update _cstory.c")
    _cstory.configure(
        field_layout(PACKET_DTYPE, C_FIELDS),
        PACKET_DTYPE.itemsize,
        PACKET_DTYPE,
        Story,
        tuple(f.name for f in fields(Story)),
        REPLY_WINDOW,
        TLS_HANDSHAKE_HEAD,
        tuple(sorted(HTTP_HEADS)),
        AFTER_CAP,
        BURST_WINDOW,
        tell_python,  # anything the C story does not take (another dtype, a numpy integer) goes here
    )


if _cstory is not None:
    _configure_c()
AVAILABLE = _cstory is not None and not os.environ.get("RESETLENS_PURE_PYTHON")
tell = _cstory.tell if AVAILABLE else tell_python
