"""Builders for hand-made captures (pcap, pcapng, link headers) used by the capture tests.

Packets come from scapy (an independent encoder, with real checksums); the file layouts follow the
libpcap and pcapng specifications. The tests at the bottom check that tshark reads what we build, so
the builders themselves are not a source of agreement between reader and test.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from scapy.all import IP, TCP, UDP, IPv6, Raw, raw  # type: ignore[attr-defined]

# ---- packets -----------------------------------------------------------------------------------


def tcp4(flags: str = "R", payload: bytes = b"", **ip) -> bytes:
    """An IPv4 TCP segment with a correct checksum; keyword arguments go to scapy's IP()."""
    fields = {"src": "10.1.2.3", "dst": "10.9.8.7", "ttl": 61, "id": 4242, **ip}
    return raw(
        IP(**fields) / TCP(sport=40000, dport=443, seq=1000, ack=2000, flags=flags, window=512) / payload
    )


def tcp6(flags: str = "R", payload: bytes = b"", ext=None, **ip) -> bytes:
    """An IPv6 TCP segment; `ext` is a scapy extension-header chain put between IPv6 and TCP."""
    fields = {"src": "2001:db8::1", "dst": "2001:db8::2", "hlim": 33, **ip}
    pkt = IPv6(**fields)
    if ext is not None:
        pkt = pkt / ext
    return raw(pkt / TCP(sport=40001, dport=80, seq=77, ack=88, flags=flags, window=1024) / payload)


# ---- link headers ------------------------------------------------------------------------------

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def ether(ip: bytes, tags: tuple[int, ...] = ()) -> bytes:
    """Ethernet II with optional VLAN tags given as TPIDs (0x8100, 0x88a8, 0x9100), VLAN id 7."""
    ethertype = 0x0800 if ip[0] >> 4 == 4 else 0x86DD
    head = MAC_A + MAC_B
    for tpid in tags:
        head += struct.pack("!HH", tpid, 7)
    return head + struct.pack("!H", ethertype) + ip


def sll(ip: bytes, pkttype: int = 0) -> bytes:
    ethertype = 0x0800 if ip[0] >> 4 == 4 else 0x86DD
    return struct.pack("!HHH8sH", pkttype, 1, 6, MAC_A + b"\0\0", ethertype) + ip


def sll2(ip: bytes, pkttype: int = 4, ifindex: int = 3) -> bytes:
    ethertype = 0x0800 if ip[0] >> 4 == 4 else 0x86DD
    return struct.pack("!HHIHBB8s", ethertype, 0, ifindex, 1, pkttype, 6, MAC_A + b"\0\0") + ip


def null(ip: bytes, family: int, order: str = "<") -> bytes:
    return struct.pack(order + "I", family) + ip


def fddi(ip: bytes) -> bytes:
    ethertype = 0x0800 if ip[0] >> 4 == 4 else 0x86DD
    return b"\x50" + MAC_A + MAC_B + b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", ethertype) + ip


def teredo(ip6: bytes, sport: int = 3544, dport: int = 51000, prefix: bytes = b"") -> bytes:
    """IPv6 in UDP in IPv4 (RFC 4380), with optional authentication/origin indication headers."""
    return raw(
        IP(src="192.0.2.1", dst="198.51.100.2", ttl=50) / UDP(sport=sport, dport=dport) / Raw(prefix + ip6)
    )


# ---- files -------------------------------------------------------------------------------------


def pcap(
    packets: list[bytes],
    linktype: int = 1,
    order: str = "<",
    nano: bool = False,
    snaplen: int = 65535,
    ts0: float = 1_700_000_000.25,
    caplens: list[int] | None = None,
) -> bytes:
    """A classic pcap file; `caplens` cuts packets as a snaplen would (wire length stays)."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)
    for i, pkt in enumerate(packets):
        ts = ts0 + i * 0.5
        sec = int(ts)
        frac = round((ts - sec) * (1e9 if nano else 1e6))
        cap = len(pkt) if caplens is None else caplens[i]
        out += struct.pack(order + "IIII", sec, frac, cap, len(pkt)) + pkt[:cap]
    return out


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def block(btype: int, body: bytes, order: str = "<") -> bytes:
    length = 12 + len(_pad(body))
    return struct.pack(order + "II", btype, length) + _pad(body) + struct.pack(order + "I", length)


def option(code: int, value: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "HH", code, len(value)) + _pad(value)


def shb(order: str = "<") -> bytes:
    return block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order)


def idb(
    linktype: int,
    order: str = "<",
    snaplen: int = 0,
    tsresol: int | None = None,
    tsoffset: int = 0,
    name=None,
):
    opts = b""
    if name:
        opts += option(2, name.encode(), order)
    if tsresol is not None:
        opts += option(9, bytes([tsresol]), order)
    if tsoffset:
        opts += option(14, struct.pack(order + "q", tsoffset), order)
    if opts:
        opts += option(0, b"", order)
    return block(1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts, order)


def epb(iface: int, ticks: int, pkt: bytes, order: str = "<", flags: int | None = None, caplen=None) -> bytes:
    cap = len(pkt) if caplen is None else caplen
    body = struct.pack(order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, cap, len(pkt)) + _pad(
        pkt[:cap]
    )
    if flags is not None:
        body += option(2, struct.pack(order + "I", flags), order) + option(0, b"", order)
    return block(6, body, order)


def spb(pkt: bytes, order: str = "<", snaplen: int = 0) -> bytes:
    """A simple packet block; it stores at most the snaplen of the section's interface 0."""
    return block(3, struct.pack(order + "I", len(pkt)) + pkt[: snaplen or len(pkt)], order)


def old_pb(iface: int, ticks: int, pkt: bytes, order: str = "<") -> bytes:
    """The obsolete Packet Block (type 2): 16-bit interface id and drops counter."""
    body = struct.pack(order + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(pkt), len(pkt)) + pkt
    return block(2, body, order)


def write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def tshark_rows(path: Path, *fields: str, display_filter: str = "tcp") -> list[list[str]]:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    cmd = ["tshark", "-n", "-r", str(path), "-Y", display_filter, "-T", "fields", "-E", "occurrence=l"]
    for name in fields:
        cmd += ["-e", name]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


# ---- the builders agree with tshark ------------------------------------------------------------


def test_builders_are_read_by_tshark(tmp_path: Path) -> None:
    ng = (
        shb()
        + idb(1, tsresol=9)
        + idb(276)
        + epb(0, 10**18, ether(tcp4()))
        + epb(1, 2 * 10**18, sll2(tcp6()))
    )
    path = write(tmp_path, "two.pcapng", ng)
    rows = tshark_rows(path, "frame.interface_id", "tcp.flags", "ipv6.src", "ip.src")
    assert [r[0] for r in rows] == ["0", "1"]
    assert rows[1][2] == "2001:db8::1" and rows[0][3] == "10.1.2.3"
    classic = write(tmp_path, "be.pcap", pcap([ether(tcp4())], order=">", nano=True))
    assert tshark_rows(classic, "tcp.srcport") == [["40000"]]
