"""File formats, link types and IP/TCP header variants, on hand-built captures checked against tshark."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
from scapy.all import (  # type: ignore[attr-defined]
    IP,
    TCP,
    IPOption_Router_Alert,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    raw,
)
from scapy.layers.ipsec import AH  # type: ignore[attr-defined]

from resetlens.capture import open_capture, read_table, walk
from resetlens.capture.table import (
    ACK,
    CSUM_BAD,
    CSUM_OK,
    CSUM_UNCHECKED,
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
    RST,
    SYN,
    halves_to_addr,
)
from tests.test_capture_build import (
    block,
    epb,
    ether,
    fddi,
    idb,
    null,
    old_pb,
    pcap,
    shb,
    sll,
    sll2,
    spb,
    tcp4,
    tcp6,
    teredo,
    tshark_rows,
    write,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "capture"
AF6 = {"bsd": 24, "freebsd": 28, "darwin": 30}


def _addr(row, side: str) -> str:
    return halves_to_addr(row[f"{side}_hi"], row[f"{side}_lo"])


def _check_two_rsts(table: np.ndarray) -> None:
    """The v4 and v6 RSTs built by tcp4()/tcp6() came out field by field."""
    assert list(table["frame"]) == [1, 2]
    v4, v6 = table
    assert (_addr(v4, "src"), _addr(v4, "dst"), v4["sport"], v4["dport"]) == (
        "10.1.2.3",
        "10.9.8.7",
        40000,
        443,
    )
    assert (v4["ipver"], v4["ttl"], v4["ip_id"], v4["seq"], v4["ack"], v4["flags"]) == (
        4,
        61,
        4242,
        1000,
        2000,
        RST,
    )
    assert (_addr(v6, "src"), _addr(v6, "dst"), v6["sport"], v6["dport"]) == (
        "2001:db8::1",
        "2001:db8::2",
        40001,
        80,
    )
    assert (v6["ipver"], v6["ttl"], v6["seq"], v6["ack"], v6["window"]) == (6, 33, 77, 88, 1024)
    assert list(table["csum"]) == [CSUM_OK, CSUM_OK]


LINK_CASES = {
    "ether": (1, ether, ether),
    "vlan-8100": (1, lambda p: ether(p, (0x8100,)), lambda p: ether(p, (0x8100,))),
    "qinq-88a8": (1, lambda p: ether(p, (0x88A8, 0x8100)), lambda p: ether(p, (0x88A8, 0x8100))),
    "qinq-9100": (1, lambda p: ether(p, (0x9100, 0x8100)), lambda p: ether(p, (0x9100, 0x8100))),
    "sll": (113, sll, sll),
    "sll2": (276, sll2, sll2),
    "fddi": (10, fddi, fddi),
    "null-le-bsd": (0, lambda p: null(p, 2), lambda p: null(p, AF6["bsd"])),
    "null-be-freebsd": (0, lambda p: null(p, 2, ">"), lambda p: null(p, AF6["freebsd"], ">")),
    "loop-darwin": (108, lambda p: null(p, 2, ">"), lambda p: null(p, AF6["darwin"], ">")),
    "raw-101": (101, bytes, bytes),
    "raw-12": (12, bytes, bytes),
    "raw-14": (14, bytes, bytes),
}


@pytest.mark.parametrize("case", sorted(LINK_CASES))
def test_link_types(tmp_path: Path, case: str) -> None:
    linktype, wrap4, wrap6 = LINK_CASES[case]
    path = write(tmp_path, f"{case}.pcap", pcap([wrap4(tcp4()), wrap6(tcp6())], linktype=linktype))
    table, segments, info = read_table(path)
    _check_two_rsts(table)
    assert sorted(segments) == [1, 2]
    assert info.warnings == []
    got = [[str(r["frame"]), str(r["sport"]), str(r["seq"])] for r in table]
    assert tshark_rows(path, "frame.number", "tcp.srcport", "tcp.seq_raw") == got


def test_raw_ipv4_and_ipv6_link_types(tmp_path: Path) -> None:
    v4 = write(tmp_path, "v4.pcap", pcap([tcp4(), tcp6()], linktype=228))
    v6 = write(tmp_path, "v6.pcap", pcap([tcp4(), tcp6()], linktype=229))
    t4, _, i4 = read_table(v4)
    t6, _, _ = read_table(v6)
    assert list(t4["ipver"]) == [4] and list(t4["frame"]) == [1]  # the IPv6 packet is not IPv4
    assert list(t6["ipver"]) == [6] and list(t6["frame"]) == [2]
    assert i4.link_types == ["ipv4"] and i4.packets == 2


def test_sll_direction_and_ifindex(tmp_path: Path) -> None:
    pkts = [sll2(tcp4(), pkttype=4, ifindex=9), sll2(tcp4(), pkttype=0, ifindex=2)]
    table, _, _ = read_table(write(tmp_path, "d.pcap", pcap(pkts, linktype=276)))
    assert list(table["direction"]) == [DIR_OUT, DIR_IN]
    assert list(table["ifindex"]) == [9, 2]
    table, _, _ = read_table(write(tmp_path, "d1.pcap", pcap([sll(tcp4(), 4), sll(tcp4(), 3)], linktype=113)))
    assert list(table["direction"]) == [DIR_OUT, DIR_IN]
    table, _, _ = read_table(write(tmp_path, "e.pcap", pcap([ether(tcp4())])))
    assert list(table["direction"]) == [DIR_UNKNOWN]


# ---- classic pcap variants ---------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_classic_byte_orders_and_precisions(tmp_path: Path, order: str, nano: bool) -> None:
    data = pcap([ether(tcp4()), ether(tcp6())], order=order, nano=nano, ts0=1_700_000_000.123456)
    path = write(tmp_path, "c.pcap", data)
    reader = open_capture(path)
    table = np.concatenate([c.table for c in reader.chunks()])
    _check_two_rsts(table)
    assert reader.info.format == ("pcap-ns" if nano else "pcap")
    assert table["ts"][0] == pytest.approx(1_700_000_000.123456, abs=1e-9)
    assert table["ts"][1] == pytest.approx(1_700_000_000.623456, abs=1e-9)
    assert reader.info.first_ts == table["ts"][0] and reader.info.last_ts == table["ts"][1]
    times = [float(r[0]) for r in tshark_rows(path, "frame.time_epoch")]
    assert np.allclose(times, table["ts"], atol=1e-6, rtol=0)


def test_gzip_pcap_and_pcapng(tmp_path: Path) -> None:
    plain = pcap([ether(tcp4()), ether(tcp6())], nano=True)
    path = write(tmp_path, "c.pcap.gz", gzip.compress(plain))
    table, _, info = read_table(path)
    _check_two_rsts(table)
    assert info.format == "pcap-ns+gzip"
    assert info.bytes == len(plain)
    ng = shb() + idb(1) + epb(0, 10**15, ether(tcp4())) + epb(0, 10**15 + 1, ether(tcp6()))
    table, _, info = read_table(write(tmp_path, "c.pcapng.gz", gzip.compress(ng)))
    _check_two_rsts(table)
    assert info.format == "pcapng+gzip"


def test_modified_pcap_records(tmp_path: Path) -> None:
    """Kuznetzov's patched libpcap adds 8 bytes (ifindex, protocol, pkt type) to every record header."""
    head = pcap([], order="<")
    head = b"\x34\xcd\xb2\xa1" + head[4:]
    recs = b""
    for i, pkt in enumerate([ether(tcp4()), ether(tcp6())]):
        recs += (1000 + i).to_bytes(4, "little") + bytes(4) + len(pkt).to_bytes(4, "little") * 2
        recs += bytes(8) + pkt
    table, _, info = read_table(write(tmp_path, "m.pcap", head + recs))
    _check_two_rsts(table)
    assert info.warnings == []


