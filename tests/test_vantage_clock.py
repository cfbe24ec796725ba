"""Clock alignment and RST event grouping on real packet headers (corpus captures), with clocks
shifted by seconds and by a day, one-way delays in each direction, NAT-rewritten addresses and
`-i any` doubles."""

from __future__ import annotations

import numpy as np
import pytest

from resetlens.capture import read_table
from resetlens.capture.table import DIR_IN, DIR_OUT, RST, addr_to_halves
from resetlens.vantage import clock, match
from tests.conftest import CORPUS_PCAPS

SSH = CORPUS_PCAPS / "zeek_ssh_ssh.pcap"


def _second_vantage(table: np.ndarray, theta: float, delay: float) -> np.ndarray:
    """The same packets as seen at a capture `delay` seconds nearer one end of each connection (the end
    with the larger address:port), clock off by theta."""
    other = table.copy()
    src = other["src_lo"].astype(object) * 65536 + other["sport"].astype(object)
    dst = other["dst_lo"].astype(object) * 65536 + other["dport"].astype(object)
    from_near_end = np.array([a > b for a, b in zip(src, dst, strict=True)])
    other["ts"] = other["ts"] + theta + np.where(from_near_end, -delay, delay)
    return other


@pytest.mark.parametrize("theta", [3.7, -2.25, 86400.0, -0.0004])
def test_offset_found_within_error_bar(theta: float) -> None:
    table, _, _ = read_table(SSH)
    delay = 0.002
    est = clock.estimate(table, _second_vantage(table, theta, delay))
    assert est.method == "matched packets"
    assert est.matches > 100
    # The estimate puts the other capture back on the reference clock, within its own error bar.
    assert abs(est.offset + theta) <= est.error + 1e-6
    assert est.error <= delay + 1e-6


def test_align_chains_through_an_intermediate_capture() -> None:
    table, _, _ = read_table(SSH)
    a = table
    b = _second_vantage(table, 5.0, 0.001)
    # c overlaps only b: keep only packets b has, then shift again relative to b.
    c = _second_vantage(b, -1.5, 0.001)
    c = c[: len(c) // 2]
    est = clock.align({"a": a, "b": b, "c": c}, "a")
    assert est["a"].offset == 0.0
    assert abs(est["b"].offset + 5.0) <= est["b"].error + 1e-6
    assert abs(est["c"].offset + 3.5) <= est["c"].error + 1e-6


def test_no_common_packet_is_said_not_guessed() -> None:
    table, _, _ = read_table(SSH)
    other = table.copy()
    other["seq"] += 12345  # different packets altogether
    est = clock.align({"a": table, "b": other}, "a")
    assert est["b"].method == "none"
    assert est["b"].error is None
    assert "no packet in common" in est["b"].note


def _rst_rows() -> np.ndarray:
    table, _, _ = read_table(CORPUS_PCAPS / "zeek_pop3_pop3.pcap")
    rst = table[(table["flags"] & RST) != 0]
    assert len(rst) == 6
    return rst


def test_copies_of_one_rst_across_a_nat_are_one_event() -> None:
    a = _rst_rows()
    b = a.copy()
    b["ts"] += 0.0003
    b["ttl"] -= 1
    hi, lo = addr_to_halves("10.99.0.7")  # a NAT rewrote the destination
    b["dst_hi"], b["dst_lo"] = hi, lo
    events = match.group_resets({"outside": a, "inside": b}, {"outside": 0.0, "inside": 0.001})
    assert len(events) == len(a)
    for ev in events:
        assert [c.vantage for c in ev.copies] == ["outside", "inside"]


def test_any_interface_doubles_merge_but_real_repeats_do_not() -> None:
    a = _rst_rows()[:1]
    double = np.concatenate([a, a])
    double["direction"] = [DIR_IN, DIR_OUT]
    double["ts"][1] += 0.00002
    double["frame"] = [10, 14]
    repeat = a.copy()
    repeat["ts"] += 1.0  # the same RST bytes a second later: a second reset
    rows = np.concatenate([double, repeat])
    events = match.group_resets({"router": rows}, {"router": 0.0})
    assert len(events) == 2
    assert events[0].copies[0].doubles == [1]
    assert events[1].copies[0].doubles == []


def test_two_real_resets_microseconds_apart_stay_two() -> None:
    # A kernel answering two ACKs of one handshake sends two identical RSTs 100 µs apart, with the
    # peer's second ACK between them: no interface or direction difference, frames not adjacent.
    a = _rst_rows()[:1]
    pair = np.concatenate([a, a])
    pair["frame"] = [34, 40]
    pair["ts"][1] += 0.0001
    events = match.group_resets({"server": pair}, {"server": 0.0})
    assert len(events) == 2
