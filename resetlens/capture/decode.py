"""Vectorised decoding of link, IP and TCP headers for a block of records.

The record walk (pure Python or the C accelerator) only finds where each frame's bytes start; this
module then gathers every header field for all frames of a block at once with numpy fancy indexing.
Every gather is clipped to the buffer and every field is guarded by a "was it captured" mask, so
hostile bytes can produce wrong rows but never an exception. When the C accelerator is built,
`_cwalk.decode` applies the same rules frame by frame and writes the table rows directly; the tests
require both to give identical tables. `pcap_block` and `pcapng_run` go one step further: the record
walk and the decode of a whole block in one C call, every column of the rows filled.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import as_strided

from resetlens.capture import linktypes as lt
from resetlens.capture import walk
from resetlens.capture.formats import DEFAULT_TSRESOL as DEFAULT_TICKS
from resetlens.capture.table import (
    CSUM_BAD,
    CSUM_OK,
    CSUM_UNKNOWN,
    DIR_IN,
    DIR_OUT,
    OPT_MALFORMED,
    OPT_MSS,
    OPT_OTHER,
    OPT_SACK,
    OPT_SACK_OK,
    OPT_TRUNCATED,
    OPT_TS,
    OPT_WSCALE,
    PACKET_DTYPE,
    RST,
    V4_MAPPED_PREFIX,
)

ETH_IPV4 = 0x0800  # EtherType IPv4
ETH_IPV6 = 0x86DD  # EtherType IPv6
ETH_VLAN_TPIDS = np.array([0x8100, 0x88A8, 0x9100], dtype=np.int64)  # 802.1Q, 802.1ad, old QinQ
ETH_PPPOE_SESSION = 0x8864  # PPPoE session stage: 6-byte header + 2-byte PPP protocol
ETH_MPLS = (0x8847, 0x8848)  # MPLS unicast / multicast label stacks
PPP_IPV4 = 0x0021  # PPP protocol number for IPv4
PPP_IPV6 = 0x0057  # PPP protocol number for IPv6
MAX_VLAN_TAGS = 4  # tag stacks deeper than this are not followed
MAX_MPLS_LABELS = 8  # label stacks deeper than this are not followed
MAX_IPV6_EXT = 8  # extension headers followed before giving up

IPPROTO_HOPOPTS = 0  # IPv6 hop-by-hop options
IPPROTO_IPIP = 4  # IPv4 in IP
IPPROTO_TCP = 6  # TCP
IPPROTO_UDP = 17  # UDP
IPPROTO_IPV6 = 41  # IPv6 in IP (6in4, 6to4)
IPPROTO_GRE = 47  # generic routing encapsulation
IPPROTO_ROUTING = 43  # IPv6 routing header
IPPROTO_FRAGMENT = 44  # IPv6 fragment header
IPPROTO_AH = 51  # authentication header (length in 4-byte units, minus 2)
IPPROTO_DSTOPTS = 60  # IPv6 destination options
IPV6_EXT = np.array([IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_AH, IPPROTO_DSTOPTS])

AF_INET = 2  # address family value for IPv4 in NULL/LOOP headers (every BSD)
AF_INET6_VALUES = np.array([10, 24, 28, 30], dtype=np.int64)  # Linux, NetBSD/OpenBSD, FreeBSD, macOS

VXLAN_PORT = 4789  # IANA VXLAN port (AWS traffic mirroring, overlay networks): Ethernet inside
GRE_ETHERNET = 0x6558  # GRE protocol type of transparent Ethernet bridging
GRE_UNSUPPORTED = 0x4007  # GRE routing-present bit and version bits (version 1 is PPTP)
TCP_FIXED = 16  # bytes of TCP header needed for a row: ports, seq, ack, offset/flags, window
TCP_MIN_HDR = 20  # a TCP header without options

_BYTES = {n: np.arange(n, dtype=np.int64) for n in (2, 4, 8)}


class Rows:
    """The same W bytes at many offsets (one row each), read as big-endian fields by byte position."""

    def __init__(self, raw: np.ndarray) -> None:
        self.raw = raw

    def u8(self, at: int) -> np.ndarray:
        return self.raw[:, at].astype(np.int64)

    def u16(self, at: int) -> np.ndarray:
        return self.raw.view(">u2")[:, at >> 1].astype(np.int64)  # at must be even

    def u32(self, at: int) -> np.ndarray:
        return self.raw.view(">u4")[:, at >> 2].astype(np.int64)  # at must be a multiple of 4

    def u64(self, at: int) -> np.ndarray:
        return self.raw.view(">u8")[:, at >> 3].astype(np.uint64)  # at must be a multiple of 8


class Gather:
    """Clipped big-endian multi-byte reads at many offsets of one uint8 buffer."""

    def __init__(self, buf: np.ndarray) -> None:
        self.buf = buf
        self.last = len(buf) - 8  # highest start offset for an 8-byte read
        self._windows: dict[int, np.ndarray] = {}

    def rows(self, idx: np.ndarray, width: int) -> Rows:
        """width bytes at each offset in one gather (a strided window view, then row indexing)."""
        win = self._windows.get(width)
        if win is None:
            n = len(self.buf) - width + 1
            win = as_strided(self.buf, shape=(n, width), strides=(1, 1), writeable=False)
            self._windows[width] = win
        return Rows(win[np.minimum(idx, len(win) - 1)])

    def u8(self, idx: np.ndarray) -> np.ndarray:
        return self.buf[np.minimum(idx, self.last)].astype(np.int64)

    def be(self, idx: np.ndarray, width: int) -> np.ndarray:
        at = np.minimum(idx, self.last)[:, None] + _BYTES[width]
        raw = self.buf[at]
        if width == 8:
            return raw.view(">u8").ravel().astype(np.uint64)
        return raw.view(">u2" if width == 2 else ">u4").ravel().astype(np.int64)

    def le(self, idx: np.ndarray, width: int) -> np.ndarray:
        at = np.minimum(idx, self.last)[:, None] + _BYTES[width]
        return self.buf[at].view("<u2" if width == 2 else "<u4").ravel().astype(np.int64)


@dataclass
class Decoded:
    """TCP rows of one block: `rec` indexes the block's records; the rest are table columns."""

    rec: np.ndarray
    cols: dict[str, np.ndarray]
    segments: dict[int, bytes]  # record index -> TCP header + captured payload, RST rows only
    fragments_skipped: int = 0
    first_fragment: int = -1  # record index of the first skipped fragment
    direction: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))  # per record
    ifindex: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))  # per record
    table: np.ndarray | None = None  # the C decoder fills table rows directly (cols is then empty)