# ---- pcapng ------------------------------------------------------------------------------------


def test_pcapng_sections_orders_resolutions_and_blocks(tmp_path: Path) -> None:
    data = (
        shb("<")
        + idb(1, "<", tsresol=9, name="eth0")  # nanoseconds
        + idb(276, "<", tsresol=0x80 | 20, tsoffset=100)  # 2^-20 s ticks, +100 s
        + epb(0, 1_700_000_000_500_000_000, ether(tcp4()), flags=1)
        + epb(1, (1_600_000_000 << 20) + (1 << 19), sll2(tcp6()), flags=2)
        + block(0x1234, b"junk")  # unknown block types are skipped and counted in one warning
        + block(0x1234, b"")
        + block(4, b"\0\0\0\0")  # a name resolution block is known and ignored
        + shb(">")  # a second section, big-endian: interfaces start again at local id 0
        + idb(0, ">", snaplen=64)  # BSD NULL, µs, snaplen 64
        + idb(101, ">", tsresol=3)  # raw IP, milliseconds
        + old_pb(1, 1_650_000_000_250, tcp4(flags="SA"), ">")
        + spb(null(tcp6(payload=b"x" * 40), 24, ">"), ">", snaplen=64)
        + epb(1, 1_650_000_001_000, tcp4(payload=b"abc"), ">")
    )
    path = write(tmp_path, "multi.pcapng", data)
    reader = open_capture(path)
    chunks = list(reader.chunks())
    table = np.concatenate([c.table for c in chunks])
    info = reader.info
    assert info.format == "pcapng" and info.packets == 5 and info.tcp_packets == 5
    assert [(i.id, i.linktype, i.section, i.name) for i in info.interfaces] == [
        (0, 1, 0, "eth0"),
        (1, 276, 0, None),
        (2, 0, 1, None),
        (3, 101, 1, None),
    ]
    assert info.link_types == ["ether", "linux-sll2", "null", "raw"]
    assert info.interfaces[1].tsresol == 2.0**-20 and info.interfaces[3].tsresol == pytest.approx(1e-3)
    assert list(table["frame"]) == [1, 2, 3, 4, 5]
    assert list(table["iface"]) == [0, 1, 3, 2, 3]
    assert list(table["direction"][:2]) == [DIR_IN, DIR_OUT]
    assert table["ts"][0] == pytest.approx(1_700_000_000.5, abs=1e-9)
    assert table["ts"][1] == pytest.approx(1_600_000_100.5, abs=1e-9)
    assert table["ts"][2] == pytest.approx(1_650_000_000.25, abs=1e-9)
    assert table["ts"][3] == table["ts"][2]  # simple packet blocks have no time: carried forward
    assert table["ts"][4] == pytest.approx(1_650_000_001.0, abs=1e-9)
    assert table["flags"][2] == SYN | ACK
    # the SPB is cut to its interface's 64-byte snaplen: 4 NULL + 40 IPv6 + 20 TCP, no payload
    spb_row = table[table["frame"] == 4]
    assert (spb_row["payload_len"][0], spb_row["captured_len"][0]) == (40, 0)
    assert any("unknown type 0x00001234" in w and "2 pcapng blocks" in w for w in info.warnings)
    assert any("simple packet blocks" in w for w in info.warnings)
    got = tshark_rows(path, "frame.number", "tcp.srcport", "frame.time_epoch")
    assert [int(r[0]) for r in got] == [1, 2, 3, 4, 5]
    assert [int(r[1]) for r in got] == list(table["sport"])
    assert np.allclose(
        [float(r[2]) for r in got if r[0] != "4"], np.delete(table["ts"], 3), atol=1e-6, rtol=0
    )


