"""Hostile and broken captures: one-line CaptureError when nothing is usable, else warnings + the valid part."""

from __future__ import annotations

import gzip
import random
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.all import raw  # type: ignore[attr-defined]

from resetlens.capture import decode, extract_frames, open_capture, read_table, walk
from resetlens.errors import CaptureError
from tests.test_capture_build import block, epb, ether, idb, pcap, shb, tcp4, tcp6, write

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "pcaps"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "capture"
GOOD = pcap([ether(tcp4()), ether(tcp6()), ether(tcp4(flags="A"))])  # 3 frames, records at 24, 94, 178
REC2 = 24 + 16 + len(ether(tcp4()))  # offset of the second record header
REC3 = REC2 + 16 + len(ether(tcp6()))  # offset of the third record header


def _error(path: Path) -> CaptureError:
    with pytest.raises(CaptureError) as exc:
        read_table(path)
    message = str(exc.value)
    assert "\n" not in message and str(path) in message
    return exc.value


def test_empty_file(tmp_path: Path) -> None:
    err = _error(write(tmp_path, "empty.pcap", b""))
    assert err.offset == 0 and "empty" in str(err)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert "cannot open" in str(_error(tmp_path / "nope.pcap"))
    assert "cannot open" in str(_error(tmp_path))


def test_wrong_magic(tmp_path: Path) -> None:
    err = _error(write(tmp_path, "text.pcap", b"GET / HTTP/1.1\r\n\r\n"))
    assert err.offset == 0 and "47 45 54 20" in str(err)


def test_truncated_file_headers(tmp_path: Path) -> None:
    err = _error(write(tmp_path, "short.pcap", GOOD[:10]))
    assert "truncated pcap file header" in str(err) and err.offset == 10
    err = _error(write(tmp_path, "short.pcapng", shb()[:20]))
    assert "truncated pcapng section header" in str(err)
    err = _error(write(tmp_path, "short.pcap.gz", gzip.compress(GOOD[:23])))
    assert "truncated pcap file header" in str(err)


def test_bad_byte_order_magic(tmp_path: Path) -> None:
    data = bytearray(shb())
    data[8:12] = b"abcd"
    assert "byte-order" in str(_error(write(tmp_path, "bom.pcapng", bytes(data))))


def test_truncated_last_record(tmp_path: Path) -> None:
    table, _, info = read_table(write(tmp_path, "cut.pcap", GOOD[:-7]))
    assert list(table["frame"]) == [1, 2]
    assert info.packets == 2
    assert info.warnings == [
        f"truncated last record at byte {REC3}: {len(GOOD) - 7 - REC3} bytes left after the last complete one"
    ]


def test_absurd_caplen(tmp_path: Path) -> None:
    data = bytearray(GOOD)
    struct.pack_into("<I", data, REC2 + 8, 0x7FFFFFF0)
    table, _, info = read_table(write(tmp_path, "absurd.pcap", bytes(data)))
    assert list(table["frame"]) == [1]
    assert (
        len(info.warnings) == 1 and f"absurd caplen 2147483632 in record at byte {REC2}" in info.warnings[0]
    )


