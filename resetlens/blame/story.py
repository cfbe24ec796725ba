"""The packet story of one reset at one vantage: what came before it, what it answered, what followed.

Computed from the packets of the reset's connection as captured at one vantage (a flow table in
frame order). Every field is a plain fact the rules in `engine.py` reason over, documented here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from resetlens.capture.table import ACK, FIN, OPT_TS, RST, SYN

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


def tell(
    flow: np.ndarray, rst_frame: int, src_lo: int | None = None, sport: int | None = None
) -> Story | None:
    """The story of the RST with `rst_frame` in `flow` (packets of one connection, frame order).

    When the RST itself is not in this capture, pass its claimed sender (`src_lo`, `sport`) and the
    frame nearest its time: the story then describes the connection around that moment.
    """
    if len(flow) == 0:
        return None
    frames = flow["frame"]
    idx = int(np.searchsorted(frames, rst_frame))
    if idx >= len(flow) or int(frames[idx]) != rst_frame:
        return None
    rst = flow[idx]
    s_lo = int(rst["src_lo"]) if src_lo is None else src_lo
    s_port = int(rst["sport"]) if sport is None else sport
    from_sender = (flow["src_lo"] == s_lo) & (flow["sport"] == s_port)
    flags = flow["flags"]
    before = np.arange(len(flow)) < idx
    after = np.arange(len(flow)) > idx

    syn_only = (flags & (SYN | ACK)) == SYN
    synack = (flags & (SYN | ACK)) == (SYN | ACK)
    syn_rows = np.flatnonzero(syn_only & before)
    if len(syn_rows):
        orig_lo, orig_port = int(flow["src_lo"][syn_rows[0]]), int(flow["sport"][syn_rows[0]])
    else:
        orig_lo, orig_port = int(flow["src_lo"][0]), int(flow["sport"][0])
    sender_is_orig = s_lo == orig_lo and s_port == orig_port

    plen = flow["payload_len"].astype(np.int64)
    s_before = from_sender & before
    p_before = ~from_sender & before
    established = False
    since_handshake = None
    synack_rows = np.flatnonzero(synack & before)
    if len(syn_rows) and len(synack_rows):
        is_orig = (flow["src_lo"] == orig_lo) & (flow["sport"] == orig_port)
        acks = np.flatnonzero(
            is_orig & before & ((flags & (ACK | SYN)) == ACK) & (np.arange(len(flow)) > synack_rows[0])
        )
        if len(acks):
            established = True
            since_handshake = float(rst["ts"] - flow["ts"][acks[0]])

    prev = idx - 1
    gap_before = float(rst["ts"] - flow["ts"][prev]) if prev >= 0 else 0.0

    # What does the RST answer? The peer's last segment shortly before it.
    answers, answered_frame, reply_exact, idle_trigger = "", None, False, 0.0
    peer_rows = np.flatnonzero(p_before)
    if len(peer_rows):
        last = int(peer_rows[-1])
        lp = flow[last]
        if float(rst["ts"] - lp["ts"]) <= REPLY_WINDOW and last == prev:
            lf = int(lp["flags"])
            seg_len = int(lp["payload_len"]) + (1 if lf & SYN else 0) + (1 if lf & FIN else 0)
            if lf & SYN and not lf & ACK:
                answers = "syn"
            elif lf & SYN:
                answers = "synack"
            elif int(lp["payload_len"]) > 0:
                answers = "data"
            elif lf & FIN:
                answers = "fin"
            elif lf & RST:
                answers = ""
            else:
                answers = "ack"
            if answers:
                answered_frame = int(lp["frame"])
                if int(rst["flags"]) & ACK:
                    reply_exact = int(rst["ack"]) == (int(lp["seq"]) + seg_len) & 0xFFFFFFFF
                else:
                    reply_exact = bool(lf & ACK) and int(rst["seq"]) == int(lp["ack"])
                idle_trigger = float(lp["ts"] - flow["ts"][last - 1]) if last > 0 else 0.0

    data_peer = np.flatnonzero(p_before & (plen > 0))
    since_req = float(rst["ts"] - flow["ts"][data_peer[-1]]) if len(data_peer) else None
    first_head = int(flow["head"][data_peer[0]]) if len(data_peer) else 0
    data_sender = np.flatnonzero(s_before & (plen > 0))
    fins = np.flatnonzero(s_before & ((flags & FIN) != 0))
    fin_delay = None
    if len(fins) and len(data_sender) and data_sender[-1] < fins[0]:
        fin_delay = float(flow["ts"][fins[0]] - flow["ts"][data_sender[-1]])
    sender_head = int(flow["head"][data_sender[0]]) if len(data_sender) else 0

    s_rows = np.flatnonzero(s_before & ((flags & RST) == 0))
    ttl_base = None
    if len(s_rows):
        vals, counts = np.unique(flow["ttl"][s_rows], return_counts=True)
        ttl_base = int(vals[np.argmax(counts)])
    ipid_prev = int(flow["ip_id"][s_rows[-1]]) if len(s_rows) else None
    used_ts = bool(len(s_rows) and np.all((flow["opts"][s_rows] & OPT_TS) != 0))

    s_after = np.flatnonzero(from_sender & after & ((flags & RST) == 0))
    s_data_after = np.flatnonzero(from_sender & after & (plen > 0) & ((flags & RST) == 0))
    p_after = np.flatnonzero(~from_sender & after)
    p_data_after = np.flatnonzero(~from_sender & after & (plen > 0) & ((flags & RST) == 0))
    burst = np.flatnonzero(from_sender & ((flags & RST) != 0) & (np.abs(flow["ts"] - rst["ts"]) <= 1.0))
    seq_changes = len(np.unique(flow["seq"][burst])) > 1 if len(burst) > 1 else False

    return Story(
        rst_index=idx,
        sender_is_orig=sender_is_orig,
        rst_ack=bool(int(rst["flags"]) & ACK),
        syn_seen=bool(len(syn_rows)),
        synack_seen=bool(len(synack_rows)),
        established=established,
        sender_data_before=int(plen[s_before].sum()),
        peer_data_before=int(plen[p_before].sum()),
        sender_fin_before=bool(np.any(s_before & ((flags & FIN) != 0))),
        peer_fin_before=bool(np.any(p_before & ((flags & FIN) != 0))),
        sender_rst_before=bool(np.any(s_before & ((flags & RST) != 0))),
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
        sender_after=[int(f) for f in flow["frame"][s_after][:20]],
        sender_data_after=[int(f) for f in flow["frame"][s_data_after][:20]],
        peer_after=[int(f) for f in flow["frame"][p_after][:20]],
        peer_data_after=[int(f) for f in flow["frame"][p_data_after][:20]],
        rst_burst=len(burst),
        burst_seq_changes=bool(seq_changes),
        rst_ts=float(rst["ts"]),
        packets=len(flow),
    )