# ---- IP and TCP header variants ------------------------------------------------------------------


def test_ipv4_options_and_ipv6_extension_headers(tmp_path: Path) -> None:
    v4 = raw(IP(src="10.1.2.3", dst="10.9.8.7", options=[IPOption_Router_Alert()]) / TCP(flags="R", sport=7))
    assert v4[0] & 0x0F == 6
    chain = (
        IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting()
        / IPv6ExtHdrDestOpt()
        / AH(nh=44, payloadlen=4, spi=1, seq=1, icv=b"\0" * 12)  # scapy leaves nh/length to us
        / IPv6ExtHdrFragment(offset=0, m=0, id=0xABCDEF)
    )
    v6 = tcp6(ext=chain)
    path = write(tmp_path, "x.pcap", pcap([ether(v4), ether(v6)]))
    table, _, info = read_table(path)
    assert list(table["sport"]) == [7, 40001]
    assert table["ip_id"][1] == 0xABCDEF  # the fragment header's id
    assert list(table["csum"]) == [CSUM_OK, CSUM_OK]
    assert info.fragments_skipped == 0
    assert tshark_rows(path, "tcp.srcport", "ipv6.fraghdr.ident") == [["7", ""], ["40001", "0x00abcdef"]]


def test_non_first_fragments_are_skipped_and_counted(tmp_path: Path) -> None:
    first4 = raw(
        IP(src="10.0.0.1", dst="10.0.0.2", flags="MF", id=5, proto=6) / raw(TCP(flags="R") / (b"a" * 32))
    )
    later4 = raw(IP(src="10.0.0.1", dst="10.0.0.2", frag=5, id=5, proto=6) / (b"b" * 16))
    later6 = raw(
        IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(offset=3, nh=6) / (b"c" * 16)
    )
    table, _, info = read_table(
        write(tmp_path, "f.pcap", pcap([ether(first4), ether(later4), ether(later6)]))
    )
    assert list(table["frame"]) == [1]  # the first fragment holds the TCP header and is kept
    assert info.fragments_skipped == 2 and info.packets == 3
    second = 24 + 16 + len(ether(first4))  # the record header of frame 2
    assert info.warnings == [f"skipped 2 non-first IP fragments (no TCP header), first at byte {second}"]
    previous = walk.use_accelerator(not walk.ACCELERATED)  # the other implementation agrees
    try:
        assert read_table(tmp_path / "f.pcap")[2].warnings == info.warnings
    finally:
        walk.use_accelerator(previous)