# Fields the C decoder writes, in the order of its F_* enum.
C_FIELDS = (
    "ipver", "src_hi", "src_lo", "dst_hi", "dst_lo", "sport", "dport", "flags", "seq", "ack", "window",
    "ttl", "ip_id", "df", "payload_len", "captured_len", "opts", "tsval", "head", "direction", "ifindex",
)  # fmt: skip


def _c_layout() -> tuple[int, ...] | None:
    """(offset, size) per C field, or None when the C decoder cannot write this table layout."""
    if sys.byteorder != "little":
        return None
    layout: list[int] = []
    for name in C_FIELDS:
        if name not in PACKET_DTYPE.fields:
            return None
        dtype, offset = PACKET_DTYPE.fields[name][:2]
        if dtype.kind not in "ub" or dtype.byteorder == ">" or dtype.itemsize > 8:
            return None
        layout += [offset, dtype.itemsize]
    return tuple(layout)


C_LAYOUT = _c_layout()

# The record's own fields that `_cwalk.pcap_block` writes as well, in the order of its F_FRAME.. enum.
PCAP_FIELDS = ("frame", "offset", "ts", "iface", "csum")


def _pcap_layout() -> tuple[int, ...] | None:
    """C_LAYOUT plus the record fields, or None when pcap_block cannot write every column itself."""
    if C_LAYOUT is None or set(PACKET_DTYPE.names) != set(C_FIELDS + PCAP_FIELDS):
        return None
    layout = list(C_LAYOUT)
    for name in PCAP_FIELDS:
        dtype, offset = PACKET_DTYPE.fields[name][:2]
        if dtype.byteorder == ">" or dtype.kind not in ("uf" if name == "ts" else "u"):
            return None
        if name == "ts" and dtype.itemsize != 8:
            return None
        layout += [offset, dtype.itemsize]
    return tuple(layout)


PCAP_LAYOUT = _pcap_layout()


@dataclass
class PcapBlock:
    """Records walked and decoded by one C call: a classic pcap buffer, or a pcapng run of EPBs."""

    table: np.ndarray  # the TCP rows, every column filled
    segments: dict[int, bytes]  # frame -> TCP header + captured payload, RST rows only
    consumed: int  # first byte not consumed (the next record, incomplete or absurd)
    absurd: bool  # the record at `consumed` has a caplen above the limit
    packets: int  # records walked (all frames)
    fragments_skipped: int
    first_fragment: int  # stream offset of the first skipped fragment's record, -1 for none
    first_ts: float  # lowest and highest record timestamp (meaningful when packets > 0)
    last_ts: float
    final_ts: float = float("nan")  # the last record's timestamp
    unknown: np.ndarray | None = None  # (link type, stream offset) rows of undecodable records


