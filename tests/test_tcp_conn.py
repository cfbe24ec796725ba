"""Zeek-compatible conn_state, history and splitting on hand-built packet tables."""

from __future__ import annotations

import dataclasses

import pytest
from test_tcp_packets import CLIENT, SERVER, A, F, R, S, Trace, handshake

from resetlens.capture.table import PSH
from resetlens.tcp import analyze_vantage


def conns(tr: Trace, vantage: str = "v"):
    return analyze_vantage([tr.chunk()], vantage).connections


def one(tr: Trace) -> tuple[str, str]:
    (c,) = conns(tr)
    return c.conn_state, c.history


def test_s0_attempt_without_reply() -> None:
    tr = Trace()
    tr.add(1.0, CLIENT, SERVER, S, 100)
    assert one(tr) == ("S0", "S")


def test_s1_established_not_closed_and_byte_counts() -> None:
    tr = Trace()
    handshake(tr)
    tr.add(1000.1, CLIENT, SERVER, A | PSH, 101, 5001, 300)
    tr.add(1000.2, SERVER, CLIENT, A | PSH, 5001, 401, 1200)
    (c,) = conns(tr)
    assert (c.conn_state, c.history) == ("S1", "ShADd")
    assert (c.orig_bytes, c.resp_bytes) == (300, 1200)
    assert (c.orig_pkts, c.resp_pkts, c.first_frame, c.last_frame) == (3, 2, 1, 5)
    assert (c.orig_h, c.orig_p, c.resp_h, c.resp_p) == (*CLIENT, *SERVER)
    assert c.uid == "C1@v" and c.vantage == "v"
    assert c.duration == pytest.approx(0.2)


def test_sf_normal_close() -> None:
    tr = Trace()
    handshake(tr)
    tr.add(1000.1, CLIENT, SERVER, A | F, 101, 5001)
    tr.add(1000.2, SERVER, CLIENT, A | F, 5001, 102)
    tr.add(1000.3, CLIENT, SERVER, A, 102, 5002)
    assert one(tr) == ("SF", "ShAFf")


def test_rej_syn_answered_by_rst_ack() -> None:
    tr = Trace()
    tr.add(1.0, CLIENT, SERVER, S, 100)
    tr.add(1.01, SERVER, CLIENT, R | A, 0, 101)
    assert one(tr) == ("REJ", "Sr")


def test_s2_and_s3_one_sided_close() -> None:
    tr = Trace()
    handshake(tr)
    tr.add(1000.1, CLIENT, SERVER, A | F, 101, 5001)
    assert one(tr) == ("S2", "ShAF")
    tr = Trace()
    handshake(tr)
    tr.add(1000.1, SERVER, CLIENT, A | F, 5001, 101)
    assert one(tr) == ("S3", "ShAf")


def test_rsto_and_rstr() -> None:
    tr = Trace()
    handshake(tr)
    tr.add(1000.1, CLIENT, SERVER, R | A, 101, 5001)
    assert one(tr) == ("RSTO", "ShAR")
    tr = Trace()
    handshake(tr)
    tr.add(1000.1, SERVER, CLIENT, R, 5001)
    assert one(tr) == ("RSTR", "ShAr")


def test_rstos0_and_the_fin_exception() -> None:
    tr = Trace()
    tr.add(1.0, CLIENT, SERVER, S, 100)
    tr.add(1.5, CLIENT, SERVER, R, 101)
    assert one(tr) == ("RSTOS0", "SR")
    # Zeek GH-1164: a FIN before the RST makes it OTH, not RSTOS0.
    tr = Trace()
    tr.add(1.0, CLIENT, SERVER, S, 100)
    tr.add(1.1, SERVER, CLIENT, A, 5000, 101)
    tr.add(1.2, CLIENT, SERVER, F | A, 101, 5000)
    tr.add(1.3, CLIENT, SERVER, R, 102)
    assert one(tr) == ("OTH", "SaFR")


def test_rstrh_and_shr_without_syn() -> None:
    tr = Trace()
    tr.add(1.0, SERVER, CLIENT, S | A, 5000, 101)
    tr.add(1.1, SERVER, CLIENT, R, 5001)
    assert one(tr) == ("RSTRH", "^hr")
    tr = Trace()
    tr.add(1.0, SERVER, CLIENT, S | A, 5000, 101)
    tr.add(1.1, SERVER, CLIENT, F | A, 5001, 101)
    assert one(tr) == ("SHR", "^hf")


