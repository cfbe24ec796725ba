"""Classic pcap and pcapng EPB runs walked and decoded in one C call (`_cwalk.pcap_block`, `pcapng_run`)
give, chunk by chunk, exactly what the separate C walk + decode and the pure Python path give: tables,
RST segments, info, warnings."""

from __future__ import annotations

import functools
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from scapy.all import IP, TCP, IPv6, IPv6ExtHdrFragment, raw  # type: ignore[attr-defined]

from resetlens.capture import decode, open_capture, walk
from resetlens.capture.table import CSUM_BAD, CSUM_OK, CSUM_UNKNOWN, PACKET_DTYPE
from resetlens.errors import CaptureError
from tests.test_capture_badinput import _tunnelled
from tests.test_capture_build import (
    block,
    epb,
    ether,
    fddi,
    idb,
    null,
    old_pb,
    option,
    pcap,
    shb,
    sll,
    sll2,
    spb,
    tcp4,
    tcp6,
    write,
)

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "pcaps"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "capture"
SMALL = sorted(p for p in CORPUS.glob("*.pcap*") if p.stat().st_size < 2_000_000) if CORPUS.is_dir() else []
CAPTURES = SMALL + sorted(FIXTURES.glob("loopback_*.pcap*"))

needs_fused = pytest.mark.skipif(
    walk._cwalk is None or decode.PCAP_LAYOUT is None, reason="C accelerator not built or table not writable"
)

MODES = {"python": (False, False), "c": (True, False), "fused": (True, True)}  # (C walk/decode, pcap_block)


def _read(path: Path, block_size: int, mode: str):
    accelerated, fused = MODES[mode]
    previous, previous_fused = walk.use_accelerator(accelerated), decode.use_pcap_block(fused)
    try:
        assert decode.pcap_block_available() == (accelerated and fused)
        reader = open_capture(path, block_size)
        chunks = [(c.table.copy(), list(c.segments.items())) for c in reader.chunks()]
    except CaptureError as exc:  # nothing usable: the same one-line error everywhere
        return [], str(exc)
    finally:
        walk.use_accelerator(previous)
        decode.use_pcap_block(previous_fused)
    i = reader.info
    info = (
        i.packets,
        i.tcp_packets,
        i.bytes,
        i.first_ts,
        i.last_ts,
        i.warnings,
        i.fragments_skipped,
        i.link_types,
    )
    return chunks, info


def _same_everywhere(path: Path, block_size: int = 1 << 22):
    """The three paths agree chunk by chunk; returns the fused path's chunks and info."""
    results = {mode: _read(path, block_size, mode) for mode in MODES}
    fused_chunks, fused_info = results["fused"]
    for mode in ("python", "c"):
        chunks, info = results[mode]
        assert info == fused_info, mode
        assert len(chunks) == len(fused_chunks), mode
        for (table, segments), (fused_table, fused_segments) in zip(chunks, fused_chunks, strict=True):
            assert fused_table.dtype == PACKET_DTYPE
            assert table.tobytes() == fused_table.tobytes(), mode  # bit for bit, ts included
            assert segments == fused_segments, mode  # same RSTs in the same order
    return fused_chunks, fused_info


def _rst4(**kw) -> bytes:
    return tcp4(flags="RA", **kw)