PCAP_BLOCK = True  # use the fused walk + decode (pcap_block, pcapng_run) when available (tests compare)


def use_pcap_block(enabled: bool) -> bool:
    """Switch the fused walk + decode paths on or off (tests compare them with walk + decode_block)."""
    global PCAP_BLOCK
    previous, PCAP_BLOCK = PCAP_BLOCK, bool(enabled)
    return previous


def pcap_block_available() -> bool:
    """The fused classic pcap walk + decode can be used (C built, enabled, table layout writable)."""
    return PCAP_BLOCK and walk.ACCELERATED and PCAP_LAYOUT is not None and hasattr(walk._cwalk, "pcapng_run")


def pcap_block(
    buf: bytearray,
    limit: int,
    hdr: int,
    maxcap: int,
    little: bool,
    scale: float,
    linktype: int,
    base: int,
    first_frame: int,
) -> PcapBlock:
    """Walk the complete records of buf[:limit] (as walk_pcap) and decode them (as decode_block).

    `base` is the stream offset of buf[0] (the `offset` column); frames are numbered from first_frame.
    """
    rows, n, consumed, absurd, packets, frags, first_frag, lo, hi, segments = walk._cwalk.pcap_block(
        buf,
        limit,
        hdr,
        maxcap,
        little,
        scale,
        linktype,
        base,
        first_frame,
        PACKET_DTYPE.itemsize,
        PCAP_LAYOUT,
    )
    table = np.frombuffer(rows, PACKET_DTYPE, n) if n else np.zeros(0, PACKET_DTYPE)
    return PcapBlock(table, segments, consumed, absurd, packets, frags, first_frag, lo, hi)


STOP_PACKET = 3  # pcapng_run stopped at an SPB or PB, or at any packet block before an IDB: walk on in Python
STOP_CHECK = 4  # pcapng_run stopped at an EPB whose trailing length or caplen is impossible


def pcapng_run(
    buf: bytearray,
    start: int,
    limit: int,
    little: bool,
    ifaces: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    section: tuple[int, int],
    base: int,
    first_frame: int,
) -> tuple[PcapBlock, int]:
    """The enhanced packet blocks from buf[start] up to the first other block -> (rows, walk.STOP_*).

    ifaces: link type, ticks per second, if_tsoffset and "link type decoded" of every interface so far;
    section: (global id of the section's interface 0, the section's interface count).
    """
    rows, n, at, stop, packets, frags, first_frag, lo, hi, last, segments, unknown = walk._cwalk.pcapng_run(
        buf,
        start,
        limit,
        little,
        *ifaces,
        *section,
        DEFAULT_TICKS,
        base,
        first_frame,
        PACKET_DTYPE.itemsize,
        PCAP_LAYOUT,
    )
    table = np.frombuffer(rows, PACKET_DTYPE, n) if n else np.zeros(0, PACKET_DTYPE)
    pairs = np.frombuffer(unknown, np.int64).reshape(-1, 2)
    block = PcapBlock(table, segments, at, False, packets, frags, first_frag, lo, hi, last, pairs)
    return block, stop


def decode_block(
    buf: np.ndarray, data: np.ndarray, caplen: np.ndarray, wirelen: np.ndarray, linktype: np.ndarray
) -> Decoded:
    """Decode the frames whose bytes are buf[data[i] : data[i] + caplen[i]] (linktype per frame)."""
    if walk.ACCELERATED and C_LAYOUT is not None and hasattr(walk._cwalk, "decode"):
        return _decode_c(buf, data, caplen, wirelen, linktype)
    g = Gather(buf)
    n = len(data)
    data = data.astype(np.int64)
    end = data + caplen.astype(np.int64)
    wend = data + np.maximum(wirelen.astype(np.int64), caplen.astype(np.int64))
    l3 = np.zeros(n, np.int64)
    kind = np.zeros(n, np.int64)
    direction = np.zeros(n, np.uint8)
    ifindex = np.zeros(n, np.uint32)
    linktype = np.asarray(linktype)
    present = np.unique(linktype) if n else []
    for code in present:
        sel = np.flatnonzero(linktype == code) if len(present) > 1 else np.arange(n)
        _link(g, int(code), sel, data, end, l3, kind, direction, ifindex)
    state = _Frags()
    rows = _ip(g, np.arange(n, dtype=np.int64), l3, kind, end, wend, state, depth=0)
    rec, cols, segments = _tcp(g, rows)
    return Decoded(rec, cols, segments, state.nonfirst, state.first, direction, ifindex)


