"""read_at: a second pass that re-reads only chosen records (pread), equal to the first pass's rows."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from resetlens.capture import open_capture
from tests.test_capture_build import epb, ether, idb, old_pb, pcap, shb, sll2, spb, tcp4, tcp6, write

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "pcaps"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "capture"
FILES = (sorted(CORPUS.glob("*.pcap*")) if CORPUS.is_dir() else []) + sorted(
    FIXTURES.glob("loopback_*.pcap*")
)


def _check(path: Path, every: int = 3) -> None:
    reader = open_capture(path)
    table = np.concatenate([c.table for c in reader.chunks()])
    first = reader.read_at(np.zeros(0), np.zeros(0))
    assert len(first[0]) == 0
    full_segments = dict(reader.read_at(table["offset"], table["frame"])[1])
    pick = table[::every][::-1]  # any order in, frame order out
    rows, segments = reader.read_at(pick["offset"], pick["frame"])
    assert np.array_equal(rows, table[::every])
    assert segments == {f: s for f, s in full_segments.items() if f in set(pick["frame"].tolist())}


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_read_at_equals_first_pass(path: Path) -> None:
    _check(path)


def test_read_at_pcapng_sections_and_gzip(tmp_path: Path) -> None:
    data = (
        shb("<")
        + idb(1, "<", tsresol=9)
        + epb(0, 10**18, ether(tcp4()))
        + shb(">")
        + idb(276, ">")
        + idb(1, ">", tsresol=0x90)
        + old_pb(1, 1 << 40, ether(tcp6()), ">")
        + spb(sll2(tcp4(flags="A")), ">")
        + epb(0, 5, sll2(tcp6(flags="RA")), ">")
    )
    _check(write(tmp_path, "s.pcapng", data), every=1)
    _check(write(tmp_path, "s.pcapng.gz", gzip.compress(data)), every=2)
    _check(write(tmp_path, "c.pcap.gz", gzip.compress(pcap([ether(tcp4()), ether(tcp6())] * 5))), every=3)


def test_read_at_needs_a_first_pass() -> None:
    path = FILES[0] if FILES else None
    if path is None:
        pytest.skip("no capture")
    with pytest.raises(RuntimeError):
        open_capture(path).read_at(np.array([24]), np.array([1]))