def _kuznetzov(packets: list[bytes]) -> bytes:
    """Kuznetzov's modified pcap: 24-byte record headers (ifindex, protocol, packet type, pad)."""
    out = struct.pack("<IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 65535, 1)
    for i, pkt in enumerate(packets):
        out += struct.pack("<IIIIIHBx", 1_700_000_000 + i, 250_000, len(pkt), len(pkt), 2, 0x0800, 0) + pkt
    return out


@functools.cache
def _generated() -> dict[str, bytes]:
    frag4 = raw(IP(src="10.0.0.1", dst="10.0.0.2", frag=3, proto=6) / (b"x" * 30))
    frag6 = raw(IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(offset=8, nh=6) / (b"y" * 30))
    first6 = raw(IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(offset=0, id=99) / TCP())
    bad_sum = bytearray(_rst4(payload=b"abc"))
    bad_sum[-1] ^= 0xFF  # the payload changes, the checksum does not
    mixed = [
        ether(tcp4(flags="S")),
        ether(_rst4()),
        ether(tcp6(flags="R", payload=b"odd")),
        ether(bytes(bad_sum)),
        ether(tcp4(flags="A", payload=b"GET / HTTP/1.1\r\n"), tags=(0x8100, 0x88A8)),
        ether(frag4),
        ether(frag6),
        ether(first6),
        ether(
            raw(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(flags="R", options=[("MSS", 1460), ("NOP", None)]))
        ),
        b"\x01\x02",  # runt
    ] + [ether(t) for t in _tunnelled()]
    cut = [len(p) for p in mixed]
    cut[1] = 14 + 20 + 12  # RST cut inside its TCP header: no row
    cut[2] = len(mixed[2]) - 2  # RST cut inside its payload: checksum unknown
    cases = {
        "mixed.pcap": pcap(mixed),
        "mixed-snap.pcap": pcap(mixed, caplens=cut),
        "mixed-be-ns.pcap": pcap(mixed, order=">", nano=True),
        "sll.pcap": pcap([sll(_rst4(), 4), sll(tcp6(), 0), sll(tcp4(), 9)], linktype=113),
        "sll2.pcap": pcap([sll2(_rst4(), 4, 7), sll2(tcp6(), 1, 2)], linktype=276),
        "null-le.pcap": pcap([null(_rst4(), 2), null(tcp6(), 30)], linktype=0),
        "loop-be.pcap": pcap([null(_rst4(), 2, ">"), null(tcp6(), 24, ">")], linktype=108),
        "fddi.pcap": pcap([fddi(_rst4()), fddi(tcp6())], linktype=10),
        "kuznetzov.pcap": _kuznetzov([ether(_rst4()), ether(tcp4())]),
    }
    for code in (101, 12, 14, 228, 229):
        cases[f"raw{code}.pcap"] = pcap([_rst4(), tcp6(), tcp4(flags="A")], linktype=code)
    frames = [ether(tcp4(flags="RA" if i % 7 == 0 else "A", payload=bytes(i % 50))) for i in range(600)]
    many = pcap(frames)
    cases["many.pcap"] = many
    cases["many-cut.pcap"] = many[:-9]
    absurd = bytearray(many)
    struct.pack_into("<I", absurd, 24 + sum(16 + len(f) for f in frames[:300]) + 8, 0x7FFFFFF0)  # record 301
    cases["many-absurd.pcap"] = bytes(absurd)
    cases["big-record.pcap"] = pcap([ether(tcp4()), ether(_rst4(payload=bytes(9000))), ether(tcp4())])
    cases["junk.pcap"] = pcap([ether(tcp4())]) + b"\xff" * 40
    cases["header-only.pcap"] = pcap([])
    cases["many.pcap.gz"] = gzip.compress(many)
    cases.update(_pcapng_cases(mixed))
    return cases


def _pcapng_cases(mixed: list[bytes]) -> dict[str, bytes]:
    """Sections of both byte orders, interfaces of every kind, EPB options, SPB/PB among EPBs, bad blocks."""
    ticks = 1_700_000_000_123_456
    head = shb() + idb(1) + idb(276, tsresol=9, tsoffset=-3600) + idb(147) + idb(1, tsresol=0x94)
    epbs = b"".join(epb(0, ticks + i, p) for i, p in enumerate(mixed))
    epbs += epb(1, ticks * 1000 + 7, sll2(_rst4(), 0, 4))  # SLL2 says "in": the flags must not win
    epbs += epb(1, ticks * 1000 + 9, sll2(tcp6(), 9, 4), flags=2)  # SLL2 says nothing: the flags do
    epbs += epb(0, ticks + 50, ether(_rst4()), flags=1) + epb(0, ticks + 51, ether(tcp4()), flags=0x2 | 0x10)
    epbs += epb(2, ticks + 60, b"\0" * 40) + epb(9, ticks + 61, ether(tcp4()))  # unsupported, undefined iface
    epbs += epb(3, (ticks << 3) + 5, ether(tcp6(flags="RA")))  # 2^-20 s ticks
    epbs += epb(0, ticks + 70, ether(tcp4()), caplen=30)  # cut by the snaplen
    opts = option(1, b"comment") + option(2, struct.pack("<I", 2)) + option(0, b"")
    body = struct.pack("<IIIII", 0, 0, 5, len(ether(tcp4())), len(ether(tcp4()))) + ether(tcp4()) + b"\0\0"
    epbs += block(6, body + opts)  # epb_flags after a comment option
    be = (
        shb(">")
        + idb(1, ">")
        + epb(0, ticks, ether(_rst4()), ">", flags=1)
        + epb(0, ticks + 1, ether(tcp6()), ">")
    )
    mixed_blocks = epb(0, 5, ether(tcp4())) + spb(ether(tcp6())) + epb(0, 6, ether(_rst4()))
    mixed_blocks += old_pb(0, 7, ether(tcp4())) + block(0x77, b"??") + epb(0, 8, ether(tcp6()))
    trailing = bytearray(epb(0, 9, ether(tcp4())))
    trailing[-4:] = struct.pack("<I", len(trailing) + 4)
    fat = bytearray(epb(0, 9, ether(tcp4())))
    fat[20:24] = struct.pack("<I", 5000)
    bad_len = bytearray(epb(0, 9, ether(tcp4())))
    bad_len[4:8] = struct.pack("<I", 13)
    good = head + epbs
    return {
        "ng.pcapng": good,
        "ng-sections.pcapng": good + be + shb() + idb(113) + epb(0, ticks, sll(_rst4(), 4)) + be,
        "ng-spb-pb.pcapng": head + mixed_blocks + epbs,
        "ng-trailing.pcapng": good + bytes(trailing) + epbs,
        "ng-caplen.pcapng": good + bytes(fat) + epbs,
        "ng-badlen.pcapng": good + bytes(bad_len) + epbs,
        "ng-cut.pcapng": good[:-7],
        "ng-only-unsupported.pcapng": shb() + idb(147) + epb(0, 1, b"\0" * 30),
        # before any IDB: the general walk times the record with the interface defined after it
        "ng-epb-before-idb.pcapng": shb()
        + epb(0, ticks, ether(tcp4()))
        + idb(1, tsresol=9)
        + epb(0, ticks, b""),
        "ng.pcapng.gz": gzip.compress(good + be),
    }


@needs_fused
@pytest.mark.parametrize("name", sorted(_generated()))
@pytest.mark.parametrize("block_size", [64, 333, 4096, 1 << 22])
def test_generated_captures_agree(tmp_path: Path, name: str, block_size: int) -> None:
    _same_everywhere(write(tmp_path, name, _generated()[name]), block_size)


@needs_fused
@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_corpus_captures_agree(path: Path) -> None:
    for block_size in (777, 1 << 22):
        _same_everywhere(path, block_size)


@needs_fused
def test_checksums_segments_and_warnings(tmp_path: Path) -> None:
    chunks, info = _same_everywhere(write(tmp_path, "mixed-snap.pcap", _generated()["mixed-snap.pcap"]))
    table = np.concatenate([t for t, _ in chunks])
    segments = dict(s for _, segs in chunks for s in segs)
    by_frame = {int(r["frame"]): int(r["csum"]) for r in table if r["flags"] & 0x004}
    assert 2 not in by_frame  # cut inside the TCP header
    assert by_frame[3] == CSUM_UNKNOWN and by_frame[4] == CSUM_BAD and by_frame[9] == CSUM_OK
    assert set(segments) == set(by_frame)
    assert segments[4].endswith(b"ab" + bytes([ord("c") ^ 0xFF]))
    assert info[6] == 2  # the two non-first fragments
    assert any("skipped 2 non-first IP fragments" in w for w in info[5])


@needs_fused
def test_pcapng_fields_and_warnings(tmp_path: Path) -> None:
    chunks, info = _same_everywhere(write(tmp_path, "ng.pcapng", _generated()["ng.pcapng"]))
    table = np.concatenate([t for t, _ in chunks])
    rows = {int(r["frame"]): r for r in table}
    assert rows[16]["direction"] == 1 and rows[17]["direction"] == 2  # SLL2's own, then epb_flags
    assert rows[18]["direction"] == 1 and rows[19]["direction"] == 2 and rows[24]["direction"] == 2
    assert rows[16]["iface"] == 1 and rows[22]["iface"] == 3
    assert rows[16]["ts"] == 1_700_000_000 + 123_456_007 / 1e9 - 3600  # ns ticks, if_tsoffset
    assert 20 not in rows and 21 not in rows and 23 not in rows  # unsupported, undefined, cut
    assert any("unsupported link type 147" in w and "skipped 1 frames" in w for w in info[5])
    assert any("undefined pcapng interface" in w for w in info[5])


@needs_fused
def test_kept_tables_are_not_reused(tmp_path: Path) -> None:
    """Row memory of dropped tables is recycled for later blocks; tables still held keep their rows."""
    frame = ether(tcp4(flags="A"))
    seq_at = 14 + 20 + 4
    head = pcap([])
    records = (
        struct.pack("<IIII", 1_700_000_000, i, len(frame), len(frame))
        + frame[:seq_at]
        + struct.pack("!I", i)
        + frame[seq_at + 4 :]
        for i in range(200_000)
    )
    path = write(tmp_path, "many.pcap", head + b"".join(records))  # 1 MiB blocks of ~12 k rows: recycled
    reference = [t for t, _ in _read(path, 1 << 20, "c")[0]]
    kept = {}
    for k, chunk in enumerate(open_capture(path, 1 << 20).chunks()):
        if k % 3 == 0:
            kept[k] = chunk.table
    assert len(reference) > 12 and len(kept) > 4
    for k, table in kept.items():
        assert table.tobytes() == reference[k].tobytes()
        assert table.flags.writeable and table.flags.c_contiguous
    first = kept[0]
    first["frame"] += 1  # writable, and only its own rows change
    assert np.array_equal(first["frame"], reference[0]["frame"] + 1)
    assert kept[3].tobytes() == reference[3].tobytes()


@needs_fused
def test_packet_table_has_the_fast_layout() -> None:
    """pcap_block stores at constant offsets only for this layout: a schema change must update _cwalk.c."""
    assert decode.PCAP_LAYOUT == walk._cwalk.NATIVE_LAYOUT


@needs_fused
def test_any_field_layout(tmp_path: Path) -> None:
    """pcap_block writes through any (offset, size) layout; unexpected sizes and padding included."""
    data = _generated()["mixed.pcap"]
    buf = bytearray(data[24:]) + bytearray(64)
    names = decode.C_FIELDS + decode.PCAP_FIELDS
    wide = np.dtype([("pad", "u2")] + [(n, "f8" if n == "ts" else "u8") for n in names])
    layout = tuple(x for n in names for x in (wide.fields[n][1], 8))
    args = (buf, len(data) - 24, 16, 1 << 20, True, 1e-6, 1, 24, 1)
    rows, n, consumed, absurd, packets, *_ = walk._cwalk.pcap_block(*args, wide.itemsize, layout)
    native = walk._cwalk.pcap_block(*args, PACKET_DTYPE.itemsize, decode.PCAP_LAYOUT)
    got = np.frombuffer(rows, wide, n)
    want = np.frombuffer(native[0], PACKET_DTYPE, native[1])
    assert (consumed, absurd, packets) == (len(data) - 24, False, 15) and n == len(want) > 5
    assert not got["pad"].any()  # zeroed: the fields do not cover the whole row
    for name in names:
        assert np.array_equal(got[name], want[name].astype(got[name].dtype)), name
