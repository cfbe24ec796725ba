"""The columnar packet table: one row per TCP segment, one numpy field per header value.

Every reader fills this layout and every analysis stage reads it, so analysis is vectorised over
columns instead of walking Python objects. Addresses are 128-bit, stored as two uint64 halves;
IPv4 addresses are IPv4-mapped (::ffff:a.b.c.d) so one code path serves both families.
"""

from __future__ import annotations

import functools
import ipaddress

import numpy as np

# (field, numpy type, meaning) -- the schema, documented where it is defined.
PACKET_FIELDS: list[tuple[str, str, str]] = [
    ("frame", "u8", "1-based frame number in its capture, as Wireshark counts (all frames, not only TCP)"),
    ("offset", "u8", "byte offset of the record header in the (decompressed) capture stream"),
    ("ts", "f8", "capture timestamp, seconds since the epoch, on the capture's own clock"),
    ("iface", "u2", "pcapng interface id (0 for classic pcap)"),
    ("ipver", "u1", "4 or 6"),
    ("src_hi", "u8", "source address, high 64 bits (0 for IPv4)"),
    ("src_lo", "u8", "source address, low 64 bits (0x0000ffff_xxxxxxxx for IPv4)"),
    ("dst_hi", "u8", "destination address, high 64 bits"),
    ("dst_lo", "u8", "destination address, low 64 bits"),
    ("sport", "u2", "TCP source port"),
    ("dport", "u2", "TCP destination port"),
    ("flags", "u2", "TCP flags: FIN..CWR in bits 0-7, NS bit 8, reserved bits 9-11"),
    ("seq", "u4", "TCP sequence number (absolute)"),
    ("ack", "u4", "TCP acknowledgement number (absolute, meaningful only with ACK)"),
    ("window", "u2", "TCP window field, unscaled"),
    ("ttl", "u1", "IPv4 TTL or IPv6 hop limit"),
    ("ip_id", "u4", "IPv4 identification; IPv6 fragment-header id or 0"),
    ("df", "?", "IPv4 don't-fragment bit (False for IPv6)"),
    ("payload_len", "u4", "TCP payload length from the IP lengths (what was sent, not what was stored)"),
    ("captured_len", "u4", "TCP payload bytes actually present in the record (snaplen cut)"),
    ("opts", "u1", "TCP options summary, OPT_* bits"),
    ("tsval", "u4", "TCP timestamp option TSval (0 when absent)"),
    ("csum", "u1", "TCP checksum: CSUM_UNCHECKED, CSUM_OK, CSUM_BAD (checked for RSTs only)"),
    (
        "direction",
        "u1",
        "link-layer direction: DIR_UNKNOWN, DIR_IN, DIR_OUT (Linux SLL/SLL2 packet type, pcapng epb_flags)",
    ),
    ("head", "u4", "first 4 captured payload bytes, big-endian, zero-padded (TLS record, HTTP method, ...)"),
    ("ifindex", "u4", "Linux SLL2 interface index (0 when the link type has none)"),
]

PACKET_DTYPE = np.dtype([(name, typ) for name, typ, _ in PACKET_FIELDS])

# TCP flag bits as they sit in the table's `flags` column.
FIN = 0x001  # no more data from sender
SYN = 0x002  # synchronise sequence numbers
RST = 0x004  # reset the connection
PSH = 0x008  # push
ACK = 0x010  # acknowledgement field significant
URG = 0x020  # urgent pointer significant
ECE = 0x040  # ECN echo
CWR = 0x080  # congestion window reduced
NS = 0x100  # ECN nonce (RFC 3540, historic)
RESERVED = 0xE00  # the three reserved header bits (an injector fingerprint when set)

# TCP option summary bits (`opts` column).
OPT_MSS = 0x01  # maximum segment size
OPT_WSCALE = 0x02  # window scale
OPT_SACK_OK = 0x04  # SACK permitted
OPT_SACK = 0x08  # SACK blocks
OPT_TS = 0x10  # timestamps (TSval/TSecr)
OPT_OTHER = 0x20  # any other option kind (MD5, TCP-AO, MPTCP, ...)
OPT_MALFORMED = 0x40  # option list could not be parsed to its end
OPT_TRUNCATED = 0x80  # options cut by the snaplen

