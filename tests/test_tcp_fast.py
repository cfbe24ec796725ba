"""The C engine (resetlens.tcp._czeek via fast.py) gives exactly what the reference Python engine gives."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_tcp_packets import CLIENT, SERVER, A, F, R, S, Trace, handshake

from resetlens.capture import open_capture
from resetlens.capture.table import PACKET_DTYPE, PSH
from resetlens.tcp import fast
from resetlens.tcp.resets import build_record
from resetlens.tcp.tracker import VantageTracker

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "pcaps"

pytestmark = pytest.mark.skipif(not fast.AVAILABLE, reason="C engine not built")


def run(tables: list[np.ndarray], compiled: bool, cap: int | None = None, stats: dict | None = None) -> tuple:
    tracker = VantageTracker("v", compiled=compiled, slots=cap if compiled else None)
    for table in tables:
        tracker.feed(table)
    if stats is not None and compiled:
        stats.update(tracker.engine.engine.stats())
    out = tracker.finish()
    conns = [dataclasses.asdict(c) for c in out.connections]
    resets = [
        build_record("v", s, tracker.uid(s.conn_idx), out.flows.get(tracker.uid(s.conn_idx)), None).to_dict()
        for s in out.snapshots
    ]
    flows = {k: v.tobytes() for k, v in out.flows.items()}
    columns = (out.connections.rows.tobytes(), out.connections.history)
    return conns, resets, flows, out.anchors.tobytes(), columns


def assert_same(tables: list[np.ndarray], cap: int | None = None, stats: dict | None = None) -> tuple:
    """Both engines on the same chunks: connections (as objects and as table columns), RST records,
    flows and anchors identical. Returns the reference's (connections, resets, flows, anchors)."""
    ref = run(tables, compiled=False)
    got = run(tables, compiled=True, cap=cap, stats=stats)
    assert got[0] == ref[0]
    assert got[1] == ref[1]
    assert got[2] == ref[2]
    assert got[3] == ref[3]
    assert got[4] == ref[4]
    return ref[:4]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_same_on_every_corpus_trace() -> None:
    for path in sorted(CORPUS.iterdir()):
        tables = [c.table for c in open_capture(path).chunks()]
        conns = assert_same(tables)[0]
        assert conns, path.name


def test_same_with_slot_exhaustion_roles_flips_and_reuse() -> None:
    """A tiny slot pool forces the kernel to stop, grow and resume mid-chunk."""
    tr = Trace()
    for k in range(40):
        cl = (CLIENT[0], 42000 + k % 7)  # ports reused: reuse splitting, REJ retries
        t = 10.0 * k
        if k % 5 == 0:
            tr.add(t, SERVER, cl, S | A, 5000, 101)  # SYN-ACK first: flipped
            tr.add(t, cl, SERVER, S, 100)
            tr.add(t + 0.01, cl, SERVER, A, 101, 5001)
        elif k % 5 == 1:
            tr.add(t, cl, SERVER, S, 100 + k)
            tr.add(t + 0.01, SERVER, cl, R | A, 0, 101 + k)
        elif k % 5 == 2:
            tr.add(t, SERVER, cl, A | PSH, 9000, 300, 100)  # midstream from a server port
            tr.add(t + 0.1, cl, SERVER, R, 300)
        else:
            handshake(tr, t=t, cseq=1000 * k, sseq=7000 * k)
            tr.add(t + 0.05, cl, SERVER, A | PSH, 1000 * k + 1, 7000 * k + 1, 50)
            tr.add(t + 0.06, SERVER, cl, A, 7000 * k + 1, 1000 * k + 51, window=0)
            tr.add(t + 0.07, SERVER, cl, A | F, 7000 * k + 1, 1000 * k + 51)
            tr.add(t + 0.08, cl, SERVER, R, 1000 * k + 51)
            tr.add(t + 0.09, cl, SERVER, R, 1000 * k + 51)
    table = tr.chunk().table
    chunks = [table[i : i + 13] for i in range(0, len(table), 13)]
    stats: dict = {}
    conns, resets, _, _ = assert_same(chunks, cap=1, stats=stats)
    assert len(resets) == int(np.count_nonzero(table["flags"] & R))
    assert {c["conn_state"] for c in conns} >= {"REJ", "RSTO", "OTH"}
    assert 1 < stats["slots"] <= 2 * stats["peak_live"] < len(conns)  # grew from one slot, as live ones did


@pytest.mark.slow
def test_same_on_generated_traffic(tmp_path: Path) -> None:
    conns, resets, flows, _ = assert_same(
        [c.table for c in open_capture(_generated(tmp_path, 3, 7)).chunks()]
    )
    assert len(conns) > 100 and resets and flows


