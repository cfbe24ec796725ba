"""ResetRecord context on hand-built tables and on corpus traces."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import pytest
from test_tcp_packets import CLIENT, SERVER, A, F, R, S, Trace, handshake

from resetlens.capture import open_capture
from resetlens.capture.table import PSH
from resetlens.tcp import ResetRecord, analyze_vantage, decode_payload

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "pcaps"


def resets(tr: Trace) -> list[ResetRecord]:
    return analyze_vantage([tr.chunk()], "v").resets


def established(window: int = 1000) -> Trace:
    tr = Trace()
    tr.add(1000.0, CLIENT, SERVER, S, 100, window=window)
    tr.add(1000.01, SERVER, CLIENT, S | A, 5000, 101, window=window)
    tr.add(1000.02, CLIENT, SERVER, A, 101, 5001, window=window)
    tr.add(1000.1, SERVER, CLIENT, A | PSH, 5001, 101, 200, window=window)
    tr.add(1000.2, CLIENT, SERVER, A, 101, 5201, window=window)
    return tr


@pytest.mark.parametrize(
    ("rst_seq", "check", "offset"),
    [
        (5201, "exact", 0),
        (5201 + 500, "in_window", 500),
        (5201 + 5000, "outside", 5000),
        (5101, "outside", -100),
    ],
)
def test_rst_seq_against_receiver_expectation(rst_seq: int, check: str, offset: int) -> None:
    tr = established()
    tr.add(1000.3, SERVER, CLIENT, R, rst_seq)
    (rec,) = resets(tr)
    assert (rec.seq_check, rec.seq_offset, rec.expected_seq) == (check, offset, 5201)
    assert rec.receiver_window == 1000 and rec.sent_by == "resp" and not rec.rst_ack
    assert rec.ack is None and rec.ack_check == "none"
    assert rec.seq_inside_sent_data == (offset == -100)


def test_rst_ack_number_check_and_header_fields() -> None:
    tr = established()
    tr.add(1000.3, CLIENT, SERVER, R | A, 101, 5201, ttl=61, ip_id=4242, df=False, window=0, opts=0)
    (rec,) = resets(tr)
    assert rec.rst_ack and rec.flags == "RA" and rec.ack_check == "exact" and rec.expected_ack == 5201
    assert (rec.ttl, rec.baseline_ttl, rec.ttl_delta) == (61, 64, -3)
    assert (rec.ip_id, rec.baseline_ip_id, rec.ip_id_delta) == (4242, 5, 4237)
    assert rec.df_changed and rec.baseline_df is True
    assert rec.baseline_options == ["ts"] and rec.missing_options == ["ts"]
    assert rec.baseline_packets == 3 and rec.baseline_window == 1000
    assert rec.preceded_by == "data" and rec.uid == "C1@v" and rec.sent_by == "orig"
    assert rec.idle_before == pytest.approx(0.1)
    assert [(p["frame"], p["from"]) for p in rec.last_packets] == [
        (3, "sender"),
        (4, "receiver"),
        (5, "sender"),
    ]
    json.dumps(rec.to_dict())


def test_to_dict_is_a_copy_of_the_fields_in_order() -> None:
    tr = established()
    tr.add(1000.3, CLIENT, SERVER, R | A, 101, 5201)
    tr.add(1000.4, SERVER, CLIENT, A | PSH, 5201, 101, 10)  # the receiver carries on: after-lists filled
    (rec,) = resets(tr)
    rec.note = "set beside the fields"  # type: ignore[attr-defined]
    d = rec.to_dict()
    assert list(d) == [f.name for f in dataclasses.fields(ResetRecord)]
    assert d == dataclasses.asdict(rec) and rec.receiver_after == [7] and rec.last_packets
    d["last_packets"][0]["frame"] = -1
    d["options"].append("x")
    d["receiver_after"].append(-1)
    assert rec.last_packets[0]["frame"] != -1 and "x" not in rec.options and rec.receiver_after == [7]


def test_rej_rst_answering_a_syn() -> None:
    tr = Trace()
    tr.add(1.0, CLIENT, SERVER, S, 100)
    tr.add(1.01, SERVER, CLIENT, R | A, 0, 101)
    (rec,) = resets(tr)
    assert rec.preceded_by == "syn" and rec.ack_check == "exact" and rec.seq_check == "unknown"
    assert rec.sender_state == "INACTIVE" and rec.receiver_state == "SYN_SENT"


def test_retransmitted_rst_and_changing_seq() -> None:
    tr = established()
    tr.add(1000.3, SERVER, CLIENT, R, 5201)
    tr.add(1000.4, SERVER, CLIENT, R, 5201)
    tr.add(1000.5, SERVER, CLIENT, R, 6661)
    first, second, third = resets(tr)
    assert not first.retransmitted and second.retransmitted and not third.retransmitted
    assert first.more_rsts == [7, 8] and first.rst_seq_changes
    assert not third.rst_seq_changes and third.seq_check == "outside"


def test_race_claimed_sender_keeps_sending_after_its_rst() -> None:
    """Weaver et al. 'RST SEQ DATA': data from the RST's claimed sender continues after it."""
    tr = established()
    rst = tr.add(1000.3, SERVER, CLIENT, R | A, 5201, 101, ttl=50)
    data = tr.add(1000.31, SERVER, CLIENT, A | PSH, 5201, 101, 500)
    ack = tr.add(1000.32, CLIENT, SERVER, A, 101, 5701)
    (rec,) = resets(tr)
    assert rec.frame == rst and rec.sender_data_after == [data] and rec.sender_after == [data]
    assert rec.receiver_after == [ack] and rec.ttl_delta == -14
    assert rec.challenge_ack is None  # the next packet came from the claimed sender, not the receiver


