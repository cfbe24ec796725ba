"""Hop stitching: a proxy's front (client) connection paired with the back (upstream) connection it opened.

A proxy opens (or takes from its pool) an upstream connection right after a client's request
arrives, and closes one leg because of what happened on the other: nginx answers an upstream RST
with a 502 and a FIN to the client, and a client abort with a FIN upstream. Pairing is by time:
the back connection that starts first after the front connection started, while it is open, and
not paired yet (one-to-one, greedy in time order). Proxy addresses come from the host roles.
"""

from __future__ import annotations

from dataclasses import dataclass

from resetlens.model import Analysis, Connection, Host

# A back connection opened more than this after its front connection started is not its pair.
MAX_OPEN_DELAY = 2.0


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


def stitch(analysis: Analysis, by_vantage: dict[str, Host | None]) -> list[Leg]:
    legs: list[Leg] = []
    for proxy in (h for h in analysis.hosts if h.role == "proxy"):
        addrs = set(proxy.addresses)
        own = {v for v, h in by_vantage.items() if h is proxy}
        fronts = _best_view([c for c in analysis.connections if c.resp_h in addrs], own)
        backs = _best_view([c for c in analysis.connections if c.orig_h in addrs], own)
        backs.sort(key=lambda c: c.ts)
        used: set[int] = set()
        for f in sorted(fronts, key=lambda c: c.ts):
            end = f.ts + (f.duration or 0.0)
            for i, b in enumerate(backs):
                if i in used or b.ts < f.ts:
                    continue
                if b.ts > min(end, f.ts + MAX_OPEN_DELAY):
                    break
                used.add(i)
                legs.append(Leg(f, b, proxy.name, b.ts - f.ts))
                break
    return legs


def describe(c: Connection) -> str:
    return f"{c.orig_h}:{c.orig_p} > {c.resp_h}:{c.resp_p} ({c.conn_state} '{c.history}', at {c.vantage})"