def test_garbage_after_valid_records(tmp_path: Path) -> None:
    table, _, info = read_table(write(tmp_path, "junk.pcap", GOOD + b"\xff" * 40))
    assert list(table["frame"]) == [1, 2, 3]
    assert len(info.warnings) == 1 and f"at byte {len(GOOD)}" in info.warnings[0]
    table, _, info = read_table(write(tmp_path, "junk2.pcap", GOOD + b"\x00" * 7))
    assert len(table) == 3 and "truncated last record" in info.warnings[0]


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    noise = random.Random(7).randbytes(50 * 1024)  # incompressible, so half the stream is half the data
    big = pcap([ether(tcp4(payload=noise[i * 1024 : (i + 1) * 1024])) for i in range(50)])
    packed = gzip.compress(big)
    table, _, info = read_table(write(tmp_path, "cut.pcap.gz", packed[: len(packed) // 2]))
    assert 0 < len(table) < 50
    assert any("compressed stream ends before its end marker" in w for w in info.warnings)
    assert any("truncated last record" in w for w in info.warnings)


NG_HEAD = shb() + idb(1)
NG_PKT = epb(0, 10**15, ether(tcp4()))


def test_pcapng_trailing_length_mismatch(tmp_path: Path) -> None:
    bad = bytearray(NG_PKT)
    bad[-4:] = struct.pack("<I", len(NG_PKT) + 4)
    data = NG_HEAD + NG_PKT + bytes(bad) + NG_PKT
    table, _, info = read_table(write(tmp_path, "trail.pcapng", data))
    assert list(table["frame"]) == [1]
    at = len(NG_HEAD) + len(NG_PKT)
    assert (
        len(info.warnings) == 1 and f"byte {at}" in info.warnings[0] and "trailing length" in info.warnings[0]
    )


@pytest.mark.parametrize("length", [7, 13, 0x7FFFFFFC])
def test_pcapng_impossible_block_length(tmp_path: Path, length: int) -> None:
    bad = bytearray(NG_PKT)
    bad[4:8] = struct.pack("<I", length)
    table, _, info = read_table(write(tmp_path, "len.pcapng", NG_HEAD + NG_PKT + bytes(bad)))
    assert list(table["frame"]) == [1]
    at = len(NG_HEAD) + len(NG_PKT)
    assert len(info.warnings) == 1 and f"byte {at}" in info.warnings[0]


def test_pcapng_caplen_larger_than_block(tmp_path: Path) -> None:
    bad = bytearray(NG_PKT)
    bad[20:24] = struct.pack("<I", 5000)
    table, _, info = read_table(write(tmp_path, "cap.pcapng", NG_HEAD + NG_PKT + bytes(bad)))
    assert len(table) == 1 and "does not fit" in info.warnings[0]


def test_pcapng_unknown_block_and_other_problems(tmp_path: Path) -> None:
    data = NG_HEAD + block(0x77, b"??") + NG_PKT + block(0x77, b"") + epb(5, 1, ether(tcp4()))
    data += shb() + block(1, b"\1\0")  # an IDB too short to hold its fields
    table, _, info = read_table(write(tmp_path, "misc.pcapng", data))
    assert list(table["frame"]) == [1]
    assert info.packets == 2
    text = "\n".join(info.warnings)
    assert "2 pcapng blocks of unknown type 0x00000077" in text
    assert "undefined pcapng interface" in text
    assert "impossible length 16" in text


def test_unknown_link_types(tmp_path: Path) -> None:
    err = _error(write(tmp_path, "usb.pcap", pcap([b"\0" * 40], linktype=189)))
    assert "unsupported link type 189 (usb-linux)" in str(err) and err.offset == 20
    mixed = shb() + idb(147) + idb(1) + epb(0, 1, b"\0" * 30) + epb(1, 2, ether(tcp4()))
    table, _, info = read_table(write(tmp_path, "mixed.pcapng", mixed))
    assert list(table["frame"]) == [2]  # frame numbers count the skipped frame
    prefix = len(shb() + idb(147) + idb(1))
    assert info.warnings == [f"skipped 1 frames of unsupported link type 147 (user0), first at byte {prefix}"]
    only = shb() + idb(147) + epb(0, 1, b"\0" * 30)
    assert "no interface has a supported link type" in str(_error(write(tmp_path, "only.pcapng", only)))


def test_extract_frames_on_broken_file(tmp_path: Path) -> None:
    frames = extract_frames(write(tmp_path, "cut.pcap", GOOD[:-7]), {1, 2, 3})
    assert [f.frame for f in frames] == [1, 2]


# ---- property: nothing but CaptureError escapes -------------------------------------------------


def _tunnelled() -> list[bytes]:
    """IP packets carrying TCP through every tunnel the reader opens (so the fuzzer mutates them)."""
    from scapy.all import GRE, IP, UDP, VXLAN, Ether, Raw  # type: ignore[attr-defined]

    outer = IP(src="192.0.2.1", dst="192.0.2.2")
    return [
        raw(outer / UDP(dport=4789) / VXLAN() / Ether() / IP(tcp4())),
        raw(outer / GRE(proto=0x6558, key_present=1, key=5) / Ether() / IP(tcp6())),
        raw(outer / GRE(proto=0x0800) / IP(tcp4())),
        raw(outer / UDP(sport=3544) / Raw(b"\x00\x00" + bytes(6) + tcp6())),
        raw(IP(src="192.0.2.1", dst="192.0.2.2", proto=41) / tcp6()),
    ]


SEEDS = sorted(p for p in CORPUS.glob("*.pcap*") if p.stat().st_size < 40_000) if CORPUS.is_dir() else []
SEEDS += sorted(FIXTURES.glob("loopback_*.pcap*"))
SEED_BYTES = [p.read_bytes() for p in SEEDS] + [
    GOOD,
    NG_HEAD + NG_PKT + block(0x77, b"x") + epb(0, 5, ether(tcp6())),
    shb(">") + idb(276, ">", tsresol=0x94) + epb(0, 7, b"\0" * 20 + tcp4(), ">"),
    pcap([ether(t) for t in _tunnelled()]),
]


@st.composite
def hostile(draw) -> bytes:
    how = draw(st.sampled_from(["truncate", "flip", "splice", "random", "magic+random", "header+random"]))
    seed = draw(st.sampled_from(SEED_BYTES))
    if how == "truncate":
        data = seed[: draw(st.integers(0, len(seed)))]
    elif how == "flip":
        data = bytearray(seed)
        for _ in range(draw(st.integers(1, 12))):
            at = draw(st.integers(0, len(data) - 1))
            data[at] = draw(st.integers(0, 255))
        data = bytes(data)
    elif how == "splice":
        at = draw(st.integers(0, len(seed)))
        data = seed[:at] + draw(st.binary(max_size=64)) + seed[at + draw(st.integers(0, 64)) :]
    elif how == "random":
        data = draw(st.binary(max_size=512))
    elif how == "magic+random":
        magic = draw(
            st.sampled_from([b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a", b"\x1f\x8b"])
        )
        data = magic + draw(st.binary(max_size=512))
    else:
        data = seed[: draw(st.integers(24, 64))] + draw(st.binary(max_size=512))
    if draw(st.booleans()) and draw(st.integers(0, 4)) == 0:
        data = gzip.compress(data)[: draw(st.integers(0, len(data) + 40))]
    return data


def _read_all(path: Path, block_size: int):
    reader = open_capture(path, block_size=block_size)
    chunks = list(reader.chunks())
    table = np.concatenate([c.table for c in chunks]) if chunks else None
    segments = {k: v for c in chunks for k, v in c.segments.items()}
    return table, segments, reader.info


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=hostile())
def test_only_capture_error_escapes(tmp_path: Path, data: bytes) -> None:
    """Also: the pure Python path, the C walk + decode and the fused C pcap_block agree on every input."""
    path = write(tmp_path, "fuzz.cap", data)
    block_size = int.from_bytes(data[-2:] or b"\0", "little") % 3000 + 64
    outcomes = []
    modes = [(False, False), (True, False), (True, True)] if walk._cwalk is not None else [(False, False)]
    for accelerated, fused in modes:
        previous = walk.use_accelerator(accelerated)
        previous_fused = decode.use_pcap_block(fused)
        try:
            table, segments, info = _read_all(path, block_size)
            rows = 0 if table is None else len(table)
            assert rows == info.tcp_packets <= info.packets
            assert all("\n" not in w for w in info.warnings)
            if rows:
                assert set(segments) <= set(table["frame"].tolist())
                assert np.all(np.diff(table["frame"].astype(np.int64)) > 0)
            extract_frames(path, {1, 2, 3})
            outcomes.append(
                (None if table is None else table.tobytes(), segments, info.warnings, info.packets)
            )
        except CaptureError as exc:
            assert "\n" not in str(exc)
            outcomes.append(str(exc))
        finally:
            walk.use_accelerator(previous)
            decode.use_pcap_block(previous_fused)
    assert all(o == outcomes[0] for o in outcomes)


def test_pcapng_garbage_after_valid_blocks(tmp_path: Path) -> None:
    table, _, info = read_table(write(tmp_path, "junk.pcapng", NG_HEAD + NG_PKT + b"\xff" * 40))
    assert list(table["frame"]) == [1]
    assert info.warnings == [
        f"pcapng block at byte {len(NG_HEAD) + len(NG_PKT)} has an impossible length 4294967295;"
        " reading stopped there"
    ]
    table, _, info = read_table(write(tmp_path, "short.pcapng", NG_HEAD + NG_PKT + b"\x06\0\0\0\x40"))
    assert len(table) == 1 and info.warnings[0].startswith("truncated last record at byte")
