"""The compiled engine: the Python side of `_czeek.c`, Zeek's per-packet TCP logic in C.

`conn.py` is the readable reference; `_czeek.c` restates it statement by statement (tests/test_tcp_fast.py
checks both give identical connections, RST snapshots, flows and anchors on the corpus and on synthetic
and hostile traffic). The C engine finds live connections through a hash table keyed by the exact 4-tuple,
keeps their state in slots freed when they end, and returns the finished connections as rows of a
`ConnectionTable`. `AVAILABLE` is false when the extension was not built (no C compiler) or
RESETLENS_PURE_PYTHON is set; the tracker then uses conn.py.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from resetlens.capture.table import PACKET_DTYPE, field_layout
from resetlens.tcp.conntable import CONNECTION_DTYPE, ConnectionTable
from resetlens.tcp.zeek import LIKELY_SERVER_PORTS

try:
    from resetlens.tcp import _czeek  # type: ignore[attr-defined]
except ImportError:  # not built: the pure-Python engine is used
    _czeek = None

if TYPE_CHECKING:
    from resetlens.tcp.tracker import VantageTracker

# Packet-table fields the engine reads, in the order of its layout tuple (offset, size per field).
C_FIELDS = (
    "frame", "ts", "src_hi", "src_lo", "dst_hi", "dst_lo", "sport", "dport", "flags", "seq", "ack", "window",
    "payload_len", "captured_len", "opts",
)  # fmt: skip
DEFAULT_SLOTS = 1024  # connection slots allocated up front, ~1.3 KB each (doubled when exhausted)


def _likely_ports() -> bytes:
    flags = bytearray(65536)
    for port in LIKELY_SERVER_PORTS:
        flags[port] = 1
    return bytes(flags)


AVAILABLE = _czeek is not None and not os.environ.get("RESETLENS_PURE_PYTHON")


class FastTracker:
    """The C engine behind resetlens.tcp.tracker.VantageTracker's interface (feed, conn_arrays, finish)."""

    def __init__(self, base: VantageTracker, cap: int = DEFAULT_SLOTS) -> None:
        from resetlens.tcp.tracker import ANCHOR_DATA_PKTS

        self.base = base  # for retention, anchors, snapshots
        self.engine = _czeek.Engine(
            field_layout(PACKET_DTYPE, C_FIELDS),
            field_layout(CONNECTION_DTYPE, CONNECTION_DTYPE.names),
            CONNECTION_DTYPE.itemsize,
            _likely_ports(),
            ANCHOR_DATA_PKTS,
            cap,
        )

    def feed(self, table: np.ndarray) -> None:
        from resetlens.tcp.tracker import RstSnapshot, take_rows

        base = self.base
        if table.dtype != PACKET_DTYPE:
            table = table.astype(PACKET_DTYPE)
        table = np.ascontiguousarray(table)
        n = len(table)
        cid = np.empty(n, dtype=np.int32)
        ordn = np.empty(n, dtype=np.int32)
        anchor = np.empty(n, dtype=np.bool_)
        snaps = self.engine.feed(table, PACKET_DTYPE.itemsize, cid, ordn, anchor)
        rst_rows = take_rows(table, np.array([s[0] for s in snaps], dtype=np.int64)) if snaps else table[:0]
        for k, (_row, idx, ordinal, sst, rst, snext, rnext, rack, rwin, wscaled, prev_ts, hist) in enumerate(
            snaps
        ):
            base.snapshots.append(
                RstSnapshot(
                    conn_idx=idx,
                    row=rst_rows[k],  # a row of a copy: never pins the chunk
                    ordinal=ordinal,
                    sender_state=sst,
                    receiver_state=rst,
                    sender_next_seq=snext,
                    receiver_next_seq=rnext,
                    receiver_ack=rack,
                    receiver_window=rwin,
                    window_scaled=wscaled,
                    prev_ts=prev_ts,
                    history_before=hist,
                )
            )
        base.pending.append((table, cid, ordn))
        base.pending_rows += n
        base._add_anchors(table, np.flatnonzero(anchor))
        if base.pending_rows >= base.compact_at:
            base._compact()

    def conn_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per connection idx: packets so far, ordinal of the first RST (-1 none), ended."""
        total, first_rst, dead = self.engine.conn_arrays()
        return (
            np.frombuffer(total, dtype=np.int64),
            np.frombuffer(first_rst, dtype=np.int64),
            np.frombuffer(dead, dtype=np.uint8).astype(bool),
        )

    def finish(self) -> ConnectionTable:
        """End every live connection; the connections in creation order. Resolves each RST snapshot's
        sender role (the connection's roles may have flipped after the RST)."""
        raw, history, sent = self.engine.finish()
        for snap, by_orig in zip(self.base.snapshots, sent, strict=True):
            snap.sent_by_orig = bool(by_orig)
        rows = np.frombuffer(raw, dtype=CONNECTION_DTYPE)  # a bytearray: writable, as the table expects
        return ConnectionTable([self.base.vantage], rows, history)


__all__ = ["AVAILABLE", "FastTracker"]