def test_sh_syn_then_fin() -> None:
    tr = Trace()
    tr.add(1.0, CLIENT, SERVER, S, 100)
    tr.add(1.1, CLIENT, SERVER, F, 101)
    assert one(tr) == ("SH", "SF")


def test_oth_lone_rst_and_midstream_flip_by_server_port() -> None:
    tr = Trace()
    tr.add(1.0, CLIENT, SERVER, R, 777)
    (c,) = conns(tr)
    assert (c.conn_state, c.history, c.orig_p) == ("OTH", "R", CLIENT[1])
    # First packet is data from port 80: Zeek takes port 80 as the responder and flips.
    tr = Trace()
    tr.add(1.0, SERVER, CLIENT, A | PSH, 9000, 300, 100)
    tr.add(1.1, CLIENT, SERVER, A, 300, 9100)
    (c,) = conns(tr)
    assert (c.conn_state, c.history, c.orig_p, c.resp_p) == ("OTH", "^dA", CLIENT[1], SERVER[1])


def test_lone_rsts_a_minute_apart_are_separate_connections() -> None:
    tr = Trace()
    for i in range(5):
        tr.add(60.0 * i, CLIENT, SERVER, R, 777)
    rows = conns(tr)
    assert [(c.conn_state, c.history) for c in rows] == [("OTH", "R")] * 5
    assert [c.uid for c in rows] == [f"C{i}@v" for i in range(1, 6)]


def test_syn_retries_after_rej_are_new_connections() -> None:
    tr = Trace()
    for i in range(3):
        tr.add(1.0 + 0.5 * i, CLIENT, SERVER, S, 100)
        tr.add(1.05 + 0.5 * i, SERVER, CLIENT, R | A, 0, 101)
    assert [(c.conn_state, c.history) for c in conns(tr)] == [("REJ", "Sr")] * 3


def test_syn_retransmission_without_reply_stays_one_attempt() -> None:
    tr = Trace()
    tr.add(1.0, CLIENT, SERVER, S, 100)
    tr.add(2.0, CLIENT, SERVER, S, 100)
    tr.add(4.0, CLIENT, SERVER, S, 100)
    (c,) = conns(tr)
    assert (c.conn_state, c.history, c.orig_pkts) == ("S0", "S", 3)


def test_attempt_timer_splits_late_syn_retry() -> None:
    """An unanswered SYN is given up after tcp_attempt_delay; a later retry starts a new connection."""
    tr = Trace()
    tr.add(1.0, CLIENT, SERVER, S, 100)
    tr.add(7.0, CLIENT, SERVER, S, 100)
    assert [(c.conn_state, c.history) for c in conns(tr)] == [("S0", "S"), ("S0", "S")]


def test_new_syn_with_new_isn_after_close_is_reuse() -> None:
    tr = Trace()
    handshake(tr, t=10.0)
    tr.add(10.1, CLIENT, SERVER, A | F, 101, 5001)
    tr.add(10.2, SERVER, CLIENT, A | F, 5001, 102)
    tr.add(10.3, CLIENT, SERVER, A, 102, 5002)
    handshake(tr, t=11.0, cseq=90000, sseq=70000)
    rows = conns(tr)
    assert [(c.conn_state, c.history) for c in rows] == [("SF", "ShAFf"), ("S1", "ShA")]


def test_retransmitted_rst_same_seq_is_one_letter_different_seq_two() -> None:
    tr = Trace()
    handshake(tr)
    tr.add(1000.1, SERVER, CLIENT, R, 5001)
    tr.add(1000.2, SERVER, CLIENT, R, 5001)
    assert one(tr) == ("RSTR", "ShAr")
    tr = Trace()
    handshake(tr)
    tr.add(1000.1, SERVER, CLIENT, R, 5001)
    tr.add(1000.2, SERVER, CLIENT, R, 6461)
    assert one(tr) == ("RSTR", "ShArr")


