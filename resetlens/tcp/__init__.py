"""Per-vantage TCP analysis: Zeek-compatible connections and one context record per RST.

`analyze_vantage(chunks, vantage)` streams the packet-table chunks of one capture (in capture order)
and returns a `VantageResult`:

* `connections`: one `resetlens.model.Connection` per TCP connection, Zeek conn.log semantics
  (conn_state, history, originator choice, reuse splitting, sequence-based byte counts), times on the
  capture's own clock, uid "C<n>@<vantage>" numbered in order of first packet.
* `resets`: one `ResetRecord` per RST segment (see `resetlens.tcp.resets`).
* `flows`: uid -> packet-table rows of every connection that has a RST: its first HEAD_PKTS packets,
  the TAIL_PKTS before its first RST and up to AFTER_RST_PKTS after it (for cross-vantage matching,
  blame and ladder diagrams).
* `anchors`: a bounded sample (at most MAX_ANCHORS rows, thinned evenly when exceeded) of packets for
  clock alignment across captures: every SYN and SYN-ACK plus the first ANCHOR_DATA_PKTS data segments
  of each direction of each connection, in capture order.

Two engines give identical results (tests/test_tcp_fast.py): the readable reference in `conn.py`
(pure Python, ~60-150 k packets/s) and its compiled twin in `fast.py` (numba, ~3-4x faster end to end,
but importing numba/LLVM costs ~120 MB of RSS and the first run compiles for ~30 s, cached afterwards).
`compiled=None` picks the compiled one when numba is installed and the capture has at least
COMPILE_MIN_PACKETS TCP segments (chunks are read ahead up to that many to decide);
RESETLENS_PURE_PYTHON=1 forces the reference engine.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from resetlens.model import Connection
from resetlens.tcp.resets import ResetRecord, build_record, decode_payload, flow_columns
from resetlens.tcp.tracker import (
    AFTER_RST_PKTS,
    ANCHOR_DATA_PKTS,
    COMPILE_MIN_PACKETS,
    HEAD_PKTS,
    MAX_ANCHORS,
    TAIL_PKTS,
    VantageTracker,
    numba_available,
)


@dataclass
class VantageResult:
    vantage: str
    connections: list[Connection] = field(default_factory=list)
    resets: list[ResetRecord] = field(default_factory=list)
    flows: dict[str, np.ndarray] = field(default_factory=dict)
    anchors: np.ndarray | None = None
    packets: int = 0  # TCP segments analysed


def analyze_vantage(chunks: Iterable[Any], vantage: str, compiled: bool | None = None) -> VantageResult:
    """Analyse one capture's PacketChunks (anything with `.table` and `.segments`), in capture order."""
    it = iter(chunks)
    head: list[Any] = []
    if compiled is None:
        # Look ahead far enough to know whether the capture is big enough to pay for the compiled engine.
        seen = 0
        for chunk in it:
            head.append(chunk)
            seen += len(chunk.table)
            if seen >= COMPILE_MIN_PACKETS:
                break
        compiled = seen >= COMPILE_MIN_PACKETS and numba_available()
    tracker = VantageTracker(vantage, compiled=compiled)
    segments: dict[int, bytes] = {}
    # The tracker makes many small acyclic objects: the cyclic GC would rescan them all for nothing.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for chunk in itertools.chain(head, it):
            tracker.feed(chunk.table)
            if chunk.segments:
                segments.update(chunk.segments)
        out = tracker.finish()
    finally:
        if gc_was_enabled:
            gc.enable()
    resets = []
    cols_of: dict[str, dict[str, np.ndarray]] = {}
    for snap in out.snapshots:
        uid = tracker.uid(snap.conn_idx)
        flow = out.flows.get(uid)
        cols = None
        if flow is not None and len(flow):
            cols = cols_of.get(uid)
            if cols is None:
                cols = cols_of[uid] = flow_columns(flow)
        frame = int(snap.row["frame"])
        resets.append(build_record(vantage, snap, uid, flow, segments.get(frame), cols))
    return VantageResult(
        vantage=vantage,
        connections=out.connections,
        resets=resets,
        flows=out.flows,
        anchors=out.anchors,
        packets=out.packets,
    )


__all__ = [
    "AFTER_RST_PKTS",
    "ANCHOR_DATA_PKTS",
    "HEAD_PKTS",
    "MAX_ANCHORS",
    "TAIL_PKTS",
    "ResetRecord",
    "VantageResult",
    "analyze_vantage",
    "decode_payload",
]
