"""Generated captures (benchmarks/gen_pcap.py, with its own ground truth) in every format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from resetlens.capture import open_capture, read_table
from resetlens.capture.table import RST, halves_to_addr

GEN = Path(__file__).resolve().parents[1] / "benchmarks" / "gen_pcap.py"


@pytest.mark.parametrize(
    ("fmt", "gz"), [("pcap", False), ("pcap-ns", False), ("pcapng", False), ("pcapng", True)]
)
def test_generated_capture_matches_its_truth(tmp_path: Path, fmt: str, gz: bool) -> None:
    if not GEN.exists():
        pytest.skip("benchmarks/gen_pcap.py not available")
    out = tmp_path / f"g.{fmt}"
    cmd = [sys.executable, str(GEN), "-o", str(out), "--size-mb", "4", "--seed", "3", "--format", fmt]
    subprocess.run(cmd + (["--gzip"] if gz else []), check=True, capture_output=True, timeout=120)
    truth = json.loads(Path(str(out) + ".truth.json").read_text())
    table, segments, info = read_table(out, block_size=1 << 20)  # several blocks
    assert info.packets == truth["frames"] and info.tcp_packets == truth["tcp_packets"] == len(table)
    assert info.warnings == [] and info.format == fmt + ("+gzip" if gz else "")
    rst = table[(table["flags"] & RST) != 0]
    got = [
        {
            "frame": int(r["frame"]),
            "src": halves_to_addr(r["src_hi"], r["src_lo"]),
            "dst": halves_to_addr(r["dst_hi"], r["dst_lo"]),
            "sport": int(r["sport"]),
            "dport": int(r["dport"]),
            "seq": int(r["seq"]),
            "ack": int(r["ack"]),
            "flags": int(r["flags"]),
            "ttl": int(r["ttl"]),
            "ip_id": int(r["ip_id"]) if r["ipver"] == 4 else 0,
            "ipver": int(r["ipver"]),
        }
        for r in rst
    ]
    keys = ["frame", "src", "dst", "sport", "dport", "seq", "ack", "flags", "ttl", "ip_id", "ipver"]
    want = [{k: t[k] if not (k == "ip_id" and t["ipver"] == 6) else 0 for k in keys} for t in truth["resets"]]
    assert got == want
    assert np.allclose(rst["ts"], [t["ts"] for t in truth["resets"]], atol=2e-6, rtol=0)
    assert sorted(segments) == [t["frame"] for t in truth["resets"]]
    reader = open_capture(out)
    assert sum(len(c.table) for c in reader.chunks()) == len(table)
