"""Wrong clocks: a real lab bundle with one capture's clock moved by seconds must give the same verdicts,
with the offset found from the packets themselves and reported with its error bar."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from resetlens.bundle import load_bundle
from resetlens.pipeline import analyze
from tests.conftest import LAB_FIXTURES

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e9),
    b"\xa1\xb2\xc3\xd4": (">", 1e6),
    b"\xa1\xb2\x3c\x4d": (">", 1e9),
}


def shift_pcap(path: Path, seconds: float) -> None:
    """Rewrite a classic pcap in place with every timestamp moved by `seconds`."""
    data = bytearray(path.read_bytes())
    order, scale = PCAP_MAGICS[bytes(data[:4])]
    off = 24
    while off + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack_from(order + "IIII", data, off)
        t = round((sec + frac / scale + seconds) * scale)
        struct.pack_into(order + "II", data, off, t // int(scale), t % int(scale))
        off += 16 + caplen
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("vantage", "shift"), [("server", 7.25), ("client", -3600.5), ("firewall", 0.8)])
def test_shifted_capture_same_verdicts(tmp_path: Path, vantage: str, shift: float) -> None:
    src = LAB_FIXTURES / "dpi_injection"
    if not src.is_dir():
        pytest.fail("lab fixture dpi_injection missing")
    bundle = tmp_path / "b"
    shutil.copytree(src, bundle)
    baseline = analyze(load_bundle(src))
    shift_pcap(bundle / "captures" / f"{vantage}.pcap", shift)
    shifted = analyze(load_bundle(bundle))

    cap = next(c for c in shifted.captures if c.vantage == vantage)
    ref = shifted.reference_vantage
    if vantage == ref:
        # The reference moved: every other capture's offset moves by the same amount instead.
        for c in shifted.captures:
            if c.vantage != ref:
                b = next(x for x in baseline.captures if x.vantage == c.vantage)
                assert abs((c.clock_offset - b.clock_offset) - shift) <= (c.clock_offset_error or 0) + 1e-3
    else:
        assert cap.clock_offset_error is not None
        assert abs(cap.clock_offset + shift) <= cap.clock_offset_error + 1e-3
        assert cap.clock_offset_error < 0.01
    verdicts = lambda a: sorted(  # noqa: E731
        (sorted((s.vantage, s.frame) for s in r.seen_at), r.sender.role, r.sender.kind, r.cause)
        for r in a.resets
    )
    assert verdicts(shifted) == verdicts(baseline)