# `csum` column values.
CSUM_UNCHECKED = 0  # not verified (only RSTs are checked, to keep the hot path cheap)
CSUM_OK = 1  # checksum verified
CSUM_BAD = 2  # checksum wrong: offload artefact on the sender's own capture, or a non-effective RST
CSUM_UNKNOWN = 3  # segment truncated by the snaplen, cannot be verified

# `direction` column values: on a router's `-i any` capture a forwarded packet appears twice (in, then
# out), while a packet the host itself generated appears only as outgoing.
DIR_UNKNOWN = 0  # the link type does not say
DIR_IN = 1  # received by the capturing host (SLL packet types 0-3, epb_flags inbound)
DIR_OUT = 2  # sent by the capturing host (SLL packet type 4, epb_flags outbound)

V4_MAPPED_PREFIX = 0x0000FFFF00000000  # the low half of ::ffff:0:0 before the IPv4 bits


def empty_table(n: int = 0) -> np.ndarray:
    """A zero-filled table of n rows."""
    return np.zeros(n, dtype=PACKET_DTYPE)


def addr_to_halves(addr: str) -> tuple[int, int]:
    """'10.0.0.1' or '2001:db8::1' -> (hi, lo) as stored in the table."""
    ip = ipaddress.ip_address(addr)
    if ip.version == 4:
        return 0, V4_MAPPED_PREFIX | int(ip)
    value = int(ip)
    return value >> 64, value & 0xFFFFFFFFFFFFFFFF


@functools.lru_cache(maxsize=65536)
def _addr_text(hi: int, lo: int) -> str:
    if hi == 0 and (lo >> 32) == 0xFFFF:  # dotted quad directly: ipaddress is slow
        return f"{(lo >> 24) & 255}.{(lo >> 16) & 255}.{(lo >> 8) & 255}.{lo & 255}"
    return str(ipaddress.IPv6Address((hi << 64) | lo))


def halves_to_addr(hi: int, lo: int) -> str:
    """(hi, lo) -> the address as text; IPv4-mapped values print as dotted quads (cached: few distinct)."""
    return _addr_text(int(hi), int(lo))


def flow_key(table: np.ndarray) -> np.ndarray:
    """A 64-bit key equal for both directions of one 4-tuple (collisions are possible; check exactly)."""
    a = _mix(table["src_hi"], table["src_lo"], table["sport"])
    b = _mix(table["dst_hi"], table["dst_lo"], table["dport"])
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    with np.errstate(over="ignore"):
        return (lo * np.uint64(0x9E3779B97F4A7C15)) ^ (hi + np.uint64(0x632BE59BD9B4E019))


def _mix(hi: np.ndarray, lo: np.ndarray, port: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = hi.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
        x ^= lo.astype(np.uint64) * np.uint64(0x94D049BB133111EB)
        x ^= port.astype(np.uint64) * np.uint64(0x2545F4914F6CDD1D)
        x ^= x >> np.uint64(31)
    return x


@functools.lru_cache(maxsize=4096)
def flag_letters(flags: int) -> str:
    """Human flag string in tcpdump order, e.g. 'R.' style is avoided: 'RA' for RST+ACK."""
    names = [(SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "A"), (URG, "U"), (ECE, "E"), (CWR, "C")]
    return "".join(ch for bit, ch in names if flags & bit)


# flag_letters of every low byte (it reads no other bits): the C formatters index it by flags & 0xFF.
FLAG_TEXTS = tuple(flag_letters(bits) for bits in range(256))
# Packet-table field -> its index in a row's item() / tolist() tuple.
FIELD_INDEX = {name: i for i, name in enumerate(PACKET_DTYPE.names)}


def field_layout(dtype: np.dtype, names: tuple[str, ...]) -> tuple[int, ...]:
    """(offset, size) of each named field, flattened: where a C accelerator reads or writes it."""
    out: list[int] = []
    for name in names:
        field, offset = dtype.fields[name][:2]
        out += [offset, field.itemsize]
    return tuple(out)