def test_history_letters_retransmission_zero_window_gap_are_logarithmic() -> None:
    tr = Trace()
    handshake(tr)
    for i in range(12):  # the same segment 12 times: 1 data + 11 retransmissions -> "T" twice (1, 10)
        tr.add(1000.1 + i * 0.01, CLIENT, SERVER, A | PSH, 101, 5001, 100)
    tr.add(1001.0, SERVER, CLIENT, A, 5001, 201, window=0)
    # the server acknowledges bytes the capture never saw: a content gap in the client's stream
    tr.add(1001.1, SERVER, CLIENT, A, 5001, 401)
    (c,) = conns(tr)
    assert c.history == "ShADTTawG"


def test_truncated_data_makes_a_gap_like_zeek() -> None:
    tr = Trace()
    handshake(tr)
    tr.add(1000.1, SERVER, CLIENT, A | PSH, 5001, 101, 1000, captured=0)
    tr.add(1000.2, CLIENT, SERVER, A, 101, 6001)
    (c,) = conns(tr)
    assert c.history == "ShAdg"
    assert c.resp_bytes == 1000


def test_fin_rst_packet_is_i_and_syn_fin_is_q() -> None:
    tr = Trace()
    handshake(tr)
    tr.add(1000.1, CLIENT, SERVER, F | R | A, 101, 5001)
    assert one(tr)[1] == "ShAI"
    tr = Trace()
    tr.add(1.0, CLIENT, SERVER, S | F, 100)
    assert one(tr)[1] == "Q"


def test_syn_synack_reversal_flips_roles() -> None:
    tr = Trace()
    tr.add(1.0, SERVER, CLIENT, S | A, 5000, 101)  # SYN-ACK captured before its SYN
    tr.add(1.0, CLIENT, SERVER, S, 100)
    tr.add(1.01, CLIENT, SERVER, A, 101, 5001)
    (c,) = conns(tr)
    assert (c.orig_p, c.resp_p) == (CLIENT[1], SERVER[1])
    assert c.history.startswith("^h")


def test_streaming_in_chunks_gives_the_same_result() -> None:
    tr = Trace()
    for k in range(20):
        port = 41000 + k
        cl = (CLIENT[0], port)
        tr.add(k, cl, SERVER, S, 100)
        tr.add(k + 0.01, SERVER, cl, S | A, 5000, 101)
        tr.add(k + 0.02, cl, SERVER, A, 101, 5001)
        tr.add(k + 0.03, cl, SERVER, R | A, 101, 5001)
    whole = tr.chunk()
    parts = []
    for lo in range(0, len(whole.table), 7):
        sub = whole.table[lo : lo + 7]
        segs = {f: b for f, b in whole.segments.items() if f in set(sub["frame"].tolist())}
        parts.append(type(whole)(sub, segs))
    a = analyze_vantage([whole], "v")
    b = analyze_vantage(parts, "v")
    assert [dataclasses.asdict(c) for c in a.connections] == [dataclasses.asdict(c) for c in b.connections]
    assert [r.to_dict() for r in a.resets] == [r.to_dict() for r in b.resets]
    assert all(c.conn_state == "RSTO" for c in a.connections)
    assert len(a.flows) == 20 and all(len(f) == 4 for f in a.flows.values())


def test_flows_and_anchors_are_bounded_and_only_for_reset_connections() -> None:
    tr = Trace()
    handshake(tr, t=1.0)
    for i in range(300):
        tr.add(1.1 + i * 0.001, CLIENT, SERVER, A | PSH, 101 + 10 * i, 5001, 10)
    tr.add(2.0, SERVER, CLIENT, R, 5001)
    other = (CLIENT[0], 50000)
    tr.add(3.0, other, SERVER, S, 7)
    tr.add(3.01, SERVER, other, S | A, 9, 8)
    res = analyze_vantage([tr.chunk()], "v")
    assert set(res.flows) == {"C1@v"}
    flow = res.flows["C1@v"]
    assert len(flow) < 100 and flow["frame"][0] == 1 and flow["frame"][-1] == 304
    syns = res.anchors[(res.anchors["flags"] & S) != 0]
    assert len(syns) == 4
    assert len(res.anchors) == 4 + 2  # plus the first two data segments of the client
