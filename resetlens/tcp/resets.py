"""One record per RST segment at one vantage, with the TCP context a verdict needs.

Built from the tracker's state snapshot taken just before the RST (what the receiver expected) and from
the connection's retained packets (the sender's earlier packets as a baseline, and what followed).
`build_record` is the readable reference; `_crecord.c` restates it in C (`build_records` uses it when
built, unless RESETLENS_PURE_PYTHON is set) and tests/test_tcp_crecord.py checks both give equal records.
"""

from __future__ import annotations

import dataclasses
import os
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from operator import itemgetter
from typing import Any

import numpy as np

from resetlens.capture.table import (
    ACK,
    CSUM_BAD,
    CSUM_OK,
    CSUM_UNKNOWN,
    FIN,
    FLAG_TEXTS,
    OPT_MALFORMED,
    OPT_MSS,
    OPT_OTHER,
    OPT_SACK,
    OPT_SACK_OK,
    OPT_TRUNCATED,
    OPT_TS,
    OPT_WSCALE,
    PACKET_DTYPE,
    RESERVED,
    RST,
    SYN,
    field_layout,
    flag_letters,
    halves_to_addr,
)
from resetlens.tcp.conn import seq_delta
from resetlens.tcp.tracker import RstSnapshot
from resetlens.tcp.zeek import STATE_NAMES, TOO_LARGE_SEQ_DELTA

try:
    from resetlens.tcp import _crecord  # type: ignore[attr-defined]
except ImportError:  # not built: build_record makes every record
    _crecord = None

# draft-ietf-tcpm-rst-diagnostic-payload: 0x33AA | reason code (16) | PEN (32), optional vendor data.
DIAG_MAGIC = 0x33AA  # first two payload bytes of a diagnostic RST
DIAG_MIN_LEN = 8  # magic + reason + PEN
# "TCP Failure Causes" initial registry of the draft.
DIAG_REASONS: dict[int, str] = {
    1: "illegal option length",
    2: "desynchronized state",
    3: "new data after CLOSE",
    4: "ABORT",
    5: "unexpected ACK in non-synchronized state",
    6: "unexpected SYN in window",
    7: "security compartment",
    8: "malformed message",
    9: "not authorized",
    10: "resource exceeded",
    11: "network failure",
    12: "reset received from peer",
    13: "destination unreachable",
    14: "connection timeout",
    15: "too much outstanding data",
    16: "unacceptable performance",
    17: "middlebox interference",
}
CAUSE_TEXT_MAX = 256  # characters of an ASCII cause text kept
PRINTABLE_SHARE = 0.8  # share of printable bytes for a payload to count as a cause text
CHALLENGE_ACK_WINDOW = 2.0  # seconds after a RST in which a receiver ACK counts as an RFC 5961 challenge
AFTER_LIST_MAX = 20  # frames listed per "after" category
MAX_SCALED_WINDOW_SHIFT = 14  # RFC 7323 cap, used when scaling was negotiated but the factor is unknown

OPT_NAMES = (
    (OPT_MSS, "mss"),
    (OPT_WSCALE, "wscale"),
    (OPT_SACK_OK, "sack_ok"),
    (OPT_SACK, "sack"),
    (OPT_TS, "ts"),
    (OPT_OTHER, "other"),
    (OPT_MALFORMED, "malformed"),
    (OPT_TRUNCATED, "truncated"),
)
CSUM_NAMES = {0: "unchecked", CSUM_OK: "ok", CSUM_BAD: "bad", CSUM_UNKNOWN: "unknown"}


@cache
def _flag_text(flags: int) -> str:
    return flag_letters(flags)


def option_names(bits: int) -> list[str]:
    return list(_option_names(bits))


@cache
def _option_names(bits: int) -> tuple[str, ...]:  # the option bits take a few hundred values at most
    return tuple(name for bit, name in OPT_NAMES if bits & bit)


