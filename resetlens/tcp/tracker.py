"""Stream packet-table chunks of one capture through the Zeek connection logic.

Memory grows with live connections and reset-relevant flows, not with packets: each chunk's rows are
kept only as a bounded window per connection (its first HEAD_PKTS packets and the TAIL_PKTS before its
first RST, then what follows the RST), and compaction drops the rows of connections that ended without a
RST. The per-packet work is done by the C engine (`_czeek.c` behind fast.py) whenever it was built, else
by its readable reference (conn.py, pure Python); both give identical results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from resetlens.capture.table import OPT_WSCALE, PACKET_DTYPE, RST, SYN, flow_key, halves_to_addr
from resetlens.model import Connection
from resetlens.tcp.conn import Conn, Endpoint, is_reuse, process_packet, wants_flip
from resetlens.tcp.conntable import ConnectionTable

HEAD_PKTS = 6  # packets kept from the start of every connection (handshake)
TAIL_PKTS = 48  # packets kept before a connection's first RST
AFTER_RST_PKTS = 4096  # packets kept after a connection's first RST
MAX_ANCHORS = 100_000  # bound on the clock-alignment sample
ANCHOR_DATA_PKTS = 2  # data segments per direction that count as anchors
COMPACT_ROWS = 100_000  # compact the retained rows when this many are pending
# A packet-table row as opaque bytes: numpy gathers and concatenates these ~40x faster than rows of the
# structured dtype (which it copies field by field).
RAW_ROW = np.dtype((np.void, PACKET_DTYPE.itemsize))


def take_rows(rows: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """rows[idx] (a copy), moved as raw bytes."""
    return rows.view(RAW_ROW).take(idx).view(PACKET_DTYPE)


def concat_rows(parts: list[np.ndarray]) -> np.ndarray:
    """np.concatenate of packet-table arrays, moved as raw bytes."""
    if not parts:
        return np.zeros(0, dtype=PACKET_DTYPE)
    return np.concatenate([p.view(RAW_ROW) for p in parts]).view(PACKET_DTYPE)


def compiled_available() -> bool:
    """True when the C engine was built and RESETLENS_PURE_PYTHON is not set."""
    from resetlens.tcp import fast

    return fast.AVAILABLE


def _compiled_engine(tracker: VantageTracker, cap: int | None = None) -> Any:
    from resetlens.tcp import fast

    if not fast.AVAILABLE:
        raise RuntimeError("the C connection engine (resetlens.tcp._czeek) is not built or is switched off")
    return fast.FastTracker(tracker) if cap is None else fast.FastTracker(tracker, cap)


@dataclass
class RstSnapshot:
    """The receiver's and sender's TCP state just before a RST segment (filled in the packet loop)."""

    conn_idx: int  # the connection's creation index (uid number - 1)
    row: np.void  # the RST's packet-table row
    ordinal: int  # index of the RST among its connection's packets
    sender_state: int  # Zeek endpoint state before the RST
    receiver_state: int
    sender_next_seq: int | None  # one past the highest sequence the sender had sent (absolute)
    receiver_next_seq: int | None  # one past the highest sequence the receiver had sent (absolute)
    receiver_ack: int | None  # ack field of the receiver's last ACK (absolute)
    receiver_window: int | None  # window field of the receiver's last packet (unscaled)
    window_scaled: bool  # both SYNs offered window scaling (scale factor not in the table)
    prev_ts: float | None  # time of the connection's previous packet
    history_before: str
    sent_by_orig: bool = False  # the sender is the connection's originator (resolved when it ends)


@dataclass
class TrackerOutput:
    connections: ConnectionTable
    snapshots: list[RstSnapshot]
    flows: dict[str, np.ndarray]
    anchors: np.ndarray
    packets: int = 0


class VantageTracker:
    """Feed chunks in capture order; `finish()` returns connections, RST snapshots, flows, anchors."""

    def __init__(self, vantage: str, compiled: bool | None = None, slots: int | None = None) -> None:
        """compiled: None uses the C engine when it is available, True requires it, False uses conn.py;
        slots: the C engine's initial connection slots (tests shrink it to exercise growth)."""
        self.vantage = vantage
        if compiled is None:
            compiled = compiled_available()
        self.compiled = compiled
        self.engine: Any = _compiled_engine(self, slots) if compiled else None
        self.live: dict[tuple, Conn] = {}
        self.objs: list[Conn | None] = []  # by conn idx, None once finalised
        self.final_n: list[int] = []  # packets of finalised connections
        self.first_rst: list[int] = []  # ordinal of the connection's first RST, -1 none
        self.rows_of: list[Connection | None] = []  # finalised Connection rows by idx
        self.snapshots: list[RstSnapshot] = []
        self.snap_sender: list[Endpoint] = []  # the sender endpoint of each snapshot (roles may flip later)
        self.pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.pending_rows = 0
        self.compact_at = COMPACT_ROWS
        self.anchors: list[np.ndarray] = []
        self.anchor_rows = 0
        self.anchor_stride = 1
        self.packets = 0

    # -- streaming ---------------------------------------------------------------------------------
    def feed(self, table: np.ndarray) -> None:
        n = len(table)
        if n == 0:
            return
        self.packets += n
        if self.engine is not None:
            self.engine.feed(table)
            return
        cid = np.empty(n, dtype=np.int32)
        ordn = np.empty(n, dtype=np.int32)
        anchor = np.zeros(n, dtype=bool)
        ukeys, inv, first = _keys(table)
        keys = [ukeys[j] for j in inv.tolist()]
        col = {
            name: table[name].tolist()
            for name in (
                "ts",
                "frame",
                "flags",
                "seq",
                "ack",
                "payload_len",
                "captured_len",
                "window",
                "opts",
            )
        }
        ts_l, fr_l = col["ts"], col["frame"]
        fl_l, sq_l, ak_l = col["flags"], col["seq"], col["ack"]
        pl_l, cl_l, wn_l, op_l = col["payload_len"], col["captured_len"], col["window"], col["opts"]
        first_l = first.tolist()
        live = self.live
        for i in range(n):
            t = ts_l[i]
            flags = fl_l[i]
            seq = sq_l[i]
            key = keys[i]
            c = live.get(key)
            if c is not None and (
                ((t >= c.next_timer or t - c.last_time >= c.inactivity) and c.expired_by(t))
                or (flags & SYN and is_reuse(c, flags, seq))
            ):
                self._finalise(c)
                c = None
            src_first = first_l[i]
            if c is None:
                a, b = (key[0], key[1]) if src_first else (key[1], key[0])
                c = self._new(key, a, b, t, fr_l[i])
                if wants_flip(flags, a[2], b[2]):
                    c.flip_roles()
                live[key] = c
            is_orig = src_first == c.orig_first
            ep = c.orig if is_orig else c.resp
            plen = pl_l[i]
            if flags & (SYN | RST):
                if flags & SYN:
                    ep.wscale = bool(op_l[i] & OPT_WSCALE)
                    anchor[i] = True
                if flags & RST:
                    self._snapshot(c, ep, c.resp if is_orig else c.orig, table[i])
            elif plen and ep.data_pkts < ANCHOR_DATA_PKTS:
                anchor[i] = True
            process_packet(c, is_orig, t, flags, seq, ak_l[i], plen, cl_l[i], wn_l[i])
            cid[i] = c.idx
            ordn[i] = c.npkts
            c.npkts += 1
            c.last_frame = fr_l[i]
            c.prev_ts = t
        self._sweep(ts_l[-1])
        self.pending.append((table, cid, ordn))
        self.pending_rows += n
        self._add_anchors(table, np.flatnonzero(anchor))
        if self.pending_rows >= self.compact_at:
            self._compact()

    def _sweep(self, now: float) -> None:
        """Remove the connections Zeek's timers would have removed by `now` (keeps memory bounded)."""
        done = [
            c
            for c in self.live.values()
            if (now >= c.next_timer or now - c.last_time >= c.inactivity) and c.expired_by(now)
        ]
        for c in done:
            self._finalise(c)

    def _new(self, key: tuple, orig: tuple, resp: tuple, t: float, frame: int) -> Conn:
        c = Conn(len(self.objs), key, orig, resp, t, frame)
        self.objs.append(c)
        self.final_n.append(0)
        self.first_rst.append(-1)
        self.rows_of.append(None)
        return c

    def _snapshot(self, c: Conn, ep: Endpoint, peer: Endpoint, row: np.void) -> None:
        if self.first_rst[c.idx] < 0:
            self.first_rst[c.idx] = c.npkts
        c.rst_count += 1
        self.snap_sender.append(ep)
        self.snapshots.append(
            RstSnapshot(
                conn_idx=c.idx,
                row=row.copy(),
                ordinal=c.npkts,
                sender_state=ep.state,
                receiver_state=peer.state,
                sender_next_seq=ep.last_seq if ep.state != 0 else None,
                receiver_next_seq=peer.last_seq if peer.state != 0 else None,
                receiver_ack=peer.ack_sent if peer.ack_sent >= 0 else None,
                receiver_window=peer.win_sent if peer.win_sent >= 0 else None,
                window_scaled=ep.wscale and peer.wscale,
                prev_ts=c.prev_ts if c.npkts else None,
                history_before=c.history_str(),
            )
        )

    def _finalise(self, c: Conn) -> None:
        self.rows_of[c.idx] = self._row(c)
        self.final_n[c.idx] = c.npkts
        self.objs[c.idx] = None
        if self.live.get(c.key) is c:
            del self.live[c.key]

    def _row(self, c: Conn) -> Connection:
        o, r = c.orig_addr, c.resp_addr
        return Connection(
            vantage=self.vantage,
            ts=c.start_time,
            orig_h=halves_to_addr(o[0], o[1]),
            orig_p=o[2],
            resp_h=halves_to_addr(r[0], r[1]),
            resp_p=r[2],
            conn_state=c.conn_state(),
            history=c.history_str(),
            duration=c.last_time - c.start_time,
            orig_bytes=c.orig.size(c.resp),
            resp_bytes=c.resp.size(c.orig),
            uid=self.uid(c.idx),
            orig_pkts=c.orig.pkts,
            resp_pkts=c.resp.pkts,
            first_frame=c.first_frame,
            last_frame=c.last_frame,
        )

    def uid(self, idx: int) -> str:
        return f"C{idx + 1}@{self.vantage}"

    # -- bounded retention -------------------------------------------------------------------------
    def _add_anchors(self, table: np.ndarray, idx: np.ndarray) -> None:
        """Keep table[idx] (the chunk's anchor rows), thinned by the current stride; a copy, so the
        sample never pins a whole chunk."""
        rows = take_rows(table, idx[:: self.anchor_stride])
        self.anchors.append(rows)
        self.anchor_rows += len(rows)
        if self.anchor_rows > MAX_ANCHORS:
            merged = concat_rows(self.anchors)
            merged = take_rows(merged, np.arange(0, len(merged), 2))
            self.anchors = [merged]
            self.anchor_rows = len(merged)
            self.anchor_stride *= 2

    def _compact(self) -> None:
        if not self.pending:
            return
        total, fro, dead = self._conn_arrays()
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for rows, cid, ordn in self.pending:  # filter part by part: only kept rows are ever copied
            f = fro[cid]
            keep_from = np.where(f >= 0, f - TAIL_PKTS, total[cid] - TAIL_PKTS)
            keep = (ordn < HEAD_PKTS) | (ordn >= keep_from)
            keep &= ~(dead[cid] & (f < 0))
            keep &= (f < 0) | (ordn < f + AFTER_RST_PKTS)
            at = np.flatnonzero(keep)
            parts.append((take_rows(rows, at), cid[at], ordn[at]))
        kept = (
            concat_rows([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
        )
        self.pending = [kept]
        self.pending_rows = len(kept[0])
        self.compact_at = max(COMPACT_ROWS, 2 * self.pending_rows)

    def _conn_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per connection idx: packets so far, ordinal of the first RST (-1 none), ended."""
        if self.engine is not None:
            return self.engine.conn_arrays()
        total = np.array(
            [o.npkts if o is not None else n for o, n in zip(self.objs, self.final_n, strict=True)],
            dtype=np.int64,
        )
        fro = np.array(self.first_rst, dtype=np.int64)
        dead = np.array([o is None for o in self.objs], dtype=bool)
        return total, fro, dead

    # -- end -------------------------------------------------------------------------------------
    def finish(self) -> TrackerOutput:
        if self.engine is not None:
            return self._output(self.engine.finish())
        for c in list(self.live.values()):
            self._finalise(c)
        for snap, ep in zip(self.snapshots, self.snap_sender, strict=True):
            snap.sent_by_orig = ep.is_orig
        return self._output(ConnectionTable.from_connections(r for r in self.rows_of if r is not None))

    def _output(self, connections: ConnectionTable) -> TrackerOutput:
        self._compact()
        flows: dict[str, np.ndarray] = {}
        if self.pending:
            rows, cid, _ordn = self.pending[0]
            fro = self._conn_arrays()[1]
            sel = fro[cid] >= 0 if len(cid) else np.zeros(0, dtype=bool)
            at = np.flatnonzero(sel)
            at = at[np.argsort(cid[at], kind="stable")]
            rows, cid = take_rows(rows, at), cid[at]
            if len(cid):
                # One view per connection, sliced directly (np.split costs ~10 numpy calls per part).
                starts = [0, *(np.flatnonzero(np.diff(cid)) + 1).tolist()]
                ends = [*starts[1:], len(cid)]
                for start, end, idx in zip(starts, ends, cid[starts].tolist(), strict=True):
                    flows[self.uid(idx)] = rows[start:end]
        anchors = concat_rows(self.anchors)
        return TrackerOutput(
            connections=connections,
            snapshots=self.snapshots,
            flows=flows,
            anchors=anchors,
            packets=self.packets,
        )


__all__ = ["RstSnapshot", "TrackerOutput", "VantageTracker"]


def _keys(table: np.ndarray) -> tuple[list[tuple], np.ndarray, np.ndarray]:
    """The chunk's distinct exact 4-tuple keys ((hi, lo, port), lower endpoint first), each row's index
    into them, and per row whether src is the key's first endpoint."""
    sh, sl, sp = table["src_hi"], table["src_lo"], table["sport"]
    dh, dl, dp = table["dst_hi"], table["dst_lo"], table["dport"]
    first = (sh < dh) | ((sh == dh) & ((sl < dl) | ((sl == dl) & (sp <= dp))))
    h1, l1, p1 = np.where(first, sh, dh), np.where(first, sl, dl), np.where(first, sp, dp)
    h2, l2, p2 = np.where(first, dh, sh), np.where(first, dl, sl), np.where(first, dp, sp)
    fk = flow_key(table)
    _uniq, idx, inv = np.unique(fk, return_index=True, return_inverse=True)
    exact = (
        (h1 == h1[idx][inv]) & (l1 == l1[idx][inv]) & (p1 == p1[idx][inv])
        & (h2 == h2[idx][inv]) & (l2 == l2[idx][inv]) & (p2 == p2[idx][inv])
    )  # fmt: skip
    if not exact.all():  # a 64-bit hash collision inside this chunk: build every key exactly
        cols = zip(h1.tolist(), l1.tolist(), p1.tolist(), h2.tolist(), l2.tolist(), p2.tolist(), strict=True)
        all_keys = [((a, b, c), (d, e, f)) for a, b, c, d, e, f in cols]
        index: dict[tuple, int] = {}
        inv = np.array([index.setdefault(k, len(index)) for k in all_keys], dtype=np.int64)
        return list(index), inv, first
    ukeys = [
        ((a, b, c), (d, e, f))
        for a, b, c, d, e, f in zip(
            h1[idx].tolist(), l1[idx].tolist(), p1[idx].tolist(), h2[idx].tolist(), l2[idx].tolist(),
            p2[idx].tolist(), strict=True,
        )
    ]  # fmt: skip
    return ukeys, inv.astype(np.int64), first