def test_snaplen_cut_packets_keep_what_is_there(tmp_path: Path) -> None:
    full = ether(tcp4(flags="RA", payload=b"z" * 100))
    pkts = [full, full, full]
    caps = [14 + 20 + 16, 14 + 20 + 15, 14 + 20 + 20 + 30]  # window present / window cut / payload cut
    path = write(tmp_path, "s.pcap", pcap(pkts, snaplen=84, caplens=caps))
    table, segments, info = read_table(path)
    assert list(table["frame"]) == [1, 3]
    assert list(table["payload_len"]) == [100, 100]
    assert list(table["captured_len"]) == [0, 30]
    assert list(table["csum"]) == [CSUM_UNKNOWN, CSUM_UNKNOWN]
    assert len(segments[1]) == 16 and len(segments[3]) == 50
    assert info.warnings == []


def test_rst_payload_padding_and_bad_checksum(tmp_path: Path) -> None:
    with_data = ether(tcp4(flags="RA", payload=b"Access Denied"))
    bare = ether(tcp4(flags="R")) + b"\0" * 6  # Ethernet padding to 60 bytes is not TCP payload
    broken = bytearray(ether(tcp4(flags="R", payload=b"q")))
    broken[14 + 20 + 16] ^= 0xFF  # checksum wrong (offload): the row stays
    path = write(tmp_path, "p.pcap", pcap([with_data, bare, bytes(broken)]))
    table, segments, _ = read_table(path)
    assert list(table["payload_len"]) == [13, 0, 1]
    assert segments[1][20:] == b"Access Denied" and len(segments[2]) == 20
    assert list(table["csum"]) == [CSUM_OK, CSUM_OK, CSUM_BAD]
    assert table["head"][0] == int.from_bytes(b"Acce", "big")
    assert table["head"][2] == ord("q") << 24
    status = tshark_rows(path, "tcp.checksum.status", display_filter="tcp")
    assert status == [["2"], ["2"], ["2"]]  # tshark does not verify by default: "unverified"


def test_offload_zero_ip_length_uses_the_frame(tmp_path: Path) -> None:
    pkt = bytearray(tcp4(flags="A", payload=b"y" * 3000))
    pkt[2:4] = b"\0\0"  # TSO: the capturing host wrote total length 0
    table, _, _ = read_table(write(tmp_path, "t.pcap", pcap([ether(bytes(pkt))])))
    assert list(table["payload_len"]) == [3000] and list(table["captured_len"]) == [3000]


