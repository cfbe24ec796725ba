"""Blame verdicts on public captures whose resets are documented upstream (../shared/corpus/MANIFEST.md)."""

from __future__ import annotations

from resetlens.bundle import bundle_from_args
from resetlens.model import Analysis
from resetlens.pipeline import analyze
from tests.conftest import CORPUS_PCAPS


def _one(name: str) -> Analysis:
    return analyze(bundle_from_args([f"capture={CORPUS_PCAPS / name}"], [], []))


def _by_frame(a: Analysis) -> dict:
    return {r.seen_at[0].frame: r for r in a.resets}


def test_zeek_rst_inject_rae_spoofed_frame_2_only() -> None:
    # Upstream: frame 2 is "the injected RST packet" (reserved bits, TTL 46 vs the responder's 49);
    # frames 7 and 9 are the responder's own resets.
    r = _by_frame(_one("zeek_tcp_rst-inject-rae.pcap"))
    assert r[2].sender.kind == "injected" and r[2].sender.role == "middlebox"
    codes = {e.code for e in r[2].evidence}
    assert "reserved_bits" in codes and "ttl_address_mismatch" in codes
    for frame in (7, 9):
        assert r[frame].sender.kind != "injected"
        assert r[frame].sender.role == "server"
    # Frame 9 answers the peer's data after the server's own reset: it shares frame 7's cause.
    assert r[9].cause == r[7].cause == "abortive_close"
    assert any(e.code == "follow_up_reset" for e in r[9].evidence)


def test_teredo_ttl_255_resets_are_one_middlebox() -> None:
    # Upstream notes: frames 50, 51, 78 carry TTL 255 and consecutive IP IDs across two "servers"
    # whose real TTL is 53: a middlebox's resets. Frames 18 and 20 are the Windows client's own.
    r = _by_frame(_one("zeek_tunnels_Teredo.pcap"))
    for frame in (50, 51, 78):
        assert r[frame].sender.kind == "injected", frame
        assert any(e.code == "same_device_ipid" for e in r[frame].evidence)
    for frame in (18, 20):
        assert r[frame].sender.role == "client" and r[frame].sender.kind == "application"


def test_single_capture_names_what_a_second_one_would_add() -> None:
    a = _one("zeek_pop3_pop3.pcap")
    for r in a.resets:
        assert r.cause == "no_listener" and r.sender.role == "server"
        missing = [e for e in r.evidence if e.missing]
        assert any(e.code == "missing_sender_capture" for e in missing)
        assert r.confidence < 0.9  # one side only: never full confidence


def test_rst_payload_text_is_kept() -> None:
    a = _one("sv_bug-6244-tcp-rst-with-data.pcap")
    (r,) = a.resets
    assert r.seen_at[0].context.get("cause_text") == "Access Denied"
