"""File-level layouts: magic numbers, the classic pcap header, pcapng blocks and options."""

from __future__ import annotations

import struct

# Classic pcap magic numbers, as the first four bytes appear on disk.
PCAP_MAGICS: dict[bytes, tuple[str, bool, int]] = {
    # bytes: (byte order, nanosecond timestamps, record header size)
    b"\xd4\xc3\xb2\xa1": ("<", False, 16),  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", False, 16),  # big-endian, microseconds
    b"\x4d\x3c\xb2\xa1": ("<", True, 16),  # little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", True, 16),  # big-endian, nanoseconds
    b"\x34\xcd\xb2\xa1": ("<", False, 24),  # Kuznetzov's modified pcap (8 extra bytes per record)
    b"\xa1\xb2\xcd\x34": (">", False, 24),  # same, big-endian
}
PCAP_HEADER = 24  # magic, version 2+2, thiszone, sigfigs, snaplen, linktype
PCAP_LINKTYPE_MASK = 0x03FFFFFF  # the upper bits carry the FCS length, not the link type
STANDARD_MAX_CAPLEN = 262144  # Wireshark's largest packet for ordinary link types

GZIP_MAGIC = b"\x1f\x8b"  # RFC 1952

# pcapng block types (draft-ietf-opsawg-pcapng).
BT_SHB = 0x0A0D0D0A  # section header; its byte pattern is the same in both byte orders
BT_IDB = 0x00000001  # interface description
BT_PB = 0x00000002  # obsolete packet block (16-bit interface id + drops counter)
BT_SPB = 0x00000003  # simple packet: no interface id, no timestamp
BT_NRB = 0x00000004  # name resolution
BT_ISB = 0x00000005  # interface statistics
BT_EPB = 0x00000006  # enhanced packet
BT_IRIG = 0x00000007  # IRIG timestamp (rare)
BT_ARINC = 0x00000008  # ARINC 429 (rare)
BT_JOURNAL = 0x00000009  # systemd journal export entry
BT_DSB = 0x0000000A  # decryption secrets
BT_CUSTOM = (0x00000BAD, 0x40000BAD)  # custom blocks (copyable / not copyable)
KNOWN_NON_PACKET = frozenset({BT_NRB, BT_ISB, BT_IRIG, BT_ARINC, BT_JOURNAL, BT_DSB, *BT_CUSTOM})
PACKET_BLOCKS = frozenset({BT_EPB, BT_SPB, BT_PB})
BYTE_ORDER_MAGIC = 0x1A2B3C4D  # SHB byte-order magic
SHB_MIN = 28  # type, length, BOM, major, minor, section length (8), trailing length
EPB_FIXED = 32  # block header + iface, ts hi, ts lo, caplen, wirelen + trailing length
SPB_FIXED = 16  # block header + original length + trailing length
IDB_FIXED = 20  # block header + linktype, reserved, snaplen + trailing length

# Option codes.
OPT_ENDOFOPT = 0  # end of options
IF_NAME = 2  # interface name (UTF-8)
IF_TSRESOL = 9  # timestamp resolution: 10^-v, or 2^-(v & 0x7f) when the top bit is set
IF_TSOFFSET = 14  # seconds added to every timestamp (signed 64-bit)
EPB_FLAGS = 2  # packet flags word: bits 0-1 direction (1 inbound, 2 outbound)

DEFAULT_TSRESOL = 1_000_000  # ticks per second when an IDB has no if_tsresol


def pad4(n: int) -> int:
    """n rounded up to a multiple of 4 (pcapng aligns every field to 32 bits)."""
    return (n + 3) & ~3


def iter_options(body: bytes | memoryview, endian: str):
    """Yield (code, value bytes) of a pcapng option list; stops quietly at malformed lengths."""
    head = struct.Struct(endian + "HH")
    at = 0
    while at + 4 <= len(body):
        code, length = head.unpack_from(body, at)
        if code == OPT_ENDOFOPT:
            return
        value = bytes(body[at + 4 : at + 4 + length])
        if len(value) < length:
            return
        yield code, value
        at += 4 + pad4(length)


def tsresol_ticks(value: int) -> int | None:
    """Ticks per second for an if_tsresol byte, None when it does not fit 64 bits."""
    if value & 0x80:
        exp = value & 0x7F
        return 1 << exp if exp < 64 else None
    return 10**value if value <= 19 else None
