"""The C story (resetlens.blame._cstory) tells exactly what the reference story.tell_python tells.

Every field's value and type (int, bool, float bit for bit, None, lists of ints), in both call forms (the
RST in the flow; its claimed sender given, as when the RST is absent at that vantage), on the lab
bundles, the public corpus, generated captures and random flows, and without crashing on hostile ones.
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resetlens.blame import story
from resetlens.capture import open_capture
from resetlens.capture.table import ACK, FIN, OPT_TS, PACKET_DTYPE, RST, SYN, empty_table
from resetlens.tcp import analyze_vantage
from tests.conftest import CORPUS_PCAPS, LAB_FIXTURES, ROOT

pytestmark = pytest.mark.skipif(story._cstory is None, reason="C story not built")

GEN = ROOT / "benchmarks" / "gen_pcap.py"
SAMPLED_FRAMES = 40  # non-RST frames of one flow told in the override form (the RST absent at a vantage)
FOREIGN_LO = 0x0000FFFF_C6336401  # 198.51.100.1: a sender that is neither endpoint of any flow here


def c_tell(*args: object, **kwargs: object) -> story.Story | None:
    return story._cstory.tell(*args, **kwargs)


def float_bits(x: float) -> bytes:
    return struct.pack("<d", x)


def assert_same_story(got: story.Story | None, want: story.Story | None) -> None:
    """Same fields, values and types; floats bit for bit; attributes set in the dataclass's order."""
    if want is None:
        assert got is None
        return
    assert type(got) is story.Story
    for name in story.Story.__dataclass_fields__:
        g, w = getattr(got, name), getattr(want, name)
        assert type(g) is type(w), (name, g, w)
        if isinstance(w, float):
            assert float_bits(g) == float_bits(w), (name, g, w)
        elif isinstance(w, list):
            assert g == w and all(type(x) is int for x in g), (name, g, w)
        else:
            assert g == w, (name, g, w)
    assert list(vars(got)) == list(vars(want))


def tell_both(flow: np.ndarray, frame: object, *args: object, **kwargs: object) -> story.Story | None:
    want = story.tell_python(flow, frame, *args, **kwargs)
    got = c_tell(flow, frame, *args, **kwargs)
    assert_same_story(got, want)
    return want