@dataclass
class ResetRecord:
    """A RST segment as seen at one vantage, with its TCP context (field docs in Zeek conn.log style)."""

    ## Capture point the RST was read from.
    vantage: str
    ## 1-based frame number of the RST in its capture (as Wireshark counts).
    frame: int
    ## Capture timestamp, on the capture's own clock (seconds since the epoch).
    ts: float
    ## Connection the RST belongs to at this vantage (Connection.uid, "C<n>@<vantage>").
    uid: str
    ## Addresses and ports as written in the RST packet (what the RST claims).
    src: str
    sport: int
    dst: str
    dport: int
    ## Which endpoint of the Zeek connection the RST claims to come from: "orig" or "resp".
    sent_by: str
    ## TCP flags of the RST as letters ("R", "RA", ...).
    flags: str
    ## True for RST+ACK (a reply to a received segment), False for a bare RST.
    rst_ack: bool
    ## Sequence number of the RST (absolute).
    seq: int
    ## Acknowledgement number (absolute) when the ACK flag is set, else None.
    ack: int | None
    ## IPv4 TTL / IPv6 hop limit of the RST.
    ttl: int
    ## IPv4 identification (None for IPv6).
    ip_id: int | None
    ## IPv4 don't-fragment bit.
    df: bool
    ## TCP window field of the RST (unscaled).
    window: int
    ## TCP options present on the RST ("ts", "mss", ...).
    options: list[str]
    ## True when any of the three reserved TCP header bits is set (an injector fingerprint).
    reserved_bits: bool
    ## TCP checksum status: "ok", "bad" (offload or a non-effective RST), "unknown" (truncated), "unchecked".
    checksum: str
    ## RST sequence number against what the receiver expected (RFC 5961): "exact", "in_window", "outside",
    ## "unknown" (nothing seen from the sender and no ACK from the receiver).
    seq_check: str = "unknown"
    ## The sequence number the receiver expected next (its last ACK, else the sender's next sequence).
    expected_seq: int | None = None
    ## seq - expected_seq in 32-bit sequence space (signed).
    seq_offset: int | None = None
    ## The receiver's last advertised window (unscaled window field) and whether scaling was negotiated
    ## (then the factor is unknown and the in-window test uses the largest legal shift).
    receiver_window: int | None = None
    window_scaled: bool = False
    ## For RST+ACK: the ACK number against the receiver's next sequence: "exact", "old" (behind),
    ## "ahead" (acknowledges unsent data), "unknown", or "none" for a bare RST.
    ack_check: str = "none"
    ## The receiver's next sequence number (one past what it had sent), when known.
    expected_ack: int | None = None
    ## Zeek endpoint states of sender and receiver just before the RST.
    sender_state: str = ""
    receiver_state: str = ""
    ## The connection's history before this RST (Zeek letters).
    history_before: str = ""
    ## What preceded the RST in the connection: "nothing", "syn", "handshake", "data", "fin".
    preceded_by: str = "nothing"
    ## The last packets before the RST, oldest first: {frame, from ("sender"|"receiver"), flags, len}.
    last_packets: list[dict[str, Any]] = field(default_factory=list)
    ## Seconds between the connection's previous packet and the RST (None for a first packet).
    idle_before: float | None = None
    ## Earlier packets from the same sender in this connection (the baseline below is built from them).
    baseline_packets: int = 0
    ## Most common TTL of the sender's earlier packets, and RST TTL minus it.
    baseline_ttl: int | None = None
    ttl_delta: int | None = None
    ## IP ID of the sender's previous packet, and RST IP ID minus it (mod 2^16, signed).
    baseline_ip_id: int | None = None
    ip_id_delta: int | None = None
    ## DF bit on the sender's earlier packets (majority), and whether the RST differs.
    baseline_df: bool | None = None
    df_changed: bool = False
    ## Window field of the sender's previous non-RST packet.
    baseline_window: int | None = None
    ## Options on every one of the sender's earlier non-SYN packets, and those of them the RST lacks
    ## (e.g. ["ts"]: the stack used timestamps but the RST has none).
    baseline_options: list[str] = field(default_factory=list)
    missing_options: list[str] = field(default_factory=list)
    ## Payload bytes carried by the RST (as sent) and as captured.
    payload_len: int = 0
    payload_captured: int = 0
    ## Decoded RST diagnostic payload (draft-ietf-tcpm-rst-diagnostic-payload): {reason_code, reason, pen,
    ## vendor_data (hex)} or None.
    diagnostic: dict[str, Any] | None = None
    ## Printable ASCII payload (e.g. F5 "Access Denied" style cause text), or None.
    cause_text: str | None = None
    ## True when an earlier RST from the same sender in this connection had the same seq (a retransmission).
    retransmitted: bool = False
    ## Frames of data segments from the RST's claimed sender after it (Weaver et al. "RST SEQ DATA" race:
    ## the claimed sender kept sending, so it probably did not send the RST).
    sender_data_after: list[int] = field(default_factory=list)
    ## Frames of pure ACKs from the claimed sender after the RST.
    sender_ack_after: list[int] = field(default_factory=list)
    ## Frames of any non-RST packets from the claimed sender after the RST (data, ACKs, SYN-ACK, FIN).
    sender_after: list[int] = field(default_factory=list)
    ## Frame of a pure ACK from the receiver that is the very next packet after a not-exact RST, within
    ## CHALLENGE_ACK_WINDOW seconds (RFC 5961 challenge ACK: the RST was not accepted), or None.
    challenge_ack: int | None = None
    ## Frames of any packets from the receiver after the RST (it did not go away).
    receiver_after: list[int] = field(default_factory=list)
    ## Frames of later RSTs in this connection (either direction).
    more_rsts: list[int] = field(default_factory=list)
    ## Later RSTs from the same sender with a different seq / ack (Weaver "RST SEQ CHANGE"/"RST ACK CHANGE").
    rst_seq_changes: bool = False
    rst_ack_changes: bool = False
    ## Weaver "DATA SEQ RST": the RST's seq lies inside data the sender had already sent.
    seq_inside_sent_data: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (fields hold plain values: a shallow copy of lists and dicts is enough,
        and much cheaper than dataclasses.asdict's deep copy on thousands of resets)."""
        out = dict(self.__dict__)  # the fields, in declaration order (__init__ sets each one, in order)
        if len(out) != len(_FIELD_NAMES):  # an attribute set beside the fields: keep to the fields
            out = {name: out[name] for name in _FIELD_NAMES}
        for name in _LIST_FIELDS:
            out[name] = list(out[name])
        for name in _DICT_LIST_FIELDS:
            out[name] = [dict(x) for x in out[name]]
        for name in _DICT_FIELDS:
            if out[name] is not None:
                out[name] = dict(out[name])
        return out


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(ResetRecord))
# Container fields, by what they hold: to_dict copies each (one level into a list of dicts) so a
# consumer's edit never reaches the record.
_LIST_FIELDS = tuple(
    f.name for f in dataclasses.fields(ResetRecord) if str(f.type) in ("list[int]", "list[str]")
)
_DICT_LIST_FIELDS = tuple(
    f.name for f in dataclasses.fields(ResetRecord) if str(f.type).startswith("list[dict")
)
_DICT_FIELDS = tuple(f.name for f in dataclasses.fields(ResetRecord) if str(f.type).startswith("dict["))
assert len(_LIST_FIELDS + _DICT_LIST_FIELDS + _DICT_FIELDS) == sum(
    "list" in str(f.type) or "dict" in str(f.type) for f in dataclasses.fields(ResetRecord)
), "a container field of a kind to_dict does not copy"


