"""The C record builder (resetlens.tcp._crecord) gives exactly the records build_record gives: every field's
value and type, the order of each record's __dict__ (the JSON key order), and to_dict()."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_tcp_packets import CLIENT, SERVER, A, Chunk, F, R, S, Trace

from resetlens.capture import open_capture
from resetlens.capture.table import (
    ACK,
    FIN,
    OPT_MALFORMED,
    OPT_MSS,
    OPT_SACK,
    OPT_SACK_OK,
    OPT_TRUNCATED,
    OPT_TS,
    OPT_WSCALE,
    PACKET_DTYPE,
    PSH,
    RESERVED,
    RST,
    SYN,
    addr_to_halves,
    flag_letters,
)
from resetlens.tcp import analyze_vantage, resets, zeek
from resetlens.tcp.resets import ResetRecord, build_records
from resetlens.tcp.tracker import RstSnapshot, VantageTracker

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "pcaps"
LAB = ROOT / "fixtures" / "lab"
FIELD_NAMES = [f.name for f in dataclasses.fields(ResetRecord)]

pytestmark = pytest.mark.skipif(resets._crecord is None, reason="C record builder not built")


def typed(value: Any) -> Any:
    """The value with the type of every part spelled out (True != 1, 1.0 != 1, NaN == NaN, order kept)."""
    if isinstance(value, dict):
        return ("dict", [(k, typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


def assert_same_records(got: list[ResetRecord], want: list[ResetRecord]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert type(g) is ResetRecord
        assert list(g.__dict__) == list(w.__dict__) == FIELD_NAMES
        assert typed(g.__dict__) == typed(w.__dict__), w.frame
        assert typed(g.to_dict()) == typed(w.to_dict())
        if not any(isinstance(v, float) and math.isnan(v) for v in w.__dict__.values()):
            assert g == w
            assert json.dumps(g.to_dict()) == json.dumps(w.to_dict())
        # the containers are the record's own: no two records share one
        for name in resets._LIST_FIELDS + resets._DICT_LIST_FIELDS:
            assert getattr(g, name) is not getattr(w, name)


def both(chunks: list[Any], compiled: bool | None = None) -> list[ResetRecord]:
    """C and Python records over the same chunks (same engine); returns the C ones."""
    chunks = [Chunk(c) if isinstance(c, np.ndarray) else c for c in chunks]
    got = analyze_vantage(chunks, "v", compiled=compiled, records=True).resets
    want = analyze_vantage(chunks, "v", compiled=compiled, records=False).resets
    assert_same_records(got, want)
    return got


def both_engines(chunks: list[Any]) -> list[ResetRecord]:
    got = both(chunks, compiled=None)
    both(chunks, compiled=False)
    return got


# -- the compiled-in constants and tables -------------------------------------------------------------


def test_builder_constants_match_python() -> None:
    c = resets._crecord.CONSTANTS
    assert list(resets._crecord.FIELDS) == FIELD_NAMES
    assert (c["FIN"], c["SYN"], c["RST"], c["ACK"], c["RESERVED"]) == (FIN, SYN, RST, ACK, RESERVED)
    assert (c["OPT_SACK"], c["OPT_MALFORMED"], c["OPT_TRUNCATED"]) == (OPT_SACK, OPT_MALFORMED, OPT_TRUNCATED)
    assert c["TOO_LARGE_SEQ_DELTA"] == zeek.TOO_LARGE_SEQ_DELTA
    assert c["CHALLENGE_ACK_WINDOW"] == resets.CHALLENGE_ACK_WINDOW
    assert c["AFTER_LIST_MAX"] == resets.AFTER_LIST_MAX
    assert c["MAX_SCALED_WINDOW_SHIFT"] == resets.MAX_SCALED_WINDOW_SHIFT
    assert c["LAST_PACKETS"] == 3


def test_flag_letters_depend_on_the_low_byte_only() -> None:
    """The builder's letter table has 256 entries, indexed by flags & 0xFF."""
    assert all(flag_letters(f) == flag_letters(f & 0xFF) for f in range(0, 65536, 7))
    assert all(flag_letters(f) == flag_letters(f & 0xFF) for f in range(0xF00, 0x1100))