def check_flow(flow: np.ndarray, seen: Counter | None = None) -> int:
    """Both forms for every RST of the flow, the override form for a sample of its other frames.
    Returns the stories compared; `seen` counts which facts they covered."""
    told = 0
    frames = flow["frame"].tolist()
    rst_rows = [i for i, f in enumerate(flow["flags"].tolist()) if f & RST]
    others = [i for i in range(len(flow)) if i not in set(rst_rows)]
    step = max(1, len(others) // SAMPLED_FRAMES)
    for i in rst_rows + others[::step]:
        row = flow[i]
        senders = [
            (int(row["src_lo"]), int(row["sport"])),
            (int(row["dst_lo"]), int(row["dport"])),
            (FOREIGN_LO, int(row["sport"])),
        ]
        if i in rst_rows:
            s = tell_both(flow, frames[i])
            told += 1
            if seen is not None and s is not None:
                _count(seen, s)
        for lo, port in senders:
            tell_both(flow, frames[i], lo, port)
            tell_both(flow, frames[i], src_lo=lo, sport=port)
            told += 2
    tell_both(flow, max(frames) + 1)  # a frame the flow does not hold: None
    return told


def _count(seen: Counter, s: story.Story) -> None:
    seen[f"answers={s.answers}"] += 1
    for fact in (
        "established",
        "reply_exact",
        "peer_sent_tls_hello",
        "peer_sent_http",
        "sender_used_ts",
        "burst_seq_changes",
        "sender_data_after",
        "peer_data_after",
        "sender_rst_before",
        "syn_seen",
    ):
        seen[fact] += bool(getattr(s, fact))
    seen["no_syn"] += not s.syn_seen
    seen["burst"] += s.rst_burst > 1
    seen["fin_delay"] += s.sender_fin_delay is not None
    seen["ttl_baseline"] += s.sender_ttl_baseline is not None


def flows_of(path: Path) -> dict[str, np.ndarray]:
    return analyze_vantage(open_capture(path).chunks(), "v").flows


def test_c_story_is_the_one_used() -> None:
    assert story.AVAILABLE == (not os.environ.get("RESETLENS_PURE_PYTHON"))
    assert story.tell is (story._cstory.tell if story.AVAILABLE else story.tell_python)
    code = "from resetlens.blame import story; print(story.AVAILABLE, story.tell is story.tell_python)"
    env = {**os.environ, "RESETLENS_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_same_on_every_lab_capture() -> None:
    captures = sorted(LAB_FIXTURES.glob("*/captures/*.pcap*"))
    assert len(captures) > 20
    told = 0
    seen: Counter = Counter()
    for path in captures:
        for flow in flows_of(path).values():
            told += check_flow(flow, seen)
    assert told > 1000
    for fact in (
        "answers=data",
        "answers=syn",
        "answers=fin",
        "answers=ack",
        "established",
        "peer_sent_http",
        "peer_sent_tls_hello",
        "fin_delay",
        "burst",
        "ttl_baseline",
    ):
        assert seen[fact], fact


@pytest.mark.skipif(not CORPUS_PCAPS.is_dir(), reason="shared corpus not present")
def test_same_on_every_corpus_trace() -> None:
    paths = sorted(p for p in CORPUS_PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng"))
    assert len(paths) >= 29
    told = 0
    seen: Counter = Counter()
    for path in paths:
        for flow in flows_of(path).values():
            told += check_flow(flow, seen)
    assert told > 100
    assert seen["no_syn"] and seen["syn_seen"] and seen["sender_rst_before"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    if not GEN.exists():
        pytest.skip("benchmarks/gen_pcap.py not available")
    out = []
    for seed, fmt in ((4, "pcap"), (9, "pcapng")):
        path = tmp_path_factory.mktemp("gen") / f"g{seed}.{fmt}"
        cmd = [
            sys.executable,
            str(GEN),
            "-o",
            str(path),
            "--size-mb",
            "12",
            "--seed",
            str(seed),
            "--format",
            fmt,
        ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        out.append(path)
    return out


def test_same_on_generated_captures(generated: list[Path]) -> None:
    """IPv4 and IPv6 (with extension headers), every kind of reset the generator makes (answers to SYNs,
    aborts, injected bursts), timestamp options; the same flows without their handshake, and with a TLS
    ClientHello's or an HTTP request's first bytes (the generator's payloads are random text)."""
    seen: Counter = Counter()
    ipv6 = 0
    for path in generated:
        truth = json.loads(Path(f"{path}.truth.json").read_text())
        assert {t["kind"] for t in truth["resets"]} >= {"rst_syn", "rst_client", "rst_server", "rst_inject"}
        for flow in flows_of(path).values():
            check_flow(flow, seen)
            ipv6 += int(flow["ipver"][0]) == 6
            # The same flow without its handshake: RSTs with no SYN before them.
            check_flow(flow[(flow["flags"] & SYN) == 0], seen)
            for head in (0x16030100, int.from_bytes(b"GET ", "big")):
                headed = flow.copy()
                headed["head"][headed["payload_len"] > 0] = head
                check_flow(headed, seen)
    assert ipv6 > 0
    for fact in (
        "answers=syn",
        "answers=data",
        "no_syn",
        "established",
        "reply_exact",
        "peer_sent_tls_hello",
        "peer_sent_http",
        "sender_used_ts",
        "sender_rst_before",
        "burst",
        "sender_data_after",
        "peer_data_after",
        "ttl_baseline",
    ):
        assert seen[fact], fact


def test_same_on_views_of_a_flow(generated: list[Path]) -> None:
    """Strided and reversed views, read-only arrays, a flow concatenated from several: any stride."""
    flows = [f for f in flows_of(generated[0]).values() if len(f) > 6][:30]
    assert flows
    for flow in flows:
        check_flow(flow[::2])
        check_flow(flow[::-1])
        ro = flow.copy()
        ro.flags.writeable = False
        check_flow(ro)
    check_flow(np.concatenate(flows))


def test_lists_are_capped_and_ttl_ties_take_the_lowest() -> None:
    n = 200
    t = empty_table(n)
    t["frame"] = np.arange(1, n + 1)
    t["ts"] = np.arange(n) * 0.001
    t["src_lo"] = np.where(np.arange(n) % 2 == 0, 1, 2)
    t["sport"] = np.where(np.arange(n) % 2 == 0, 1000, 80)
    t["flags"] = ACK
    t["payload_len"] = 100
    t["ttl"] = np.where(np.arange(n) % 4 == 0, 64, 50)  # the sender's TTLs: 64 and 50, equally often
    t["flags"][12] = RST | ACK  # frame 13, after three packets of each TTL
    t["flags"][0] = SYN
    s = tell_both(t, 13)
    assert s is not None and s.sender_ttl_baseline == 50
    assert len(s.sender_after) == len(s.peer_after) == story.AFTER_CAP
    assert s.sender_after[0] == 15 and s.peer_after[0] == 14


def test_a_burst_with_changing_sequence_numbers() -> None:
    t = empty_table(6)
    t["frame"] = [1, 2, 3, 4, 5, 6]
    t["ts"] = [0.0, 0.1, 0.2, 0.3, 1.25, 1.5]
    t["src_lo"] = [1, 2, 9, 9, 9, 9]
    t["sport"] = [1000, 80, 80, 80, 80, 80]
    t["dst_lo"] = [2, 1, 1, 1, 1, 1]
    t["flags"] = [SYN, SYN | ACK, RST, RST, RST | ACK, RST]
    t["seq"] = [0, 0, 5, 5, 7, 9]
    s = tell_both(t, 4, 9, 80)
    assert s is not None and s.rst_burst == 3 and s.burst_seq_changes  # frames 3, 4, 5; frame 6 1.2 s later
    s = tell_both(t, 3, 9, 80)
    assert s is not None and s.rst_burst == 2 and not s.burst_seq_changes  # frame 5 is 1.05 s later
    assert tell_both(t, 3) == s


def test_other_argument_types_take_the_reference_path() -> None:
    t = empty_table(4)
    t["frame"] = [1, 2, 3, 4]
    t["ts"] = [0.0, 0.1, 0.2, 0.3]
    t["src_lo"] = [1, 2, 1, 2]
    t["sport"] = [1000, 80, 1000, 80]
    t["flags"] = [SYN, SYN | ACK, ACK, RST]
    want = story.tell_python(t, 4)
    assert want is not None
    for frame in (np.uint64(4), 4.0, True):
        assert_same_story(c_tell(t, frame), story.tell_python(t, frame))
    for lo in (np.uint64(2), 2.0, True, -1, 1 << 64, 1 << 70):
        assert_same_story(c_tell(t, 4, lo, 80), story.tell_python(t, 4, lo, 80))
    zero = t.copy()
    zero["src_lo"][2], zero["sport"][2] = 0, 0  # a sender no out-of-range address may match
    for lo, port in ((-1, 0), (1 << 64, 0), (0, -1), (0, 1 << 16)):
        assert_same_story(c_tell(zero, 4, lo, port), story.tell_python(zero, 4, lo, port))
    for port in (np.uint16(80), 80.0, -80, 65536, 1 << 80):
        assert_same_story(c_tell(t, 4, sport=port), story.tell_python(t, 4, sport=port))
    for frame in (-1, 0, 5, 1 << 64, 1 << 100):
        assert c_tell(t, frame) is None and story.tell_python(t, frame) is None
    # Another dtype with the same fields: the reference reads it by name.
    other = np.zeros(4, dtype=[(n, PACKET_DTYPE.fields[n][0]) for n in reversed(PACKET_DTYPE.names)])
    for name in PACKET_DTYPE.names:
        other[name] = t[name]
    assert_same_story(c_tell(other, 4), want)
    assert c_tell(empty_table(0), 1) is None
    assert_same_story(c_tell(flow=t, rst_frame=4), want)


def test_bad_calls_raise_what_the_reference_raises() -> None:
    t = empty_table(2)
    t["frame"] = [1, 2]
    for args, kwargs in (
        ((), {}),
        ((t,), {}),
        ((t, 2, 1, 1, 1), {}),
        ((t, 2), {"bogus": 1}),
        ((t, 2, 1), {"src_lo": 1}),
        (([1, 2], 2), {}),
        ((np.zeros((2, 2), dtype=PACKET_DTYPE), 2), {}),
    ):
        with pytest.raises(Exception) as want:
            story.tell_python(*args, **kwargs)
        with pytest.raises(want.type):
            c_tell(*args, **kwargs)


# Random small flows: hostile values of every column, frames in order with repeats, two endpoints and
# a stray third one.
TIMES = st.one_of(
    st.sampled_from([0.0, 0.1, 0.25, 0.2500001, 0.5, 1.0, 1.1, -0.0, math.inf, -math.inf, math.nan]),
    st.floats(min_value=-10.0, max_value=10.0, allow_nan=False),
    st.floats(allow_nan=True, allow_infinity=True),
)
HEADS = st.one_of(
    st.sampled_from([*sorted(story.HTTP_HEADS), 0x16030100, 0x17030300, 0, 0xFFFFFFFF]),
    st.integers(0, 0xFFFFFFFF),
)
ROW = st.fixed_dictionaries(
    {
        "gap": st.integers(0, 2),
        "ts": TIMES,
        "who": st.sampled_from([0, 0, 1, 1, 2, 3]),
        "flags": st.one_of(
            st.sampled_from([SYN, SYN | ACK, ACK, ACK | FIN, RST, RST | ACK, ACK | 0x08, 0, SYN | FIN | RST]),
            st.integers(0, 0xFFF),
        ),
        "plen": st.one_of(st.sampled_from([0, 0, 1, 1448]), st.integers(0, 0xFFFFFFFF)),
        "seq": st.one_of(st.sampled_from([0, 1, 0xFFFFFFFF, 0xFFFFFFFE]), st.integers(0, 0xFFFFFFFF)),
        "ack": st.one_of(st.sampled_from([0, 1, 0xFFFFFFFF]), st.integers(0, 0xFFFFFFFF)),
        "ttl": st.one_of(st.sampled_from([64, 63, 128, 255]), st.integers(0, 255)),
        "ip_id": st.integers(0, 0xFFFFFFFF),
        "opts": st.one_of(st.sampled_from([0, OPT_TS]), st.integers(0, 255)),
        "head": HEADS,
    }
)
ENDPOINTS = [(0x0000FFFF_0A000001, 40000), (0x0000FFFF_0A000002, 443), (0xFFFFFFFF_FFFFFFFF, 0xFFFF), (0, 0)]


def random_flow(rows: list[dict], sorted_ts: bool) -> np.ndarray:
    t = empty_table(len(rows))
    t["frame"] = np.cumsum([r["gap"] for r in rows])  # a gap of 0: a repeated frame number
    t["src_lo"] = [ENDPOINTS[r["who"]][0] for r in rows]
    t["sport"] = [ENDPOINTS[r["who"]][1] for r in rows]
    t["dst_lo"] = [ENDPOINTS[1 - min(r["who"], 1)][0] for r in rows]
    t["dport"] = [ENDPOINTS[1 - min(r["who"], 1)][1] for r in rows]
    t["payload_len"] = [r["plen"] for r in rows]
    for name in ("ts", "flags", "seq", "ack", "ttl", "ip_id", "opts", "head"):
        t[name] = [r[name] for r in rows]
    if sorted_ts:
        t["ts"] = np.sort(t["ts"])
    return t


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(ROW, min_size=0, max_size=40),
    sorted_ts=st.booleans(),
    picks=st.lists(st.integers(-1, 45), min_size=1, max_size=6),
    sender=st.one_of(
        st.none(),
        st.tuples(
            st.sampled_from([*(lo for lo, _ in ENDPOINTS), -1, 1 << 64]),
            st.one_of(st.sampled_from([*(port for _, port in ENDPOINTS), -1, 65536]), st.integers(-1, 65536)),
        ),
    ),
)
def test_same_on_random_flows(
    rows: list[dict], sorted_ts: bool, picks: list[int], sender: tuple | None
) -> None:
    flow = random_flow(rows, sorted_ts)
    frames = flow["frame"].tolist()
    for p in picks:
        frame = frames[p] if 0 <= p < len(frames) else p
        tell_both(flow, frame)
        if sender is not None:
            tell_both(flow, frame, *sender)
            tell_both(flow, frame, src_lo=sender[0])
            tell_both(flow, frame, sport=sender[1])
