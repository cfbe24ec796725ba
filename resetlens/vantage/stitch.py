"""Hop stitching: a proxy's front (client) connection paired with the back (upstream) connection it opened.

A proxy opens (or takes from its pool) an upstream connection right after a client's request
arrives, and closes one leg because of what happened on the other: nginx answers an upstream RST
with a 502 and a FIN to the client, and a client abort with a FIN upstream. Pairing is by time and
request bytes: among the back connections not paired yet that start while the front one is open
(within MAX_OPEN_DELAY of its start), the one whose start is nearest and whose request size is
closest to the client's (a proxy adds or rewrites a few headers, it does not change the size much).
One-to-one, greedy in time order. Proxy addresses come from the host roles. (Log lines tie legs
too: resetlens.evidence.correlate matches the proxy's access-log client port and upstream.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from resetlens.model import Analysis, Connection, Host
from resetlens.tcp.conntable import ConnectionTable

# A back connection opened more than this after its front connection started is not its pair.
MAX_OPEN_DELAY = 2.0
# Seconds of start delay one unit of relative request-size difference is worth in the pairing score.
BYTES_WEIGHT = 0.2


@dataclass
class Leg:
    front: Connection  # client -> proxy
    back: Connection  # proxy -> upstream
    proxy: str  # proxy host name
    delay: float  # seconds from the front connection's start to the back one's


def _best_view(conns: list[Connection], vantages: set[str]) -> list[Connection]:
    """One row per connection: the proxy's own capture when it has one, else the first vantage's."""
    chosen: dict[tuple, Connection] = {}
    for c in sorted(conns, key=lambda c: (c.vantage not in vantages, c.vantage)):
        key = (c.orig_h, c.orig_p, c.resp_h, c.resp_p, round(c.ts, 0))
        chosen.setdefault(key, c)
    return list(chosen.values())


def _with_address(conns: Sequence[Connection], side: str, addrs: set[str]) -> list[Connection]:
    """The connections whose originator ("orig") or responder ("resp") address is one of addrs."""
    if isinstance(conns, ConnectionTable):  # read the address column; build objects only for the hits
        hits = [i for i, a in enumerate(conns.text(side)) if a in addrs]
        return [conns[i] for i in hits]
    return [c for c in conns if getattr(c, f"{side}_h") in addrs]


def stitch(analysis: Analysis, by_vantage: dict[str, Host | None]) -> list[Leg]:
    legs: list[Leg] = []
    for proxy in (h for h in analysis.hosts if h.role == "proxy"):
        addrs = set(proxy.addresses)
        own = {v for v, h in by_vantage.items() if h is proxy}
        fronts = _best_view(_with_address(analysis.connections, "resp", addrs), own)
        backs = _best_view(_with_address(analysis.connections, "orig", addrs), own)
        backs.sort(key=lambda c: c.ts)
        used: set[int] = set()
        for f in sorted(fronts, key=lambda c: c.ts):
            end = min(f.ts + (f.duration or 0.0), f.ts + MAX_OPEN_DELAY)
            cands = [(i, b) for i, b in enumerate(backs) if i not in used and f.ts <= b.ts <= end]
            if not cands:
                continue
            i, b = min(cands, key=lambda ib: (ib[1].ts - f.ts) + BYTES_WEIGHT * _size_gap(f, ib[1]))
            used.add(i)
            legs.append(Leg(f, b, proxy.name, b.ts - f.ts))
    return legs


def _size_gap(front: Connection, back: Connection) -> float:
    """Relative difference of the request sizes the client sent and the proxy forwarded (0 = equal)."""
    a, b = front.orig_bytes or 0, back.orig_bytes or 0
    return abs(a - b) / max(a, b, 1)


def describe(c: Connection) -> str:
    return f"{c.orig_h}:{c.orig_p} > {c.resp_h}:{c.resp_p} ({c.conn_state} '{c.history}', at {c.vantage})"