def decode_payload(payload: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(diagnostic, cause_text) from a RST's payload bytes."""
    if len(payload) >= DIAG_MIN_LEN and int.from_bytes(payload[:2], "big") == DIAG_MAGIC:
        code = int.from_bytes(payload[2:4], "big")
        diag = {
            "reason_code": code,
            "reason": DIAG_REASONS.get(code, "unassigned" if code else "unspecified"),
            "pen": int.from_bytes(payload[4:8], "big"),
            "vendor_data": payload[8:].hex() if len(payload) > DIAG_MIN_LEN else "",
        }
        return diag, None
    text = payload.rstrip(b"\x00")
    if not text:
        return None, None
    printable = sum(1 for b in text if 32 <= b < 127 or b in (9, 10, 13))
    if printable / len(text) >= PRINTABLE_SHARE:
        chars = "".join(chr(b) if 32 <= b < 127 else " " for b in text[:CAUSE_TEXT_MAX])
        return None, " ".join(chars.split())
    return None, None


def segment_payload(segment: bytes, captured: int) -> tuple[dict[str, Any] | None, str | None]:
    """decode_payload of the `captured` payload bytes after the TCP header of a raw segment."""
    hlen = (segment[12] >> 4) * 4 if len(segment) > 12 else 20
    return decode_payload(bytes(segment[hlen : hlen + captured]))


def _u16_delta(a: int, b: int) -> int:
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


# The RST row's fields build_record reads, in the order it unpacks them.
RECORD_FIELDS = (
    "frame", "ts", "src_hi", "src_lo", "dst_hi", "dst_lo", "sport", "dport", "flags", "seq", "ack", "ttl", "ip_id",
    "ipver", "df", "window", "opts", "csum", "payload_len", "captured_len",
)  # fmt: skip


@cache
def _row_getter(dtype: np.dtype) -> itemgetter:
    """Picks RECORD_FIELDS, in order, from the item() tuple of a row of this dtype."""
    return itemgetter(*(dtype.names.index(name) for name in RECORD_FIELDS))


def build_record(
    vantage: str,
    snap: RstSnapshot,
    uid: str,
    flow: np.ndarray | None,
    segment: bytes | None,
    cols: dict[str, list] | None = None,
) -> ResetRecord:
    """A ResetRecord from the tracker's snapshot, the connection's retained packets (or their
    flow_columns, shared by the RSTs of one flow) and the raw segment."""
    # One item() of the row instead of ~20 numpy field reads (each costs more than the work done with it).
    (
        frame, ts, src_hi, src_lo, dst_hi, dst_lo, sport, dport, flags, seq, ack_field, ttl, ip_id, ipver, df,
        window, opts, csum, payload_len, captured_len,
    ) = _row_getter(snap.row.dtype)(snap.row.item())  # fmt: skip
    has_ack = bool(flags & ACK)
    ack = ack_field if has_ack else None
    rec = ResetRecord(
        vantage=vantage,
        frame=frame,
        ts=ts,
        uid=uid,
        src=halves_to_addr(src_hi, src_lo),
        sport=sport,
        dst=halves_to_addr(dst_hi, dst_lo),
        dport=dport,
        sent_by="orig" if snap.sent_by_orig else "resp",
        flags=_flag_text(flags),
        rst_ack=has_ack,
        seq=seq,
        ack=ack,
        ttl=ttl,
        ip_id=ip_id if ipver == 4 else None,
        df=bool(df),
        window=window,
        options=option_names(opts),
        reserved_bits=bool(flags & RESERVED),
        checksum=CSUM_NAMES.get(csum, "unchecked"),
        sender_state=STATE_NAMES[snap.sender_state],
        receiver_state=STATE_NAMES[snap.receiver_state],
        history_before=snap.history_before,
        payload_len=payload_len,
        payload_captured=captured_len,
    )
    _sequence(rec, snap, seq, ack)
    rec.preceded_by = _preceded_by(snap.history_before)
    if snap.prev_ts is not None:
        rec.idle_before = max(0.0, rec.ts - snap.prev_ts)
    if segment is not None and rec.payload_captured:
        rec.diagnostic, rec.cause_text = segment_payload(segment, rec.payload_captured)
    if cols is None and flow is not None and len(flow):
        cols = flow_columns(flow)
    if cols is not None:
        _context(rec, (src_hi, src_lo, sport), cols)
    return rec


def _sequence(rec: ResetRecord, snap: RstSnapshot, seq: int, ack: int | None) -> None:
    expected = snap.receiver_ack if snap.receiver_ack is not None else snap.sender_next_seq
    rec.receiver_window = snap.receiver_window
    rec.window_scaled = snap.window_scaled
    if expected is not None:
        rec.expected_seq = expected
        off = seq_delta(seq, expected)
        rec.seq_offset = off
        if off == 0:
            rec.seq_check = "exact"
        elif snap.receiver_window is not None:
            wnd = snap.receiver_window << (MAX_SCALED_WINDOW_SHIFT if snap.window_scaled else 0)
            rec.seq_check = "in_window" if 0 < off < max(wnd, 1) else "outside"
        else:
            rec.seq_check = "outside" if off < 0 else "unknown"
    if snap.sender_next_seq is not None:
        behind = seq_delta(seq, snap.sender_next_seq)
        rec.seq_inside_sent_data = -TOO_LARGE_SEQ_DELTA < behind < 0
    if ack is None:
        rec.ack_check = "none"
    elif snap.receiver_next_seq is None:
        rec.ack_check = "unknown"
    else:
        rec.expected_ack = snap.receiver_next_seq
        d = seq_delta(ack, snap.receiver_next_seq)
        rec.ack_check = "exact" if d == 0 else ("old" if d < 0 else "ahead")


@lru_cache(maxsize=4096)  # connections before a RST share a handful of histories
def _preceded_by(history: str) -> str:
    letters = set(history.replace("^", ""))
    if letters & {"F", "f"}:
        return "fin"
    if letters & {"D", "d"}:
        return "data"
    if letters & {"H", "h", "A", "a"}:
        return "handshake"
    if letters & {"S", "s"}:
        return "syn"
    return "nothing" if not letters else "other"


FLOW_COLUMNS = ("frame", "flags", "payload_len", "ttl", "ip_id", "df", "window", "opts", "seq", "ack", "ts")


def flow_columns(flow: np.ndarray) -> dict[str, list]:
    """The columns _context reads, as Python lists (computed once per flow, shared by its RSTs): a
    context reads a few values per packet of a short flow, where numpy's per-call cost would dominate."""
    cols: dict[str, list] = {name: flow[name].tolist() for name in FLOW_COLUMNS}
    cols["src"] = list(
        zip(flow["src_hi"].tolist(), flow["src_lo"].tolist(), flow["sport"].tolist(), strict=True)
    )
    return cols


def _context(rec: ResetRecord, me: tuple[int, int, int], cols: dict[str, list]) -> None:
    """The RST's place in its flow; `me` is its source (hi, lo, port) as flow_columns' "src" holds it.
    The sender is matched inline (src[k] == me): a per-packet list of the match costs more than the walks."""
    frames, fl, plen, src, seq = cols["frame"], cols["flags"], cols["payload_len"], cols["src"], cols["seq"]
    n = len(frames)
    pos = bisect_left(frames, rec.frame)  # flows are in capture (frame) order
    end = pos + 1 if pos < n and frames[pos] == rec.frame else pos

    rec.last_packets = [
        {
            "frame": frames[k],
            "from": "sender" if src[k] == me else "receiver",
            "flags": _flag_text(fl[k]),
            "len": plen[k],
        }
        for k in range(max(0, pos - 3), pos)
    ]

    # One walk over the sender's earlier packets: its non-RST ones make the baseline (TTLs, DF bits, the
    # options on every non-SYN one, the last one's IP ID and window), an earlier RST with this seq makes
    # this one a retransmission.
    ttl, df, opts = cols["ttl"], cols["df"], cols["opts"]
    n_base = df_set = 0
    last_base = -1
    ttl_counts: dict[int, int] = {}
    common = -1  # option bits on every non-SYN baseline packet
    nonsyn = retransmitted = False
    for k in range(pos):
        if src[k] == me:
            f = fl[k]
            if f & RST:
                if seq[k] == rec.seq:
                    retransmitted = True
                continue
            n_base += 1
            last_base = k
            ttl_counts[ttl[k]] = ttl_counts.get(ttl[k], 0) + 1
            if df[k]:
                df_set += 1
            if not f & SYN:
                nonsyn = True
                common &= opts[k]
    rec.retransmitted = retransmitted
    rec.baseline_packets = n_base
    if n_base:
        # Ties: the first TTL seen, as Counter.most_common.
        rec.baseline_ttl = max(ttl_counts, key=ttl_counts.__getitem__)
        rec.ttl_delta = rec.ttl - rec.baseline_ttl
        if rec.ip_id is not None:
            rec.baseline_ip_id = cols["ip_id"][last_base]
            rec.ip_id_delta = _u16_delta(rec.ip_id, rec.baseline_ip_id)
        rec.baseline_df = df_set * 2 >= n_base
        rec.df_changed = rec.df != rec.baseline_df
        rec.baseline_window = cols["window"][last_base]
        if nonsyn:
            common &= ~(OPT_SACK | OPT_TRUNCATED | OPT_MALFORMED)
            rec.baseline_options = option_names(common)
            rec.missing_options = [name for name in rec.baseline_options if name not in rec.options]

    if end >= n:
        return
    data_after: list[int] = []
    ack_after: list[int] = []
    sent_after: list[int] = []
    recv_after: list[int] = []
    more: list[int] = []
    same: list[int] = []  # later RSTs from the same sender
    for k in range(end, n):
        f = fl[k]
        from_sender = src[k] == me
        if f & RST:
            more.append(frames[k])
            if from_sender:
                same.append(k)
        if from_sender:
            if not f & RST:
                sent_after.append(frames[k])
                if plen[k] > 0:
                    data_after.append(frames[k])
                elif f & ACK and not f & (SYN | FIN):
                    ack_after.append(frames[k])
        else:
            recv_after.append(frames[k])
    rec.sender_data_after = data_after[:AFTER_LIST_MAX]
    rec.sender_ack_after = ack_after[:AFTER_LIST_MAX]
    rec.sender_after = sent_after[:AFTER_LIST_MAX]
    rec.receiver_after = recv_after[:AFTER_LIST_MAX]
    if src[end] != me and rec.seq_check != "exact":
        f = fl[end]
        pure_ack = plen[end] == 0 and not f & (SYN | FIN | RST) and bool(f & ACK)
        if pure_ack and cols["ts"][end] - rec.ts <= CHALLENGE_ACK_WINDOW:
            rec.challenge_ack = frames[end]
    rec.more_rsts = more[:AFTER_LIST_MAX]
    if same:
        rec.rst_seq_changes = any(seq[k] != rec.seq for k in same)
        if rec.ack is not None:
            ack = cols["ack"]
            rec.rst_ack_changes = any(ack[k] != rec.ack for k in same if fl[k] & ACK)


# The C twin of build_record (_crecord.c): off when not built or RESETLENS_PURE_PYTHON is set.
AVAILABLE = _crecord is not None and not os.environ.get("RESETLENS_PURE_PYTHON")


def build_records(
    vantage: str,
    snapshots: list[RstSnapshot],
    flows: dict[str, np.ndarray],
    segments: dict[int, bytes],
    uid: Callable[[int], str],
    compiled: bool | None = None,
) -> list[ResetRecord]:
    """One ResetRecord per RST snapshot, in order. `uid` names a connection index as the tracker does;
    `compiled`: None uses the C builder when AVAILABLE, True requires it, False uses build_record only."""
    if compiled is None:
        compiled = AVAILABLE
    if compiled:
        if _crecord is None:
            raise RuntimeError("the C record builder (resetlens.tcp._crecord) is not built")
        records, punted = _builder().build(vantage, snapshots, flows, segments)
        for i in punted:  # values the C twin does not restate: the reference builds them
            snap = snapshots[i]
            name = uid(snap.conn_idx)
            records[i] = build_record(
                vantage, snap, name, flows.get(name), segments.get(int(snap.row["frame"]))
            )
        return records
    out = []
    cols_of: dict[str, dict[str, list]] = {}
    for snap in snapshots:
        name = uid(snap.conn_idx)
        flow = flows.get(name)
        cols = None
        if flow is not None and len(flow):
            cols = cols_of.get(name)
            if cols is None:
                cols = cols_of[name] = flow_columns(flow)
        frame = int(snap.row["frame"])
        out.append(build_record(vantage, snap, name, flow, segments.get(frame), cols))
    return out


@cache
def _builder() -> Any:
    return _crecord.Builder(*_builder_args())


def _builder_args() -> tuple:
    """The C builder's arguments: the record class and its fields, where RECORD_FIELDS sit in a row, the
    text tables it indexes by raw value (flag letters depend on flags & 0xFF only) and its callbacks."""
    return (
        ResetRecord,
        _FIELD_NAMES,
        field_layout(PACKET_DTYPE, RECORD_FIELDS),
        PACKET_DTYPE.itemsize,
        FLAG_TEXTS,
        tuple(_option_names(bits) for bits in range(256)),
        tuple(CSUM_NAMES.get(c, "unchecked") for c in range(256)),
        tuple(STATE_NAMES),
        halves_to_addr,
        segment_payload,
    )
