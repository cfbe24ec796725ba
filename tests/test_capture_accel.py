"""The optional C accelerator gives exactly what the pure Python + numpy path gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resetlens.capture import read_table, walk
from tests.test_capture_build import epb, ether, idb, old_pb, pcap, shb, spb, tcp4, tcp6, write

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "pcaps"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "capture"
FILES = (sorted(CORPUS.glob("*.pcap*")) if CORPUS.is_dir() else []) + sorted(
    FIXTURES.glob("loopback_*.pcap*")
)

needs_c = pytest.mark.skipif(
    walk._cwalk is None, reason="C accelerator not built (python setup.py build_ext -i)"
)


def _both(path: Path, block_size: int = 1 << 24):
    previous = walk.use_accelerator(False)
    try:
        slow = read_table(path, block_size)
        walk.use_accelerator(True)
        fast = read_table(path, block_size)
    finally:
        walk.use_accelerator(previous)
    return slow, fast


def _same(slow, fast) -> None:
    (t1, s1, i1), (t2, s2, i2) = slow, fast
    assert t1.dtype == t2.dtype and np.array_equal(t1, t2)
    assert s1 == s2
    assert (i1.packets, i1.tcp_packets, i1.warnings, i1.first_ts, i1.last_ts) == (
        i2.packets,
        i2.tcp_packets,
        i2.warnings,
        i2.first_ts,
        i2.last_ts,
    )


@needs_c
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_identical_tables_on_every_corpus_file(path: Path) -> None:
    _same(*_both(path))


@needs_c
@pytest.mark.parametrize("block_size", [64, 777, 4096])
def test_identical_with_records_across_blocks(block_size: int) -> None:
    path = CORPUS / "zeek_ssh_ssh.pcap"
    if not path.exists():
        pytest.skip("corpus not available")
    _same(*_both(path, block_size))


@needs_c
def test_identical_on_broken_and_unusual_files(tmp_path: Path) -> None:
    good = pcap([ether(tcp4()), ether(tcp6()), ether(tcp4(flags="A"))])
    ng = shb() + idb(1) + epb(0, 5, ether(tcp4())) + spb(ether(tcp6())) + old_pb(0, 9, ether(tcp4()))
    cases = {
        "cut.pcap": good[:-5],
        "absurd.pcap": good[:40] + b"\xff" * 60,
        "ng.pcapng": ng,
        "ng-cut.pcapng": ng[:-9],
        "ng-badlen.pcapng": ng[:-4] + b"\x01\x02\x03\x04",
    }
    for name, data in cases.items():
        _same(*_both(write(tmp_path, name, data)))