def _generated(tmp_path: Path, size_mb: int, seed: int) -> Path:
    """A capture from benchmarks/gen_pcap.py (skips when the script is absent)."""
    gen = ROOT / "benchmarks" / "gen_pcap.py"
    if not gen.is_file():
        pytest.skip("benchmarks/gen_pcap.py not present")
    out = tmp_path / f"gen{size_mb}-{seed}.pcap"
    cmd = [sys.executable, str(gen), "-o", str(out), "--size-mb", str(size_mb), "--seed", str(seed)]
    subprocess.run(cmd, check=True, timeout=600)
    return out


def test_different_four_tuples_never_share_a_connection() -> None:
    """Tuples that differ in one part only (a port, the address's high or low half, the direction of an
    endpoint pair) stay separate connections, interleaved packet by packet, through slot growth."""
    from resetlens.capture.table import PACKET_DTYPE

    ends = [
        (0, 0xFFFF0A000001, 40000),
        (0, 0xFFFF0A000001, 40001),  # another port
        (1 << 63, 0xFFFF0A000001, 40000),  # same low half, another high half
        (0, 0xFFFF0A000002, 40000),
    ]
    server = (0x20010DB8 << 32, 1, 443)
    rows = []
    for rnd in range(6):
        for k, (h, lo, p) in enumerate(ends):
            rows.append((h, lo, p, *server, S if rnd == 0 else A, 1000 * k + rnd))
            rows.append((*server, h, lo, p, S | A if rnd == 0 else A, 7000 * k + rnd))
    # the two endpoints of a tuple swapped between "src" and "dst" are the same connection
    t = np.zeros(len(rows), dtype=PACKET_DTYPE)
    for i, (sh, sl, sp, dh, dl, dp, fl, seq) in enumerate(rows):
        t[i] = np.zeros(1, dtype=PACKET_DTYPE)[0]
        t[i]["frame"], t[i]["ts"], t[i]["flags"], t[i]["seq"], t[i]["window"] = (
            i + 1,
            1.0 + i * 0.01,
            fl,
            seq,
            100,
        )
        t[i]["src_hi"], t[i]["src_lo"], t[i]["sport"] = sh, sl, sp
        t[i]["dst_hi"], t[i]["dst_lo"], t[i]["dport"] = dh, dl, dp
    conns, _, _, _ = assert_same([t[i : i + 5] for i in range(0, len(t), 5)], cap=1)
    assert len(conns) == len(ends)
    assert all(c["orig_pkts"] == 6 and c["resp_pkts"] == 6 for c in conns)
    assert sorted((c["orig_h"], c["orig_p"]) for c in conns) == sorted(
        {(c["orig_h"], c["orig_p"]) for c in conns}
    )


def test_engine_constants_match_zeek_module() -> None:
    from resetlens.tcp import _czeek, zeek

    for name, value in _czeek.CONSTANTS.items():
        if hasattr(zeek, name):
            assert getattr(zeek, name) == value, name
    from resetlens.tcp import conn

    assert _czeek.CONSTANTS["MAX_BLOCKS"] == conn.MAX_BLOCKS


@pytest.mark.slow
def test_same_on_a_larger_generated_capture(tmp_path: Path) -> None:
    """~20 MB of generated traffic (many chunks, thousands of connections, resets, role flips)."""
    tables = [c.table for c in open_capture(_generated(tmp_path, 20, 3)).chunks()]
    assert len(tables) > 3
    stats: dict = {}
    conns, resets, flows, anchors = assert_same(tables, cap=8, stats=stats)
    assert len(conns) > 1000 and len(resets) > 10 and len(flows) > 10 and anchors
    assert stats["connections"] == len(conns) and stats["snapshots"] == len(resets)
    # slots are reused: memory follows the most connections live at once, not all connections
    assert stats["peak_live"] < len(conns) / 2 and stats["slots"] <= max(8, 2 * stats["peak_live"])


def _random_table(rng: np.random.Generator, n: int) -> np.ndarray:
    """Hostile-ish traffic on a few 4-tuples: random flags, seq/ack near each other or anywhere, time
    jumps backwards and forwards, truncated payloads, zero windows."""
    from resetlens.capture.table import PACKET_DTYPE, addr_to_halves

    t = np.zeros(n, dtype=PACKET_DTYPE)
    hosts = [addr_to_halves(a) for a in ("10.0.0.1", "10.0.0.2", "2001:db8::1")]
    ports = np.array([80, 443, 40000, 40001, 0, 65535])
    a = rng.integers(0, len(hosts), n)
    b = rng.integers(0, len(hosts), n)  # sometimes the same host (loopback-style conversations)
    t["frame"] = np.arange(1, n + 1)
    t["ts"] = 1000.0 + np.cumsum(rng.choice([0.0, 0.001, 0.5, 4.0, 7.0, 70.0, -1.0], n))
    t["src_hi"] = [hosts[i][0] for i in a]
    t["src_lo"] = [hosts[i][1] for i in a]
    t["dst_hi"] = [hosts[i][0] for i in b]
    t["dst_lo"] = [hosts[i][1] for i in b]
    t["sport"] = rng.choice(ports, n)
    t["dport"] = rng.choice(ports, n)
    t["flags"] = rng.choice([0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0x01, 0x06, 0x05, 0x03, 0x00], n)
    base = rng.integers(0, 2**32, 4)
    t["seq"] = (base[rng.integers(0, 4, n)] + rng.integers(-3000, 3000, n)) % 2**32
    t["ack"] = (base[rng.integers(0, 4, n)] + rng.integers(-3000, 3000, n)) % 2**32
    t["payload_len"] = rng.choice([0, 0, 1, 100, 1460], n)
    t["captured_len"] = np.minimum(t["payload_len"], rng.choice([0, 1460], n))
    t["window"] = rng.choice([0, 1, 512, 65535], n)
    t["opts"] = rng.choice([0, 0x02, 0x10, 0x12], n)
    return t


