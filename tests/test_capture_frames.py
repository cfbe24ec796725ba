"""extract_frames / write_pcap: per-reset snippets that tshark reads back identically."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from resetlens.capture import RawFrame, extract_frames, open_capture, read_table, write_pcap
from tests.test_capture_build import tshark_rows

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "pcaps"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "capture"
FIELDS = ("frame.time_epoch", "frame.len", "frame.cap_len", "tcp.srcport", "tcp.seq_raw", "tcp.flags")


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path.name} not available")
    return path


def test_extract_and_rewrite_classic(tmp_path: Path) -> None:
    src = _need(CORPUS / "zeek_tcp_retransmit-fast009.pcap")  # snaplen-cut frames included
    table, _, _ = read_table(src)
    wanted = {1, 5, 22, 39, 400}  # 400 is past the end and ignored
    frames = extract_frames(src, wanted)
    assert [f.frame for f in frames] == [1, 5, 22, 39]
    assert all(f.linktype == 1 and f.caplen == len(f.data) and f.wirelen >= f.caplen for f in frames)
    out = tmp_path / "snip.pcap"
    write_pcap(out, frames)
    assert out.read_bytes()[:4] == b"\x4d\x3c\xb2\xa1"  # nanosecond classic pcap
    original = tshark_rows(src, *FIELDS, display_filter="frame.number in {1,5,22,39}")
    assert tshark_rows(out, *FIELDS, display_filter="frame") == original
    again, _, info = read_table(out)
    assert info.format == "pcap-ns" and info.packets == 4
    assert list(again["seq"]) == [int(table["seq"][table["frame"] == f][0]) for f in (1, 5, 22, 39)]


def test_mixed_link_types_give_pcapng(tmp_path: Path) -> None:
    src = _need(FIXTURES / "loopback_multi.pcapng")
    table, _, _ = read_table(src)
    by_iface = {int(i): int(table["frame"][table["iface"] == i][0]) for i in set(table["iface"].tolist())}
    frames = extract_frames(src, set(by_iface.values()))
    assert {f.linktype for f in frames} == {1, 113}
    out = tmp_path / "snip.pcapng"
    write_pcap(out, frames)
    assert out.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    wanted = ",".join(str(f) for f in sorted(by_iface.values()))
    assert tshark_rows(out, *FIELDS, display_filter="frame") == tshark_rows(
        src, *FIELDS, display_filter=f"frame.number in {{{wanted}}}"
    )
    info = open_capture(out)
    list(info.chunks())
    assert [i.linktype for i in info.info.interfaces] == [f.linktype for f in frames]


def test_empty_selection_and_empty_output(tmp_path: Path) -> None:
    src = _need(CORPUS / "zeek_tcp_single-rst.pcap")
    assert extract_frames(src, set()) == []
    out = tmp_path / "none.pcap"
    write_pcap(out, [])
    table, _, info = read_table(out)
    assert len(table) == 0 and info.packets == 0 and info.warnings == []
    if shutil.which("capinfos"):
        text = subprocess.run(["capinfos", "-c", str(out)], capture_output=True, text=True, check=True).stdout
        assert text.split("Number of packets:")[1].split()[0] == "0"


def test_nanosecond_times_round_trip(tmp_path: Path) -> None:
    frame = RawFrame(
        frame=1, ts=1_700_000_000.123456789, linktype=101, caplen=3, wirelen=60, data=b"\x45\0\0"
    )
    out = tmp_path / "t.pcap"
    write_pcap(out, [frame])
    got = extract_frames(out, {1})[0]
    assert got.ts == pytest.approx(frame.ts, abs=1e-6)
    assert (got.linktype, got.caplen, got.wirelen, got.data) == (101, 3, 60, b"\x45\0\0")