def _decode_c(buf, data, caplen, wirelen, linktype) -> Decoded:
    """The same decode in C (`_cwalk.decode`): rows are written straight into the table."""
    n = len(data)
    table = np.zeros(n, PACKET_DTYPE)
    args = [np.ascontiguousarray(a, np.int64) for a in (data, caplen, wirelen, linktype)]
    rows, rec_raw, rst_raw, frags, first = walk._cwalk.decode(
        buf, *args, table, PACKET_DTYPE.itemsize, C_LAYOUT
    )
    table = table[:rows] if rows * 10 >= n * 9 else table[:rows].copy()  # do not pin unused rows
    rec = np.frombuffer(rec_raw, np.int64)
    segments: dict[int, bytes] = {}
    if rst_raw:
        csum = table["csum"]
        for row, start, stop, tcp_len in np.frombuffer(rst_raw, np.int64).reshape(-1, 4).tolist():
            segment = buf[start:stop].tobytes()
            segments[int(rec[row])] = segment
            r = table[row]
            addrs = (int(r["src_hi"]), int(r["src_lo"]), int(r["dst_hi"]), int(r["dst_lo"]))
            csum[row] = tcp_checksum_status(int(r["ipver"]), addrs, segment, tcp_len)
    return Decoded(rec, {}, segments, int(frags), int(first), table=table)


def _link(g, code, sel, data, end, l3, kind, direction, ifindex) -> None:
    d = data[sel]
    e = end[sel]
    if code == lt.LT_ETHERNET:
        ok = d + 14 <= e
        et, at = _ethertype(g, g.rows(d, 16).u16(12), d + 14, e)
    elif code == lt.LT_SLL:
        ok = d + 16 <= e
        head = g.rows(d, 16)
        et, at = _ethertype(g, head.u16(14), d + 16, e)
        direction[sel] = _sll_direction(head.u16(0)) * ok
    elif code == lt.LT_SLL2:
        ok = d + 20 <= e
        head = g.rows(d, 16)
        et, at = _ethertype(g, head.u16(0), d + 20, e)
        direction[sel] = _sll_direction(head.u8(10)) * ok
        ifindex[sel] = np.where(ok, head.u32(4), 0)
    elif code == lt.LT_FDDI:
        # frame control (1) + two MACs (12), then 802.2 LLC/SNAP: AA AA 03 OUI(3) EtherType(2)
        ok = (d + 21 <= e) & (g.be(d + 13, 2) == 0xAAAA) & (g.u8(d + 15) == 3)
        et, at = _ethertype(g, g.be(d + 19, 2), d + 21, e)
    elif code in (lt.LT_NULL, lt.LT_LOOP):
        ok = d + 4 <= e
        fam_le = g.le(d, 4)
        fam_be = g.be(d, 4)
        v4 = (fam_le == AF_INET) | (fam_be == AF_INET)
        v6 = np.isin(fam_le, AF_INET6_VALUES) | np.isin(fam_be, AF_INET6_VALUES)
        l3[sel] = d + 4
        kind[sel] = np.where(ok & v4, 4, np.where(ok & v6, 6, 0))
        return
    elif code in (lt.LT_RAW, lt.LT_RAW_12, lt.LT_RAW_14, lt.LT_IPV4, lt.LT_IPV6):
        ver = g.u8(d) >> 4
        ok = d + 1 <= e
        if code == lt.LT_IPV4:
            ok &= ver == 4
        elif code == lt.LT_IPV6:
            ok &= ver == 6
        l3[sel] = d
        kind[sel] = np.where(ok & ((ver == 4) | (ver == 6)), ver, 0)
        return
    else:
        return  # unknown link type: the reader counts these frames and warns
    l3[sel] = at
    kind[sel] = np.where(ok & (et == ETH_IPV4), 4, np.where(ok & (et == ETH_IPV6), 6, 0))


def _sll_direction(pkttype: np.ndarray) -> np.ndarray:
    """SLL packet type: 0-3 = to us / broadcast / multicast / other host (in), 4 = outgoing."""
    return np.where(pkttype == 4, DIR_OUT, np.where(pkttype <= 3, DIR_IN, 0)).astype(np.uint8)