def test_same_on_random_hostile_tables() -> None:
    rng = np.random.default_rng(20261121)
    for _ in range(60):
        table = _random_table(rng, int(rng.integers(1, 400)))
        step = int(rng.integers(1, 120))
        chunks = [table[i : i + step] for i in range(0, len(table), step)]
        conns, resets, _, _ = assert_same(chunks, cap=3)
        assert sum(c["orig_pkts"] + c["resp_pkts"] for c in conns) == len(table)
        assert len(resets) == int(np.count_nonzero(table["flags"] & R))


def _byte_table(data: bytes, hosts: int, finite: bool) -> np.ndarray:
    """Rows straight from arbitrary bytes; addresses/ports folded onto a few values so connections form;
    with finite=True the timestamps are made finite and ordered-ish (the reader never produces NaN)."""
    from resetlens.capture.table import PACKET_DTYPE

    size = PACKET_DTYPE.itemsize
    t = np.frombuffer(data[: len(data) // size * size], dtype=PACKET_DTYPE).copy()
    t["frame"] %= np.uint64(2**62)  # a frame is a packet count: the reader never gets near 2**63
    if hosts:
        for col in ("src_lo", "dst_lo"):
            t[col] %= np.uint64(hosts)
        for col in ("src_hi", "dst_hi"):
            t[col] %= np.uint64(2)
        for col in ("sport", "dport"):
            t[col] = (t[col] % 3) + 79
    if finite:
        t["ts"] = np.cumsum((t["frame"] % 9).astype(np.float64) - 2.0)
    return t


ROW = PACKET_DTYPE.itemsize
# Whole rows of arbitrary bytes (a plain st.binary almost never reaches one row's size).
ROW_BYTES = st.lists(st.binary(min_size=ROW, max_size=ROW), max_size=200).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(data=ROW_BYTES, hosts=st.sampled_from([0, 2, 3]), step=st.integers(1, 90))
def test_engines_agree_on_arbitrary_row_bytes(data: bytes, hosts: int, step: int) -> None:
    table = _byte_table(data, hosts, finite=True)
    chunks = [table[i : i + step] for i in range(0, len(table), step)]
    conns, resets, _, _ = assert_same(chunks, cap=2)
    assert sum(c["orig_pkts"] + c["resp_pkts"] for c in conns) == len(table)
    assert len(resets) == int(np.count_nonzero(table["flags"] & R))


@settings(max_examples=300, deadline=None)
@given(data=ROW_BYTES, hosts=st.sampled_from([0, 2]))
def test_c_engine_survives_any_row_bytes(data: bytes, hosts: int) -> None:
    """NaN and infinite timestamps, any flags, any sequence numbers: no crash, every packet counted."""
    table = _byte_table(data, hosts, finite=False)
    tracker = VantageTracker("v", compiled=True, slots=1)
    for i in range(0, len(table), 37):
        tracker.feed(table[i : i + 37])
    out = tracker.finish()
    rows = out.connections.rows
    assert int(rows["orig_pkts"].sum() + rows["resp_pkts"].sum()) == len(table)
    assert rows["idx"].tolist() == list(range(len(rows)))
    assert len(out.snapshots) == int(np.count_nonzero(table["flags"] & R))
    assert all(len(h) <= 256 for h in out.connections.history)


def test_engine_refuses_use_after_finish() -> None:
    tr = Trace()
    handshake(tr, t=1.0, cseq=100, sseq=500)
    table = tr.chunk().table
    tracker = VantageTracker("v", compiled=True)
    tracker.feed(table)
    out = tracker.finish()
    assert len(out.connections) == 1 and out.connections[0].history == "ShA"
    with pytest.raises(RuntimeError):
        tracker.engine.finish()
    with pytest.raises(RuntimeError):
        tracker.engine.feed(table)
    assert tracker.engine.engine.stats()["connections"] == 1  # still readable