def test_challenge_ack_after_in_window_rst() -> None:
    tr = established()
    tr.add(1000.3, SERVER, CLIENT, R, 5201 + 100)
    chal = tr.add(1000.3005, CLIENT, SERVER, A, 101, 5201)
    (rec,) = resets(tr)
    assert rec.seq_check == "in_window" and rec.challenge_ack == chal


def test_rst_after_fin_exchange() -> None:
    tr = Trace()
    handshake(tr)
    tr.add(1000.1, CLIENT, SERVER, A | F, 101, 5001)
    tr.add(1000.2, SERVER, CLIENT, A | PSH, 5001, 102, 50)
    tr.add(1000.3, CLIENT, SERVER, R, 102)
    (rec,) = resets(tr)
    assert rec.preceded_by == "fin" and rec.seq_check == "exact" and rec.history_before == "ShAFd"


def test_diagnostic_payload_decoding() -> None:
    diag, text = decode_payload(struct.pack("!HHI", 0x33AA, 14, 32473))
    assert text is None
    assert diag == {"reason_code": 14, "reason": "connection timeout", "pen": 32473, "vendor_data": ""}
    diag, _ = decode_payload(struct.pack("!HHI", 0x33AA, 99, 0) + b"\x01\x02")
    assert diag["reason"] == "unassigned" and diag["vendor_data"] == "0102"
    assert decode_payload(b"Access Denied") == (None, "Access Denied")
    assert decode_payload(b"\x00\x01\x02\x03\xff") == (None, None)
    assert decode_payload(b"") == (None, None)


def test_diagnostic_payload_in_a_rst_segment() -> None:
    tr = established()
    payload = struct.pack("!HHI", 0x33AA, 9, 3375)
    tr.add(1000.3, SERVER, CLIENT, R | A, 5201, 101, payload=payload)
    (rec,) = resets(tr)
    assert rec.diagnostic["reason"] == "not authorized" and rec.diagnostic["pen"] == 3375
    assert rec.payload_len == 8 and rec.cause_text is None


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_corpus_access_denied_cause_text_both_directions() -> None:
    for name, sender in (
        ("sv_bug-6244-tcp-rst-with-data.pcap", "orig"),
        ("sv_bug-6244-tcp-rst-with-data-02.pcap", "resp"),
    ):
        res = analyze_vantage(open_capture(CORPUS / name).chunks(), "v")
        (rec,) = res.resets
        assert rec.cause_text == "Access Denied" and rec.payload_len == 13 and rec.sent_by == sender
        # RST payload is not stream data: the connection's byte counts exclude it
        (conn,) = res.connections
        assert rec.uid == conn.uid


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_corpus_injected_rst_before_synack() -> None:
    """rst-inject-rae: the spoofed RST (frame 2) is followed by the claimed sender's genuine SYN-ACK."""
    res = analyze_vantage(open_capture(CORPUS / "zeek_tcp_rst-inject-rae.pcap").chunks(), "v")
    first = res.resets[0]
    assert first.frame == 2 and first.reserved_bits and first.sent_by == "resp"
    assert first.sender_after and first.sender_after[0] == 3
    assert first.more_rsts == [7, 9] and first.rst_seq_changes


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_corpus_teredo_middlebox_rsts_have_no_baseline() -> None:
    res = analyze_vantage(open_capture(CORPUS / "zeek_tunnels_Teredo.pcap").chunks(), "v")
    late = [r for r in res.resets if r.frame in (50, 51, 78)]
    assert len(late) == 3
    assert all(r.ttl == 255 and r.sent_by == "resp" and r.baseline_packets == 0 for r in late)