@pytest.mark.parametrize(
    ("prefix", "sport"),
    [
        (b"", 3544),
        (b"", 40123),  # relays use other ports: found by Wireshark's heuristic
        (b"\x00\x00" + b"\x12\x34" + bytes(4), 3544),  # origin indication
        (b"\x00\x01\x02\x03ab" + b"xyz" + bytes(8) + b"\x00", 3544),  # authentication (id 2, auth 3)
        (b"\x00\x01\x00\x00" + bytes(9) + b"\x00\x00" + bytes(6), 3544),  # both
    ],
)
def test_teredo(tmp_path: Path, prefix: bytes, sport: int) -> None:
    inner = tcp6(flags="RA")
    path = write(tmp_path, "t.pcap", pcap([ether(teredo(inner, sport=sport, prefix=prefix))]))
    table, segments, _ = read_table(path)
    assert len(table) == 1 and table["ipver"][0] == 6 and table["ttl"][0] == 33
    assert _addr(table[0], "src") == "2001:db8::1" and table["csum"][0] == CSUM_OK
    assert len(segments[1]) == 20
    rows = tshark_rows(path, "ipv6.src", "tcp.srcport")
    assert rows in ([], [["2001:db8::1", "40001"]])  # tshark needs its heuristic for non-3544 ports
    not_ipv6 = ether(teredo(b"\x60" + bytes(39), sport=3544))  # payload length 0 but 0 bytes follow: fine
    table, _, _ = read_table(write(tmp_path, "n.pcap", pcap([not_ipv6])))
    assert len(table) == 0


def test_ip_in_ip(tmp_path: Path) -> None:
    inner4 = tcp4()
    outer4 = raw(IP(src="192.0.2.1", dst="192.0.2.2", proto=4) / inner4)
    outer6 = raw(IP(src="192.0.2.1", dst="192.0.2.2", proto=41) / tcp6())
    table, _, _ = read_table(write(tmp_path, "i.pcap", pcap([ether(outer4), ether(outer6)])))
    _check_two_rsts(table)


def test_tcp_options_summary(tmp_path: Path) -> None:
    syn = raw(
        IP(src="10.0.0.1", dst="10.0.0.2")
        / TCP(flags="S", options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (123456, 0)), ("WScale", 7)])
    )
    ts_only = raw(
        IP(src="10.0.0.1", dst="10.0.0.2")
        / TCP(flags="A", options=[("NOP", None), ("NOP", None), ("Timestamp", (99, 1))])
    )
    sack = raw(
        IP() / TCP(flags="A", options=[("NOP", None), ("NOP", None), ("SAck", (1, 2)), ("AltChkSum", (0, 0))])
    )
    bad = bytearray(raw(IP() / TCP(flags="A", options=[("MSS", 1460)])))
    bad[20 + 21] = 9  # MSS option claims 9 bytes in a 4-byte option space
    frames = [ether(syn), ether(ts_only), ether(sack), ether(bytes(bad)), ether(syn)]
    caps = [len(f) for f in frames[:4]] + [14 + 20 + 24]  # the last SYN's options are cut after MSS
    path = write(tmp_path, "o.pcap", pcap(frames, caplens=caps))
    table, _, _ = read_table(path)
    assert table["opts"][0] == OPT_MSS | OPT_SACK_OK | OPT_TS | OPT_WSCALE and table["tsval"][0] == 123456
    assert table["opts"][1] == OPT_TS and table["tsval"][1] == 99
    assert table["opts"][2] == OPT_SACK | OPT_OTHER
    assert table["opts"][3] & OPT_MALFORMED
    assert table["opts"][4] & OPT_TRUNCATED and table["opts"][4] & OPT_MSS
    assert (table["csum"] == CSUM_UNCHECKED).all()  # only RSTs are checked


# ---- streaming -----------------------------------------------------------------------------------

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "pcaps"


@pytest.mark.parametrize("name", ["zeek_ssh_ssh.pcap", "zeek_ldap_missing_krbtgt_ldap_request.pcapng"])
@pytest.mark.parametrize("block_size", [64, 1000, 65536])
def test_small_blocks_give_the_same_table(name: str, block_size: int) -> None:
    """Records split across blocks and records larger than the block are carried over exactly."""
    path = CORPUS / name
    if not path.exists():
        pytest.skip("corpus not available")
    whole, seg_whole, info_whole = read_table(path)
    reader = open_capture(path, block_size=block_size)
    chunks = list(reader.chunks())
    assert len(chunks) > 1
    assert np.array_equal(np.concatenate([c.table for c in chunks]), whole)
    merged = {}
    for c in chunks:
        merged.update(c.segments)
    assert merged == seg_whole
    assert reader.info.packets == info_whole.packets and reader.info.warnings == []


