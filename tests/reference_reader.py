"""A small, slow, independent capture reader used as a correctness oracle.

It fills the same PACKET_DTYPE table as `resetlens.capture` from classic pcap (via dpkt) and pcapng
(a minimal block walker, per-interface link types), for Ethernet/VLAN, Linux SLL/SLL2, BSD NULL/LOOP,
raw IPv4/IPv6, FDDI (incl. bit-swapped) with LLC/SNAP, and Teredo (IPv6 in UDP/3544). Every frame
counts towards `frame` numbering, TCP or not. Only TCP segments become rows.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dpkt
import numpy as np

from resetlens.capture.table import (
    CSUM_BAD,
    CSUM_OK,
    CSUM_UNKNOWN,
    DIR_IN,
    DIR_OUT,
    DIR_UNKNOWN,
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

# Link types (tcpdump LINKTYPE_* values).
LT_NULL = 0  # BSD loopback, host-order 4-byte family
LT_ETHERNET = 1  # Ethernet II
LT_FDDI = 10  # FDDI
LT_RAW = 101  # raw IP
LT_RAW_OLD = 12  # raw IP (OpenBSD value)
LT_RAW_OLD2 = 14  # raw IP (some BSDs)
LT_LOOP = 108  # OpenBSD loopback, network-order family
LT_SLL = 113  # Linux cooked v1
LT_IPV4 = 228  # raw IPv4
LT_IPV6 = 229  # raw IPv6
LT_SLL2 = 276  # Linux cooked v2

ETH_IPV4 = 0x0800  # EtherType IPv4
ETH_IPV6 = 0x86DD  # EtherType IPv6
ETH_VLAN = (0x8100, 0x88A8, 0x9100)  # 802.1Q / QinQ tags


@dataclass
class PacketChunk:
    """What `resetlens.capture.open_capture(path).chunks()` yields (mirrored here for the oracle)."""

    table: np.ndarray
    segments: dict[int, bytes] = field(default_factory=dict)


def read_reference(path: str | Path) -> PacketChunk:
    """Read a whole capture into one chunk."""
    rows: list[dict] = []
    segments: dict[int, bytes] = {}
    for frame, (offset, ts, iface, linktype, data) in enumerate(_records(Path(path)), start=1):
        parsed = _decode_link(linktype, data)
        if parsed is None:
            continue
        row, seg = parsed
        row.update(frame=frame, offset=offset, ts=ts, iface=iface)
        rows.append(row)
        if row["flags"] & RST:
            segments[frame] = seg
    table = np.zeros(len(rows), dtype=PACKET_DTYPE)
    for name in PACKET_DTYPE.names:
        table[name] = [r.get(name, 0) for r in rows]
    return PacketChunk(table, segments)


def _open(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _records(path: Path) -> Iterator[tuple[int, float, int, int, bytes]]:
    with _open(path) as fh:
        head = fh.read(4)
        fh.seek(0)
        if head == b"\x0a\x0d\x0d\x0a":
            yield from _pcapng_records(fh.read())
            return
        reader = dpkt.pcap.Reader(fh)
        linktype = reader.datalink()
        offset = 24
        for ts, buf in reader:
            yield offset, float(ts), 0, linktype, bytes(buf)
            offset += 16 + len(buf)


def _pcapng_records(blob: bytes) -> Iterator[tuple[int, float, int, int, bytes]]:
    pos = 0
    endian = "<"
    ifaces: list[tuple[int, int]] = []  # (linktype, ticks per second)
    while pos + 12 <= len(blob):
        btype = struct.unpack_from(endian + "I", blob, pos)[0]
        if btype == 0x0A0D0D0A:
            bom = blob[pos + 8 : pos + 12]
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            ifaces = []
        blen = struct.unpack_from(endian + "I", blob, pos + 4)[0]
        if blen < 12 or pos + blen > len(blob):
            break
        body = blob[pos + 8 : pos + blen - 4]
        if btype == 1:  # interface description
            linktype = struct.unpack_from(endian + "H", body, 0)[0]
            ifaces.append((linktype, _if_tsresol(body[8:], endian)))
        elif btype == 6:  # enhanced packet
            iface, hi, lo, caplen, _wire = struct.unpack_from(endian + "IIIII", body, 0)
            linktype, per_sec = ifaces[iface] if iface < len(ifaces) else (LT_ETHERNET, 1_000_000)
            ticks = (hi << 32) | lo
            ts = ticks // per_sec + (ticks % per_sec) / per_sec
            yield pos, ts, iface, linktype, body[20 : 20 + caplen]
        elif btype == 3:  # simple packet
            wire = struct.unpack_from(endian + "I", body, 0)[0]
            linktype = ifaces[0][0] if ifaces else LT_ETHERNET
            yield pos, 0.0, 0, linktype, body[4 : 4 + wire]
        pos += blen


def _if_tsresol(opts: bytes, endian: str) -> int:
    pos = 0
    while pos + 4 <= len(opts):
        code, olen = struct.unpack_from(endian + "HH", opts, pos)
        if code == 0:
            break
        if code == 9 and olen >= 1:
            v = opts[pos + 4]
            return 2 ** (v & 0x7F) if v & 0x80 else 10**v
        pos += 4 + ((olen + 3) & ~3)
    return 1_000_000


def _decode_link(linktype: int, data: bytes):
    if linktype == LT_ETHERNET:
        if len(data) < 14:
            return None
        etype = struct.unpack_from("!H", data, 12)[0]
        pos = 14
        while etype in ETH_VLAN and len(data) >= pos + 4:
            etype = struct.unpack_from("!H", data, pos + 2)[0]
            pos += 4
        return _decode_ether(etype, data[pos:])
    if linktype in (LT_NULL, LT_LOOP):
        if len(data) < 4:
            return None
        fam = struct.unpack_from("<I" if linktype == LT_NULL else "!I", data, 0)[0]
        if fam > 0xFFFF:
            fam = struct.unpack_from(">I" if linktype == LT_NULL else "<I", data, 0)[0]
        if fam == 2:
            return _decode_ip(data[4:], 4)
        if fam in (10, 24, 28, 30):
            return _decode_ip(data[4:], 6)
        return None
    if linktype in (LT_RAW, LT_RAW_OLD, LT_RAW_OLD2, LT_IPV4, LT_IPV6):
        return _decode_ip(data, data[0] >> 4 if data else 0)
    if linktype == LT_SLL:
        if len(data) < 16:
            return None
        return _with(_decode_ether(struct.unpack_from("!H", data, 14)[0], data[16:]), _sll_dir(data[1]), 0)
    if linktype == LT_SLL2:
        if len(data) < 20:
            return None
        ifindex = struct.unpack_from("!I", data, 4)[0]
        return _with(
            _decode_ether(struct.unpack_from("!H", data, 0)[0], data[20:]), _sll_dir(data[10]), ifindex
        )
    if linktype == LT_FDDI:
        # 1 byte frame control + 2 x 6 MAC, then 802.2 LLC SNAP (AA AA 03 OUI(3) type(2)).
        if len(data) < 21 or data[13:15] != b"\xaa\xaa":
            return None
        return _decode_ether(struct.unpack_from("!H", data, 19)[0], data[21:])
    return None


def _sll_dir(pkttype: int) -> int:
    return DIR_OUT if pkttype == 4 else DIR_IN if pkttype <= 3 else DIR_UNKNOWN


def _with(parsed, direction: int, ifindex: int):
    if parsed is not None:
        parsed[0].update(direction=direction, ifindex=ifindex)
    return parsed


def _decode_ether(etype: int, data: bytes):
    if etype == ETH_IPV4:
        return _decode_ip(data, 4)
    if etype == ETH_IPV6:
        return _decode_ip(data, 6)
    return None


def _decode_ip(data: bytes, version: int, depth: int = 0):
    if version == 4:
        if len(data) < 20:
            return None
        ihl = (data[0] & 0x0F) * 4
        total = struct.unpack_from("!H", data, 2)[0]
        if total == 0:  # TSO capture on the sending host: the length is filled in later (Zeek uses caplen)
            total = len(data)
        ip_id = struct.unpack_from("!H", data, 4)[0]
        frag = struct.unpack_from("!H", data, 6)[0]
        ttl, proto = data[8], data[9]
        src = V4_MAPPED_PREFIX | struct.unpack_from("!I", data, 12)[0]
        dst = V4_MAPPED_PREFIX | struct.unpack_from("!I", data, 16)[0]
        if frag & 0x1FFF or frag & 0x2000:  # fragments are not reassembled by the oracle
            return None
        l4 = data[ihl:total] if total >= ihl else data[ihl:]
        l4_wire = total - ihl
        pseudo = data[12:20]
        return _decode_l4(
            proto, l4, l4_wire, (4, 0, src, 0, dst, ttl, ip_id, bool(frag & 0x4000)), pseudo, depth
        )
    if version == 6:
        if len(data) < 40:
            return None
        plen = struct.unpack_from("!H", data, 4)[0]
        nxt, hlim = data[6], data[7]
        src_hi, src_lo, dst_hi, dst_lo = struct.unpack_from("!QQQQ", data, 8)
        pos = 40
        frag_id = 0
        while nxt in (0, 43, 60, 44) and len(data) >= pos + 8:
            if nxt == 44:
                frag_id = struct.unpack_from("!I", data, pos + 4)[0]
                if struct.unpack_from("!H", data, pos + 2)[0] & 0xFFF9:
                    return None
                nxt, hl = data[pos], 8
            else:
                nxt, hl = data[pos], (data[pos + 1] + 1) * 8
            pos += hl
        l4_wire = plen - (pos - 40)
        l4 = data[pos : 40 + plen]
        pseudo = data[8:40]
        return _decode_l4(
            nxt, l4, l4_wire, (6, src_hi, src_lo, dst_hi, dst_lo, hlim, frag_id, False), pseudo, depth
        )
    return None


def _decode_l4(proto: int, l4: bytes, l4_wire: int, ip: tuple, pseudo: bytes, depth: int):
    if proto == 17 and depth == 0 and len(l4) >= 8:
        # Teredo: IPv6 in UDP (port 3544, or any port when the payload is a well-formed IPv6 packet,
        # like Zeek's and Wireshark's Teredo heuristics), after optional indicator headers.
        inner = l4[8:]
        while len(inner) >= 2 and inner[0] == 0:
            if inner[1] == 1 and len(inner) >= 4:  # authentication indicator
                inner = inner[4 + inner[2] + inner[3] + 9 :]
            elif inner[1] == 0:  # origin indication
                inner = inner[8:]
            else:
                break
        if (
            len(inner) >= 40
            and inner[0] >> 4 == 6
            and struct.unpack_from("!H", inner, 4)[0] + 40 == len(inner)
        ):
            return _decode_ip(inner, 6, depth + 1)
        return None
    if proto != 6 or len(l4) < 20:
        return None
    ver, src_hi, src_lo, dst_hi, dst_lo, ttl, ip_id, df = ip
    sport, dport, seq, ack, off, flags8, window = struct.unpack_from("!HHIIBBH", l4, 0)
    hlen = (off >> 4) * 4
    flags = flags8 | ((off & 0x0F) << 8)
    opts, tsval = _options(l4[20:hlen], len(l4) < hlen)
    payload_len = max(l4_wire - hlen, 0)
    captured = max(min(len(l4), l4_wire) - hlen, 0)
    csum = 0
    if flags & RST:
        csum = _check(l4, l4_wire, pseudo, ver)
    body = bytes(l4[hlen : hlen + min(captured, 4)]).ljust(4, b"\0")
    row = dict(
        ipver=ver, src_hi=src_hi, src_lo=src_lo, dst_hi=dst_hi, dst_lo=dst_lo, sport=sport, dport=dport,
        flags=flags, seq=seq, ack=ack, window=window, ttl=ttl, ip_id=ip_id, df=df, payload_len=payload_len,
        captured_len=captured, opts=opts, tsval=tsval, csum=csum, head=struct.unpack("!I", body)[0],
    )  # fmt: skip
    return row, bytes(l4[: min(len(l4), l4_wire)])


def _options(raw: bytes, truncated: bool) -> tuple[int, int]:
    bits = OPT_TRUNCATED if truncated else 0
    tsval = 0
    pos = 0
    while pos < len(raw):
        kind = raw[pos]
        if kind == 0:
            break
        if kind == 1:
            pos += 1
            continue
        if pos + 1 >= len(raw) or raw[pos + 1] < 2 or pos + raw[pos + 1] > len(raw):
            bits |= OPT_MALFORMED
            break
        olen = raw[pos + 1]
        if kind == 2:
            bits |= OPT_MSS
        elif kind == 3:
            bits |= OPT_WSCALE
        elif kind == 4:
            bits |= OPT_SACK_OK
        elif kind == 5:
            bits |= OPT_SACK
        elif kind == 8 and olen == 10:
            bits |= OPT_TS
            tsval = struct.unpack_from("!I", raw, pos + 2)[0]
        else:
            bits |= OPT_OTHER
        pos += olen
    return bits, tsval


def _check(l4: bytes, l4_wire: int, pseudo: bytes, ver: int) -> int:
    if len(l4) < l4_wire:
        return CSUM_UNKNOWN
    seg = bytes(l4[:l4_wire])
    if ver == 4:
        ph = pseudo + struct.pack("!BBH", 0, 6, l4_wire)
    else:
        ph = pseudo + struct.pack("!IxxxB", l4_wire, 6)
    buf = ph + seg
    if len(buf) % 2:
        buf += b"\0"
    s = sum(struct.unpack(f"!{len(buf) // 2}H", buf))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return CSUM_OK if s == 0xFFFF else CSUM_BAD
