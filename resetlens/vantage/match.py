"""One event per physical RST: copies of the same RST across captures become one reset.

Copies are matched on what routers and NAT leave alone (SEQ, ACK, flags, IPv4 ID, payload
length) within a time tolerance that covers the clock error bars, not on addresses: behind a NAT
the same RST carries other addresses. On one capture, two copies of one key a few microseconds
apart are the in and out copies of a `-i any` capture on a router, not two resets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from resetlens.vantage.clock import match_key

# Copies of one RST at different captures lie within this of each other after alignment (plus errors).
BASE_TOLERANCE = 0.5
# Two copies on one capture closer than this are the same packet seen on two interfaces.
SAME_CAPTURE_DOUBLE = 0.005


@dataclass
class Copy:
    """A RST row at one capture (index into that capture's RST table)."""

    vantage: str
    row: int
    ts: float  # reference clock
    doubles: list[int] = field(default_factory=list)  # further rows of the same packet on this capture


@dataclass
class RstEvent:
    copies: list[Copy]  # first copy first

    @property
    def ts(self) -> float:
        return self.copies[0].ts


def _is_double(table: np.ndarray, a: int, b: int) -> bool:
    """Two rows of one capture are one packet seen twice: on two interfaces / directions (`-i any`), or
    as adjacent frames (a capture that duplicates every packet). Two real RSTs with the same header
    (a kernel answering two segments) have other packets between them and no interface difference."""
    ra, rb = table[a], table[b]
    da, db = int(ra["direction"]), int(rb["direction"])
    if da and db and da != db:
        return True
    ia, ib = int(ra["ifindex"]), int(rb["ifindex"])
    if ia and ib and ia != ib:
        return True
    return abs(int(rb["frame"]) - int(ra["frame"])) == 1


def group_resets(rst: dict[str, np.ndarray], errors: dict[str, float | None]) -> list[RstEvent]:
    """rst: per vantage, RST rows with `ts` already on the reference clock."""
    items: list[tuple[float, str, int, int]] = []  # (ts, vantage, row, key)
    keys: dict[str, np.ndarray] = {}
    for v, table in rst.items():
        keys[v] = match_key(table) if len(table) else np.zeros(0, dtype=np.uint64)
        for i in range(len(table)):
            items.append((float(table["ts"][i]), v, i, int(keys[v][i])))
    items.sort(key=lambda x: (x[0], x[1], x[2]))
    open_by_key: dict[int, list[RstEvent]] = {}
    events: list[RstEvent] = []
    for ts, v, row, key in items:
        tol = BASE_TOLERANCE + (errors.get(v) or 0.0)
        placed = False
        for ev in reversed(open_by_key.get(key, [])):
            if ts - ev.ts > tol + max((errors.get(c.vantage) or 0.0) for c in ev.copies):
                break  # older events are even further away
            same = next((c for c in ev.copies if c.vantage == v), None)
            if same is None:
                ev.copies.append(Copy(v, row, ts))
                placed = True
            elif ts - same.ts <= SAME_CAPTURE_DOUBLE and _is_double(rst[v], same.row, row):
                same.doubles.append(row)
                placed = True
            if placed:
                break
        if not placed:
            ev = RstEvent([Copy(v, row, ts)])
            events.append(ev)
            open_by_key.setdefault(key, []).append(ev)
    for ev in events:
        ev.copies.sort(key=lambda c: c.ts)
    events.sort(key=lambda e: e.ts)
    return events