def test_builder_refuses_a_record_class_of_other_fields() -> None:
    args = list(resets._builder_args())
    args[1] = tuple(reversed(args[1]))
    with pytest.raises(ValueError, match="differ"):
        resets._crecord.Builder(*args)
    args = list(resets._builder_args())
    args[2] = (0, 4, *args[2][2:])  # frame as 4 bytes
    with pytest.raises(ValueError, match="layout"):
        resets._crecord.Builder(*args)


def test_builder_refuses_a_record_class_with_post_init() -> None:
    @dataclasses.dataclass
    class Checked(ResetRecord):
        def __post_init__(self) -> None:
            self.frame = int(self.frame)

    args = list(resets._builder_args())
    args[0] = Checked
    with pytest.raises(ValueError, match="__post_init__"):
        resets._crecord.Builder(*args)


def test_pure_python_switch_turns_the_builder_off() -> None:
    code = "from resetlens.tcp import resets; print(resets.AVAILABLE)"
    env = dict(os.environ, RESETLENS_PURE_PYTHON="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    env.pop("RESETLENS_PURE_PYTHON")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


# -- real captures ------------------------------------------------------------------------------------


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_same_on_every_corpus_trace() -> None:
    total = 0
    for path in sorted(CORPUS.iterdir()):
        total += len(both_engines(list(open_capture(path).chunks())))
    assert total > 100


@pytest.mark.skipif(not LAB.is_dir(), reason="lab fixtures not present")
def test_same_on_every_lab_capture() -> None:
    paths = sorted(LAB.glob("*/captures/*"))
    assert paths
    total = 0
    for path in paths:
        total += len(both_engines(list(open_capture(path).chunks())))
    assert total > 100


@pytest.mark.slow
def test_same_on_generated_traffic(tmp_path: Path) -> None:
    """gen_pcap.py's mix: IPv6 with extension headers, RSTs answering SYNs, client and server aborts,
    injected RSTs both ways, retransmitted RSTs, kernel RSTs with IP ID 0."""
    gen = ROOT / "benchmarks" / "gen_pcap.py"
    if not gen.is_file():
        pytest.skip("benchmarks/gen_pcap.py not present")
    out = tmp_path / "gen.pcap"
    cmd = [sys.executable, str(gen), "-o", str(out), "--size-mb", "6", "--seed", "11"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    got = both_engines(list(open_capture(out).chunks()))
    assert len(got) > 20
    assert any(":" in r.src for r in got) and any(r.retransmitted for r in got)
    assert any(r.sender_data_after for r in got) and any(r.preceded_by == "syn" for r in got)


# -- hand-built traffic -------------------------------------------------------------------------------

V6_CLIENT = ("2001:db8::1", 40000)
V6_SERVER = ("2001:db8:0:1::80", 443)


def established(tr: Trace, c: tuple = CLIENT, s: tuple = SERVER, t: float = 1000.0, **kw: Any) -> None:
    tr.add(t, c, s, S, 100, opts=OPT_MSS | OPT_WSCALE | OPT_TS | OPT_SACK_OK, **kw)
    tr.add(t + 0.01, s, c, S | A, 5000, 101, opts=OPT_MSS | OPT_WSCALE | OPT_TS | OPT_SACK_OK, **kw)
    tr.add(t + 0.02, c, s, A, 101, 5001, **kw)
    tr.add(t + 0.1, s, c, A | PSH, 5001, 101, 200, **kw)
    tr.add(t + 0.2, c, s, A, 101, 5201, **kw)


def as_v6(tr: Trace) -> Trace:
    for row in tr.rows:
        row.update(ipver=6, ip_id=0, df=False)
    return tr


def test_same_on_every_kind_of_rst() -> None:
    tr = Trace()
    # exact, in-window (scaled window), outside, behind; RST+ACK exact / old / ahead
    for k, (flags, seq, ack) in enumerate(
        [(R, 5201, 0), (R, 5201 + 70000, 0), (R, 5201 + 10**8, 0), (R, 5101, 0), (R | A, 101, 5201),
         (R | A, 101, 5000), (R | A, 101, 9999), (R | A | RESERVED, 101, 5201)]
    ):  # fmt: skip
        c = (CLIENT[0], 41000 + k)
        t = 2000.0 + 10 * k
        established(tr, c, SERVER, t)
        src, dst = (SERVER, c) if flags == R else (c, SERVER)
        tr.add(t + 0.3, src, dst, flags, seq, ack, ttl=50 + k, ip_id=7 * k, df=bool(k % 2), opts=k * 37 % 256)
        back = (101, 5201) if flags == R else (5201, 101)
        tr.add(t + 0.3005, dst, src, A, *back)  # the receiver answers: a challenge ACK unless exact
    # RST without SYN (mid-stream), a RST as the flow's first and only packet, a RST as its last
    tr.add(3000.0, SERVER, (CLIENT[0], 42000), A | PSH, 9000, 300, 100)
    tr.add(3000.1, (CLIENT[0], 42000), SERVER, R, 300)
    tr.add(3001.0, (CLIENT[0], 42001), SERVER, R | A, 77, 88)
    # retransmitted RSTs, a changed seq and a changed ack from the same sender, RSTs both ways
    c = (CLIENT[0], 42002)
    established(tr, c, SERVER, 3100.0)
    tr.add(3100.3, SERVER, c, R | A, 5201, 101)
    tr.add(3100.4, SERVER, c, R | A, 5201, 101)
    tr.add(3100.5, SERVER, c, R | A, 5201, 150)
    tr.add(3100.6, SERVER, c, R, 6000)
    tr.add(3100.7, c, SERVER, R, 101)
    rows = both_engines([tr.chunk()])
    assert {r.seq_check for r in rows} >= {"exact", "in_window", "outside"}
    assert {r.ack_check for r in rows} >= {"exact", "old", "ahead", "none"}
    assert any(r.challenge_ack for r in rows) and any(r.retransmitted for r in rows)
    assert any(r.rst_seq_changes for r in rows) and any(r.rst_ack_changes for r in rows)
    assert any(r.reserved_bits for r in rows) and any(r.baseline_packets == 0 for r in rows)


def test_same_on_ipv6() -> None:
    tr = Trace()
    established(tr, V6_CLIENT, V6_SERVER)
    tr.add(1000.3, V6_SERVER, V6_CLIENT, R, 5201 + 100)
    tr.add(1000.31, V6_CLIENT, V6_SERVER, A, 101, 5201)
    tr.add(1000.4, V6_CLIENT, V6_SERVER, R | A, 101, 5201)
    (first, second) = both_engines([as_v6(tr).chunk()])
    assert first.src == "2001:db8:0:1::80" and first.ip_id is None and first.baseline_ip_id is None
    assert second.dst == "2001:db8:0:1::80" and second.ip_id_delta is None and second.baseline_ttl == 64


def test_same_with_rst_payloads() -> None:
    tr = Trace()
    for k, payload in enumerate(
        [
            struct.pack("!HHI", 0x33AA, 9, 3375),  # diagnostic
            struct.pack("!HHI", 0x33AA, 0, 1) + b"\xde\xad",  # unspecified, vendor data
            b"Access Denied\x00\x00",  # cause text
            b"\x01\x02\x03\xff\xfe",  # binary
            b"\x00\x00",  # zeros only
        ]
    ):
        c = (CLIENT[0], 43000 + k)
        established(tr, c, SERVER, 4000.0 + k)
        tr.add(4000.3 + k, SERVER, c, R | A, 5201, 101, payload=payload)
    c = (CLIENT[0], 43100)
    established(tr, c, SERVER, 4100.0)
    tr.add(4100.3, SERVER, c, R | A, 5201, 101, payload=b"Access Denied", captured=4)  # snaplen cut
    frame = tr.add(4100.4, c, SERVER, R, 101, plen=10, captured=10)  # payload, but no segment kept
    del tr.segments[frame]
    rows = both_engines([tr.chunk()])
    assert rows[0].diagnostic["reason"] == "not authorized" and rows[1].diagnostic["vendor_data"] == "dead"
    assert rows[2].cause_text == "Access Denied" and rows[5].cause_text == "Acce"
    assert rows[6].payload_captured == 10 and rows[6].diagnostic is None


def test_same_on_ip_id_and_sequence_wraps() -> None:
    tr = Trace()
    c = (CLIENT[0], 44000)
    top = 2**32 - 50
    tr.add(1.0, c, SERVER, S, top, ip_id=65530)
    tr.add(1.01, SERVER, c, S | A, 2**32 - 10, top + 1, ip_id=0)
    tr.add(1.02, c, SERVER, A, top + 1, 2**32 - 9, ip_id=65534)
    tr.add(1.03, c, SERVER, A | PSH, top + 1, 2**32 - 9, 100, ip_id=65535)
    tr.add(1.04, SERVER, c, A, 2**32 - 9, top + 101, ip_id=0)
    tr.add(1.05, c, SERVER, R | A, (top + 101) % 2**32, 2**32 - 9, ip_id=3)  # seq wrapped to 51, IP ID to 3
    tr.add(1.06, SERVER, c, R, (2**32 - 9 + 2**20) % 2**32, ip_id=70000)  # IP ID beyond 16 bits (corrupt)
    rows = both_engines([tr.chunk()])
    assert rows[0].seq == 51 and rows[0].seq_check == "exact" and rows[0].ip_id_delta == 4
    assert rows[1].ip_id == 70000 and rows[1].ip_id_delta == 70000 % 65536


def test_same_on_long_flows_ties_and_options() -> None:
    """More packets after the RST than the lists keep, TTL and DF ties, options on SYNs only, and the
    masked-out option bits."""
    tr = Trace()
    c = (CLIENT[0], 45000)
    tr.add(1.0, c, SERVER, S, 100, ttl=64, df=True, opts=OPT_MSS | OPT_WSCALE)
    tr.add(1.01, SERVER, c, S | A, 500, 101, opts=OPT_MSS | OPT_WSCALE)
    tr.add(1.02, c, SERVER, A, 101, 501, ttl=63, df=False, opts=OPT_TS | OPT_SACK | OPT_TRUNCATED)
    tr.add(1.03, c, SERVER, A, 101, 501, ttl=63, df=True, opts=OPT_TS | OPT_SACK | OPT_MALFORMED)
    tr.add(1.04, c, SERVER, A, 101, 501, ttl=64, df=False, opts=OPT_TS | OPT_SACK)
    tr.add(1.05, c, SERVER, R, 101, ttl=60, opts=0)
    for k in range(60):
        tr.add(1.1 + k / 100, c if k % 3 else SERVER, SERVER if k % 3 else c, [A, A | PSH, A | F, R][k % 4],
               101 + k, 501, k % 2 * 10)  # fmt: skip
    (first, *rest) = both_engines([tr.chunk()])
    assert first.baseline_ttl == 64 and first.baseline_df is True and first.baseline_options == ["ts"]
    assert len(first.more_rsts) == 15 and len(first.sender_after) == resets.AFTER_LIST_MAX
    assert rest


def test_same_when_the_challenge_ack_comes_late() -> None:
    tr = Trace()
    for k, gap in enumerate([1.0, 2.0, 2.0000001, 30.0]):
        c = (CLIENT[0], 46000 + k)
        established(tr, c, SERVER, 5000.0 + 100 * k)
        tr.add(5000.3 + 100 * k, SERVER, c, R, 5301)
        tr.add(5000.3 + 100 * k + gap, c, SERVER, A, 101, 5201)
    rows = both_engines([tr.chunk()])
    assert (
        rows[0].challenge_ack is not None and rows[2].challenge_ack is None and rows[3].challenge_ack is None
    )


# -- hostile snapshots and flows, straight into build_records -----------------------------------------


def _snapshots(tr: Trace) -> tuple[list[RstSnapshot], dict[str, np.ndarray], dict[int, bytes], Any]:
    tracker = VantageTracker("v", compiled=True)
    chunk = tr.chunk()
    tracker.feed(chunk.table)
    out = tracker.finish()
    return out.snapshots, out.flows, chunk.segments, tracker.uid


def _compare(snaps: list[RstSnapshot], flows: dict, segments: dict, uid: Any) -> list[ResetRecord]:
    got = build_records("v", snaps, flows, segments, uid, compiled=True)
    want = build_records("v", snaps, flows, segments, uid, compiled=False)
    assert_same_records(got, want)
    return got


def test_same_on_odd_snapshot_values() -> None:
    tr = Trace()
    established(tr)
    tr.add(1000.3, SERVER, CLIENT, R | A, 5201 + 40, 101)
    snaps, flows, segments, uid = _snapshots(tr)
    (snap,) = snaps
    variants = [
        dict(receiver_window=2**70, window_scaled=1),  # huge window, a truthy int as the flag
        dict(receiver_window=-(2**70)),
        dict(receiver_window=-5, window_scaled=True),
        dict(receiver_window=0),
        dict(receiver_window=None, receiver_ack=None, sender_next_seq=-3),
        dict(receiver_ack=2**64 + 5201, receiver_next_seq=-(2**40)),
        dict(receiver_ack=True, receiver_next_seq=None),
        dict(sender_state=-1, receiver_state=-7),  # Python indexes from the end
        dict(prev_ts=1000.3, history_before="^^"),
        dict(prev_ts=2000.0, history_before=""),
        dict(prev_ts=float("nan"), history_before="ShAdDaR^x"),
        dict(prev_ts=999, history_before="q"),  # an int time: left to build_record
        dict(sent_by_orig=0, conn_idx=5),  # no flow under that uid
    ]
    got = []
    for change in variants:
        got += _compare([dataclasses.replace(snap, **change)], flows, segments, uid)
    assert got[0].seq_check == "in_window" and got[1].seq_check == "outside"
    assert got[7].sender_state == "RESET" and got[7].receiver_state == "INACTIVE"
    assert [r.preceded_by for r in got[8:12]] == ["nothing", "nothing", "data", "other"]
    assert got[12].baseline_packets == 0 and got[12].uid == "C6@v"
    for bad in (dict(sender_state=7), dict(receiver_state=-8)):
        for compiled in (True, False):
            with pytest.raises(IndexError):
                build_records(
                    "v", [dataclasses.replace(snap, **bad)], flows, segments, uid, compiled=compiled
                )


def test_same_on_odd_flows() -> None:
    """Flows out of frame order, strided, without the RST, or empty; a RST row of another size."""
    tr = Trace()
    established(tr)
    tr.add(1000.3, SERVER, CLIENT, R, 5201)
    tr.add(1000.4, CLIENT, SERVER, A, 101, 5201)
    tr.add(1000.5, SERVER, CLIENT, R, 5301)
    snaps, flows, segments, uid = _snapshots(tr)
    (name,) = flows
    flow = flows[name]
    rng = np.random.default_rng(5)
    wide = np.zeros(len(flow) * 3, dtype=PACKET_DTYPE)
    wide[::3] = flow
    for rows in (
        flow[::-1],
        flow[rng.permutation(len(flow))],
        wide[::3],
        flow[[0, 1, 2]],
        flow[:0],
        flow[5:6],
    ):
        got = _compare(snaps, {name: rows}, segments, uid)
        assert len(got) == 2
    odd = dataclasses.replace(snaps[0], row=np.zeros(1, dtype=[("frame", "u8")])[0])
    with pytest.raises((KeyError, ValueError, IndexError)):  # the reference cannot read it either
        build_records("v", [odd], flows, segments, uid, compiled=True)


def test_vantage_names_in_uids() -> None:
    tr = Trace()
    established(tr)
    tr.add(1000.3, SERVER, CLIENT, R, 5201)
    for vantage in ("fw", "zone-ä", "🛰", ""):
        tracker = VantageTracker(vantage, compiled=True)
        chunk = tr.chunk()
        tracker.feed(chunk.table)
        out = tracker.finish()
        got = build_records(vantage, out.snapshots, out.flows, chunk.segments, tracker.uid, compiled=True)
        want = build_records(vantage, out.snapshots, out.flows, chunk.segments, tracker.uid, compiled=False)
        assert_same_records(got, want)
        assert got[0].uid == f"C1@{vantage}" and got[0].baseline_packets == 2


# -- random traffic -----------------------------------------------------------------------------------


def _byte_table(data: bytes, hosts: int, finite: bool) -> np.ndarray:
    """Rows straight from arbitrary bytes, addresses and ports folded onto a few values so flows form;
    with finite=True the timestamps are small steps (else connections rarely outlive a packet)."""
    size = PACKET_DTYPE.itemsize
    t = np.frombuffer(data[: len(data) // size * size], dtype=PACKET_DTYPE).copy()
    for col in ("src_lo", "dst_lo"):
        t[col] %= np.uint64(hosts)
    for col in ("src_hi", "dst_hi"):
        t[col] %= np.uint64(min(hosts, 2))
    for col in ("sport", "dport"):
        t[col] = (t[col] % 3) + 79
    t["flags"] = np.where(t["window"] % 4 == 0, t["flags"], t["flags"] & np.uint16(0xFFFF ^ RST))
    if finite:  # else any frame numbers too (2^64 - 1, out of order)
        t["ts"] = 1000.0 + np.cumsum((t["seq"] % 7).astype(np.float64) * 0.7)
        t["frame"] = np.arange(1, len(t) + 1) + (t["frame"] % 2)  # mostly ordered, with repeats
    t["ipver"] = np.where(t["ipver"] % 3 == 0, 6, np.where(t["ipver"] % 3 == 1, 4, t["ipver"]))
    return t


ROW_BYTES = st.binary(min_size=PACKET_DTYPE.itemsize, max_size=PACKET_DTYPE.itemsize)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(ROW_BYTES, min_size=1, max_size=150), hosts=st.sampled_from([1, 2, 3]), finite=st.booleans()
)
def test_same_on_arbitrary_row_bytes(rows: list[bytes], hosts: int, finite: bool) -> None:
    """Any flags, sequence numbers, TTLs, option bits, checksums and timestamps (NaN and infinities
    included) under the C engine's snapshots."""
    table = _byte_table(b"".join(rows), hosts, finite)
    chunks = [table[i : i + 40] for i in range(0, len(table), 40)]
    got = both(chunks, compiled=True)
    assert len(got) == int(np.count_nonzero(table["flags"] & RST))


def test_same_on_random_flows_with_both_engines() -> None:
    rng = np.random.default_rng(20261122)
    for _ in range(40):
        n = int(rng.integers(1, 300))
        t = np.zeros(n, dtype=PACKET_DTYPE)
        t["frame"] = np.arange(1, n + 1)
        t["ts"] = np.cumsum(rng.choice([0.0, 0.001, 0.5, 2.5], n)) + 100.0
        t["ipver"] = 4
        hosts = [addr_to_halves(a) for a in ("10.0.0.1", "10.0.0.2", "10.0.0.3")]
        for end in ("src", "dst"):
            pick = rng.integers(0, 3, n)
            t[end + "_hi"] = [hosts[k][0] for k in pick]
            t[end + "_lo"] = [hosts[k][1] for k in pick]
        t["sport"] = rng.choice([80, 40000], n)
        t["dport"] = rng.choice([80, 40000], n)
        t["flags"] = rng.choice([S, S | A, A, A | PSH, A | F, R, R | A, R | A | PSH, 0x100 | A], n)
        base = rng.integers(0, 2**32, 2)
        t["seq"] = (base[rng.integers(0, 2, n)] + rng.integers(-70000, 70000, n)) % 2**32
        t["ack"] = (base[rng.integers(0, 2, n)] + rng.integers(-70000, 70000, n)) % 2**32
        t["payload_len"] = rng.choice([0, 0, 1, 1460], n)
        t["captured_len"] = np.minimum(t["payload_len"], rng.choice([0, 1460], n))
        t["window"] = rng.choice([0, 1, 512, 65535], n)
        t["ttl"] = rng.choice([64, 63, 128, 255], n)
        t["ip_id"] = rng.integers(0, 65536, n)
        t["df"] = rng.integers(0, 2, n).astype(bool)
        t["opts"] = rng.integers(0, 256, n)
        t["csum"] = rng.integers(0, 5, n)
        both_engines([t])
