"""Per-vantage TCP analysis: Zeek-compatible connections and one context record per RST.

`analyze_vantage(chunks, vantage)` streams the packet-table chunks of one capture (in capture order)
and returns a `VantageResult`:

* `connections`: a `ConnectionTable` (resetlens.tcp.conntable) with one row per TCP connection, Zeek
  conn.log semantics (conn_state, history, originator choice, reuse splitting, sequence-based byte
  counts), times on the capture's own clock, uid "C<n>@<vantage>" numbered in order of first packet;
  iterating it yields `resetlens.model.Connection` objects.
* `resets`: one `ResetRecord` per RST segment (see `resetlens.tcp.resets`).
* `flows`: uid -> packet-table rows of every connection that has a RST: its first HEAD_PKTS packets,
  the TAIL_PKTS before its first RST and up to AFTER_RST_PKTS after it (for cross-vantage matching,
  blame and ladder diagrams).
* `anchors`: a bounded sample (at most MAX_ANCHORS rows, thinned evenly when exceeded) of packets for
  clock alignment across captures: every SYN and SYN-ACK plus the first ANCHOR_DATA_PKTS data segments
  of each direction of each connection, in capture order.

Two engines give identical results (tests/test_tcp_fast.py): the readable reference in `conn.py`
(pure Python, ~60-150 k packets/s) and its C twin `_czeek.c` driven by `fast.py` (millions of packets/s,
built by setup.py when a C compiler exists). `compiled=None` uses the C engine whenever it was built, for
captures of every size; RESETLENS_PURE_PYTHON=1 forces the reference engine. The RST records likewise:
`resets.build_record` is the reference, `_crecord.c` its C twin (tests/test_tcp_crecord.py), picked by
`records` (None: as `compiled`).
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from resetlens.tcp.conntable import ConnectionTable
from resetlens.tcp.resets import ResetRecord, build_records, decode_payload
from resetlens.tcp.tracker import (
    AFTER_RST_PKTS,
    ANCHOR_DATA_PKTS,
    HEAD_PKTS,
    MAX_ANCHORS,
    TAIL_PKTS,
    VantageTracker,
)


@dataclass
class VantageResult:
    vantage: str
    connections: ConnectionTable = field(default_factory=ConnectionTable.empty)
    resets: list[ResetRecord] = field(default_factory=list)
    flows: dict[str, np.ndarray] = field(default_factory=dict)
    anchors: np.ndarray | None = None
    packets: int = 0  # TCP segments analysed


def analyze_vantage(
    chunks: Iterable[Any], vantage: str, compiled: bool | None = None, records: bool | None = None
) -> VantageResult:
    """Analyse one capture's PacketChunks (anything with `.table` and `.segments`), in capture order.
    `compiled` picks the connection engine, `records` the RST record builder (None: as `compiled`)."""
    if records is None:
        records = compiled
    tracker = VantageTracker(vantage, compiled=compiled)
    segments: dict[int, bytes] = {}
    # The tracker makes many small acyclic objects: the cyclic GC would rescan them all for nothing.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for chunk in chunks:
            tracker.feed(chunk.table)
            if chunk.segments:
                segments.update(chunk.segments)
        out = tracker.finish()
    finally:
        if gc_was_enabled:
            gc.enable()
    resets = build_records(vantage, out.snapshots, out.flows, segments, tracker.uid, records)
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