def test_real_tool_fixtures() -> None:
    """tcpdump -i any (SLL2), tcpdump --time-stamp-precision=nano, dumpcap with two interfaces."""
    sll2_table, seg, info = read_table(FIXTURES / "loopback_any_sll2.pcap")
    assert info.link_types == ["linux-sll2"] and len(seg) == 2
    assert set(sll2_table["direction"]) <= {DIR_IN, DIR_OUT} and (sll2_table["ifindex"] == 1).all()
    ns_table, _, info = read_table(FIXTURES / "loopback_lo_ns.pcap")
    assert info.format == "pcap-ns" and info.link_types == ["ether"]
    assert ns_table["ts"][0] % 1e-6 != 0 or ns_table["ts"][1] % 1e-6 != 0  # sub-µs digits survive
    multi, _, info = read_table(FIXTURES / "loopback_multi.pcapng")
    assert info.link_types == ["ether", "linux-sll"] and sorted(set(multi["iface"])) == [0, 1]
    if shutil.which("tshark"):
        assert len(multi) == len(tshark_rows(FIXTURES / "loopback_multi.pcapng", "frame.number"))


def test_interfaces_defined_between_packets(tmp_path: Path) -> None:
    """IDBs between packets only add interfaces; a packet naming a later IDB's id is not resolved early."""
    data = shb() + idb(1)
    for i in range(1, 300):
        data += epb(i - 1, i, ether(tcp4())) + idb(1, tsresol=9 if i % 2 else 6)
    data += epb(300, 1, ether(tcp4()))  # names interface 300, which is never defined
    table, _, info = read_table(write(tmp_path, "idbs.pcapng", data))
    assert len(info.interfaces) == 300 and info.packets == 300
    assert list(table["iface"]) == list(range(299))
    last = len(data) - len(epb(300, 1, ether(tcp4())))
    assert info.warnings == [f"skipped 1 frames naming an undefined pcapng interface (first at byte {last})"]
    assert table["ts"][1] == pytest.approx(2e-9) and table["ts"][2] == pytest.approx(3e-6)
    early = shb() + idb(1) + epb(1, 1, ether(tcp4())) + idb(1) + epb(1, 2, ether(tcp4()))
    table, _, info = read_table(write(tmp_path, "early.pcapng", early))
    assert list(table["frame"]) == [2] and "undefined pcapng interface" in info.warnings[0]


def _gre(inner: bytes, ptype: int, key: bool = False, seq: bool = False, csum: bool = False) -> bytes:
    flags = (0x8000 if csum else 0) | (0x2000 if key else 0) | (0x1000 if seq else 0)
    head = flags.to_bytes(2, "big") + ptype.to_bytes(2, "big")
    head += b"\0\0\0\0" * (int(csum) + int(key) + int(seq))
    return raw(IP(src="192.0.2.7", dst="192.0.2.8", proto=47) / (head + inner))


def test_vxlan_and_gre_tunnels(tmp_path: Path) -> None:
    from scapy.all import UDP, VXLAN, Ether  # type: ignore[attr-defined]

    vx = raw(
        IP(src="192.0.2.1", dst="192.0.2.2")
        / UDP(sport=50000, dport=4789)
        / VXLAN(vni=7)
        / Ether()
        / IP(tcp4())
    )
    frames = [
        ether(vx),  # AWS traffic mirroring style: Ethernet inside VXLAN
        ether(_gre(tcp6(), 0x86DD, key=True, seq=True)),
        ether(_gre(ether(tcp4(), (0x8100,)), 0x6558, csum=True)),  # bridged Ethernet with a VLAN tag
        ether(_gre(tcp4(), 0x0800)),
        ether(_gre(tcp4(), 0x880B)),  # PPP: not decoded
    ]
    path = write(tmp_path, "tun.pcap", pcap(frames))
    table, segments, info = read_table(path)
    assert list(table["frame"]) == [1, 2, 3, 4] and info.warnings == []
    assert [_addr(r, "src") for r in table] == ["10.1.2.3", "2001:db8::1", "10.1.2.3", "10.1.2.3"]
    assert (table["csum"] == CSUM_OK).all() and sorted(segments) == [1, 2, 3, 4]
    got = [[str(r["frame"]), str(r["sport"])] for r in table]
    assert tshark_rows(path, "frame.number", "tcp.srcport") == got
    previous = walk.use_accelerator(not walk.ACCELERATED)  # the other implementation agrees
    try:
        other, other_segments, _ = read_table(path)
    finally:
        walk.use_accelerator(previous)
    assert np.array_equal(table, other) and segments == other_segments