def _ethertype(g: Gather, et: np.ndarray, at: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Follow VLAN tags, 802.3 LLC/SNAP, PPPoE and MPLS to the EtherType of the network layer."""
    for _ in range(MAX_VLAN_TAGS):
        tagged = np.flatnonzero(np.isin(et, ETH_VLAN_TPIDS) & (at + 4 <= e))
        if not len(tagged):
            break
        et[tagged] = g.be(at[tagged] + 2, 2)
        at[tagged] += 4
    llc = np.flatnonzero((et <= 1500) & (at + 8 <= e))
    if len(llc):
        snap = llc[(g.be(at[llc], 2) == 0xAAAA) & (g.u8(at[llc] + 2) == 3)]
        et[snap] = g.be(at[snap] + 6, 2)
        at[snap] += 8
    pppoe = np.flatnonzero((et == ETH_PPPOE_SESSION) & (at + 8 <= e))
    if len(pppoe):
        proto = g.be(at[pppoe] + 6, 2)
        et[pppoe] = np.where(proto == PPP_IPV4, ETH_IPV4, np.where(proto == PPP_IPV6, ETH_IPV6, 0))
        at[pppoe] += 8
    mpls = np.flatnonzero(np.isin(et, ETH_MPLS))
    if len(mpls):
        _mpls(g, et, at, e, mpls)
    return et, at


def _mpls(g: Gather, et: np.ndarray, at: np.ndarray, e: np.ndarray, rows: np.ndarray) -> None:
    """Skip MPLS labels to the bottom of the stack; the payload's version nibble names the protocol."""
    et[rows] = 0
    for _ in range(MAX_MPLS_LABELS):
        rows = rows[at[rows] + 4 <= e[rows]]
        if not len(rows):
            return
        bottom = (g.u8(at[rows] + 2) & 1) == 1
        at[rows] += 4
        done = rows[bottom]
        ver = g.u8(at[done]) >> 4
        et[done] = np.where(ver == 4, ETH_IPV4, np.where(ver == 6, ETH_IPV6, 0))
        rows = rows[~bottom]


class _Frags:
    """Counts non-first fragments, which carry no TCP header and are skipped."""

    def __init__(self) -> None:
        self.nonfirst = 0
        self.first = -1  # lowest record index among them

    def note(self, recs: np.ndarray) -> None:
        if len(recs):
            self.nonfirst += len(recs)
            low = int(recs.min())
            self.first = low if self.first < 0 else min(self.first, low)


def _ip(g, rec, l3, kind, end, wend, frags: _Frags, depth: int) -> dict[str, np.ndarray]:
    """IPv4 and IPv6 headers of the given records; returns one dict of columns per IP packet found."""
    parts = []
    r4 = np.flatnonzero(kind == 4)
    if len(r4):
        parts.append(_ipv4(g, rec[r4], l3[r4], end[r4], wend[r4], frags))
    r6 = np.flatnonzero(kind == 6)
    if len(r6):
        parts.append(_ipv6(g, rec[r6], l3[r6], end[r6], wend[r6], frags))
    rows = _concat(parts)
    if depth == 0 and len(rows["rec"]):
        inner = _tunnels(g, rows)
        if inner is not None:
            rows = _concat([rows, _ip(g, *inner, frags, depth=1)])
    return rows


def _ipv4(g, rec, o, e, w, frags: _Frags) -> dict[str, np.ndarray]:
    h = g.rows(o, 24)
    vihl = h.u8(0)
    ihl = (vihl & 0x0F) * 4
    total = h.u16(2)
    total = np.where(total == 0, w - o, total)  # TSO/offload captures write 0; Wireshark uses the frame
    ok = (o + 20 <= e) & (vihl >> 4 == 4) & (ihl >= 20) & (o + ihl <= e) & (total >= ihl)
    frag = h.u16(6)
    nonfirst = ok & ((frag & 0x1FFF) != 0)
    frags.note(rec[nonfirst])
    k = np.flatnonzero(ok & ~nonfirst)
    if len(k) == len(o):
        k = slice(None)
    o = o[k]
    return {
        "rec": rec[k],
        "ipver": np.full(len(o), 4, np.int64),
        "src_hi": np.zeros(len(o), np.uint64),
        "src_lo": h.u32(12)[k].astype(np.uint64) | np.uint64(V4_MAPPED_PREFIX),
        "dst_hi": np.zeros(len(o), np.uint64),
        "dst_lo": h.u32(16)[k].astype(np.uint64) | np.uint64(V4_MAPPED_PREFIX),
        "ttl": h.u8(8)[k],
        "ip_id": h.u16(4)[k],
        "df": (frag[k] & 0x4000) != 0,
        "proto": h.u8(9)[k],
        "l3": o,
        "l4": o + ihl[k],
        "l4end": o + total[k],
        "end": e[k],
    }


def _ipv6(g, rec, o, e, w, frags: _Frags) -> dict[str, np.ndarray]:
    h = g.rows(o, 40)
    ok = (o + 40 <= e) & (h.u8(0) >> 4 == 6)
    plen = h.u16(4)
    plen = np.where(plen == 0, np.maximum(w - o - 40, 0), plen)  # jumbogram or offload: use the frame
    nh = h.u8(6)
    at = o + 40
    frag_id = np.zeros(len(o), np.int64)
    for _ in range(MAX_IPV6_EXT):
        t = np.flatnonzero(ok & np.isin(nh, IPV6_EXT) & (at + 8 <= e))
        if not len(t):
            break
        ext = nh[t]
        p = at[t]
        hlen = g.u8(p + 1)
        is_frag = ext == IPPROTO_FRAGMENT
        length = np.where(is_frag, 8, np.where(ext == IPPROTO_AH, (hlen + 2) * 4, (hlen + 1) * 8))
        fr = t[is_frag]
        if len(fr):
            offset = g.be(at[fr] + 2, 2) & 0xFFF8
            frag_id[fr] = g.be(at[fr] + 4, 4)
            skip = fr[offset != 0]
            frags.note(rec[skip])
            ok[skip] = False
        nh[t] = g.u8(p)
        at[t] = p + length
    k = np.flatnonzero(ok)
    o = o[k]
    return {
        "rec": rec[k],
        "ipver": np.full(len(k), 6, np.int64),
        "src_hi": h.u64(8)[k],
        "src_lo": h.u64(16)[k],
        "dst_hi": h.u64(24)[k],
        "dst_lo": h.u64(32)[k],
        "ttl": h.u8(7)[k],
        "ip_id": frag_id[k],
        "df": np.zeros(len(k), bool),
        "proto": nh[k],
        "l3": o,
        "l4": at[k],
        "l4end": o + 40 + plen[k],
        "end": e[k],
    }


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not parts:
        return {"rec": np.zeros(0, np.int64)}
    if len(parts) == 1:
        return parts[0]
    parts = [p for p in parts if len(p["rec"])] or parts[:1]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _tunnels(g, rows) -> tuple | None:
    """Inner IP packets of IP-in-IP, 6in4, GRE, VXLAN and Teredo (IPv6 in UDP, RFC 4380)."""
    proto = rows["proto"]
    l4 = rows["l4"]
    cend = np.minimum(rows["end"], rows["l4end"])
    ipip = np.flatnonzero(((proto == IPPROTO_IPIP) | (proto == IPPROTO_IPV6)) & (l4 < cend))
    recs = [rows["rec"][ipip]]
    inner = [l4[ipip]]
    kinds = [np.where(proto[ipip] == IPPROTO_IPIP, 4, 6)]
    ends = [cend[ipip]]
    wends = [rows["l4end"][ipip]]

    def add(sel: np.ndarray, at: np.ndarray, kind: np.ndarray) -> None:
        keep = kind != 0
        recs.append(rows["rec"][sel[keep]])
        inner.append(at[keep])
        kinds.append(kind[keep])
        ends.append(cend[sel[keep]])
        wends.append(rows["l4end"][sel[keep]])

    gre = np.flatnonzero((proto == IPPROTO_GRE) & (l4 + 4 <= cend))
    if len(gre):
        flags = g.be(l4[gre], 2)
        gre = gre[(flags & GRE_UNSUPPORTED) == 0]  # version 0 without source routing
        flags = flags[(flags & GRE_UNSUPPORTED) == 0]
        ptype = g.be(l4[gre] + 2, 2)
        at = l4[gre] + 4 + 4 * ((flags >> 15) & 1) + 4 * ((flags >> 13) & 1) + 4 * ((flags >> 12) & 1)
        add(gre, at, np.where(ptype == ETH_IPV4, 4, np.where(ptype == ETH_IPV6, 6, 0)))
        bridged = np.flatnonzero(ptype == GRE_ETHERNET)
        if len(bridged):
            add(*_inner_ethernet(g, gre[bridged], at[bridged], cend))
    udp_all = np.flatnonzero(proto == IPPROTO_UDP)
    vxlan = udp_all[:0]
    if len(udp_all):
        u = l4[udp_all]
        ports = (g.be(u, 2) == VXLAN_PORT) | (g.be(u + 2, 2) == VXLAN_PORT)
        vxlan = udp_all[ports & (u + 8 + 8 + 14 <= cend[udp_all])]  # VXLAN header, then Ethernet
        if len(vxlan):
            add(*_inner_ethernet(g, vxlan, l4[vxlan] + 16, cend))
    udp = np.flatnonzero((proto == IPPROTO_UDP) & (l4 + 8 + 40 <= cend))
    udp = np.setdiff1d(udp, vxlan, assume_unique=True)  # the VXLAN port wins, as in Wireshark
    if len(udp):
        # Teredo on any UDP port (relays use others than 3544), by Wireshark's heuristic: an IPv6
        # header whose payload length fills the UDP payload exactly, after optional Teredo headers.
        u = l4[udp]
        first = g.be(u + 8, 2)
        ulen = g.be(u + 4, 2)
        plain = (first >> 12 == 6) & (g.be(u + 12, 2) == ulen - 8 - 40)
        hit = udp[plain]
        recs.append(rows["rec"][hit])
        inner.append(l4[hit] + 8)
        kinds.append(np.full(len(hit), 6, np.int64))
        ends.append(cend[hit])
        wends.append(l4[hit] + ulen[plain])
        for i in udp[(first == 0) | (first == 1)].tolist():
            at = _teredo_inner(g.buf, int(l4[i]), int(cend[i]))
            if at is not None:
                recs.append(rows["rec"][i : i + 1])
                inner.append(np.array([at], np.int64))
                kinds.append(np.array([6], np.int64))
                ends.append(cend[i : i + 1])
                wends.append(np.array([at + 40 + int(g.be(np.array([at + 4]), 2)[0])], np.int64))
    rec = np.concatenate(recs)
    if not len(rec):
        return None
    return rec, np.concatenate(inner), np.concatenate(kinds), np.concatenate(ends), np.concatenate(wends)


def _inner_ethernet(g, sel: np.ndarray, at: np.ndarray, cend: np.ndarray) -> tuple:
    """An Ethernet frame inside a tunnel (VXLAN, GRE bridging) -> (rows, network offset, kind)."""
    e = cend[sel]
    et, l3 = _ethertype(g, g.be(at + 12, 2), at + 14, e)
    ok = at + 14 <= e
    return sel, l3, np.where(ok & (et == ETH_IPV4), 4, np.where(ok & (et == ETH_IPV6), 6, 0))


def _teredo_inner(buf: np.ndarray, udp: int, cend: int) -> int | None:
    """Offset of the IPv6 header inside a Teredo UDP payload, by Wireshark's heuristic, or None."""
    ulen = (int(buf[udp + 4]) << 8) | int(buf[udp + 5])
    at = udp + 8
    reported_end = udp + max(ulen, 8)
    if cend - at < 40:
        return None
    val = (int(buf[at]) << 8) | int(buf[at + 1])
    if val == 1:  # authentication indicator: id-len, auth-len, id, auth, nonce(8), confirmation(1)
        idlen = int(buf[at + 2])
        aulen = int(buf[at + 3])
        at += 13
        if cend - at < idlen + aulen + 40:
            return None
        at += idlen + aulen
        val = (int(buf[at]) << 8) | int(buf[at + 1])
    if val == 0:  # origin indication: 8 bytes
        at += 8
        if cend - at < 40:
            return None
        val = (int(buf[at]) << 8) | int(buf[at + 1])
    if val >> 12 != 6:
        return None
    plen = (int(buf[at + 4]) << 8) | int(buf[at + 5])
    if plen > 65467 or reported_end - (at + 40) != plen:
        return None
    return at


def _tcp(
    g: Gather, rows: dict[str, np.ndarray]
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[int, bytes]]:
    if "proto" not in rows:
        return np.zeros(0, np.int64), {}, {}
    l4 = rows["l4"]
    e = rows["end"]
    keep = np.flatnonzero((rows["proto"] == IPPROTO_TCP) & (l4 + TCP_FIXED <= e) & (l4 <= rows["l4end"]))
    if len(keep) != len(l4):
        rows = {key: col[keep] for key, col in rows.items()}
    order = np.argsort(rows["rec"], kind="stable")  # tunnel rows were appended after outer ones
    if len(order) and np.any(order != np.arange(len(order))):
        rows = {key: col[order] for key, col in rows.items()}
    t = rows["l4"]
    e = rows["end"]
    l4end = rows["l4end"]
    th = g.rows(t, 32)  # fixed header + the first 12 option bytes (NOP NOP timestamp, usually)
    off_flags = th.u16(12)
    hdr = (off_flags >> 12) * 4
    flags = off_flags & 0x0FFF
    opts = np.where(hdr < TCP_MIN_HDR, OPT_MALFORMED, 0).astype(np.int64)
    hdr = np.maximum(hdr, TCP_MIN_HDR)
    seg_end = np.minimum(e, l4end)
    payload_len = np.maximum(l4end - t - hdr, 0)
    captured_len = np.clip(seg_end - t - hdr, 0, payload_len)
    tsval = np.zeros(len(t), np.int64)
    with_opts = np.flatnonzero(hdr > TCP_MIN_HDR)
    if len(with_opts):
        first = th.u32(20)[with_opts]
        _options(g, t[with_opts], hdr[with_opts], e[with_opts], with_opts, opts, tsval, first, th)
    cols = {
        "ipver": rows["ipver"],
        "src_hi": rows["src_hi"],
        "src_lo": rows["src_lo"],
        "dst_hi": rows["dst_hi"],
        "dst_lo": rows["dst_lo"],
        "sport": th.u16(0),
        "dport": th.u16(2),
        "flags": flags,
        "seq": th.u32(4),
        "ack": th.u32(8),
        "window": th.u16(14),
        "ttl": rows["ttl"],
        "ip_id": rows["ip_id"],
        "df": rows["df"],
        "payload_len": payload_len,
        "captured_len": captured_len,
        "opts": opts,
        "tsval": tsval,
        "head": _payload_head(g, t + hdr, captured_len),
    }
    csum = np.zeros(len(t), np.uint8)
    segments: dict[int, bytes] = {}
    for i in np.flatnonzero(flags & RST).tolist():
        start = int(t[i])
        stop = max(int(seg_end[i]), min(int(e[i]), start + int(hdr[i])))
        segment = g.buf[start:stop].tobytes()
        segments[int(rows["rec"][i])] = segment
        csum[i] = tcp_checksum_status(
            int(rows["ipver"][i]),
            (int(rows["src_hi"][i]), int(rows["src_lo"][i]), int(rows["dst_hi"][i]), int(rows["dst_lo"][i])),
            segment,
            int(l4end[i] - start),
        )
    cols["csum"] = csum
    return rows["rec"], cols, segments


def _payload_head(g: Gather, at: np.ndarray, captured: np.ndarray) -> np.ndarray:
    """First 4 captured payload bytes as a big-endian number, zero-padded past the captured ones."""
    head = g.rows(at, 4).u32(0)
    keep = np.minimum(captured, 4)
    mask = np.where(keep >= 4, 0xFFFFFFFF, (0xFFFFFFFF << (8 * (4 - keep))) & 0xFFFFFFFF)
    return head & mask


def _options(g, t, hdr, e, rows, opts, tsval, first, th: Rows) -> None:
    """Summarise TCP options into OPT_* bits and TSval; the common NOP NOP TS layout takes a shortcut."""
    opt_end = t + hdr
    cut = opt_end > e
    opts[rows[cut]] |= OPT_TRUNCATED
    stop = np.minimum(opt_end, e)
    fast = (hdr == 32) & ~cut & (first == 0x0101080A)
    f = np.flatnonzero(fast)
    opts[rows[f]] |= OPT_TS
    tsval[rows[f]] = th.u32(24)[rows[f]]
    slow = np.flatnonzero(~fast)
    at = t[slow] + TCP_MIN_HDR
    rows = rows[slow]
    stop = stop[slow]
    opt_end = opt_end[slow]
    for _ in range(40):
        live = at < stop
        if not live.all():
            at, rows, stop, opt_end = at[live], rows[live], stop[live], opt_end[live]
        if not len(at):
            break
        kind = g.u8(at)
        eol = kind == 0
        nop = kind == 1
        length = g.u8(at + 1)
        other = ~eol & ~nop
        bad = other & ((at + 1 >= stop) | (length < 2) | (at + length > opt_end))
        # a length byte past the snaplen is a truncation, not a malformed list
        bad_trunc = bad & (at + 1 >= stop) & (stop < opt_end)
        opts[rows[bad & ~bad_trunc]] |= OPT_MALFORMED
        good = other & ~bad
        fits = good & (at + length <= stop)
        for code, bit in ((2, OPT_MSS), (3, OPT_WSCALE), (4, OPT_SACK_OK), (5, OPT_SACK)):
            opts[rows[fits & (kind == code)]] |= bit
        ts = fits & (kind == 8) & (length == 10)
        opts[rows[ts]] |= OPT_TS
        tsval[rows[ts]] = g.be(at[ts] + 2, 4)
        known = (kind >= 2) & (kind <= 5) | ts
        opts[rows[fits & ~known]] |= OPT_OTHER
        at = np.where(nop, at + 1, np.where(good, at + length, stop))
        at = np.where(eol, stop, at)


def tcp_checksum_status(ipver: int, addrs: tuple[int, int, int, int], segment: bytes, tcp_len: int) -> int:
    """CSUM_OK/BAD for a fully captured segment, CSUM_UNKNOWN when the snaplen cut it."""
    if tcp_len < TCP_MIN_HDR or len(segment) < tcp_len:
        return CSUM_UNKNOWN
    src_hi, src_lo, dst_hi, dst_lo = addrs
    if ipver == 4:
        pseudo = struct.pack("!IIBBH", src_lo & 0xFFFFFFFF, dst_lo & 0xFFFFFFFF, 0, IPPROTO_TCP, tcp_len)
    else:
        pseudo = struct.pack("!QQQQIxxxB", src_hi, src_lo, dst_hi, dst_lo, tcp_len, IPPROTO_TCP)
    data = pseudo + segment[:tcp_len]
    if len(data) & 1:
        data += b"\0"
    # 2**16 == 1 (mod 0xFFFF), so the big-endian integer is congruent to the one's-complement word sum
    return CSUM_OK if int.from_bytes(data, "big") % 0xFFFF == 0 else CSUM_BAD
