"""Hosts and their roles: from the manifest when given, otherwise inferred and said so.

Inference, per address over all captures: an address that only originates connections is a
client, one that only answers is a server, and one that answers on one leg while originating on
another at the same moment is a proxy. A capture's own host is the address present in (almost)
every connection it holds whose own packets leave with an initial TTL (never routed yet).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from resetlens.bundle import Bundle
from resetlens.model import Connection, Host

INITIAL_TTLS = (255, 128, 64, 60, 32, 30)  # common initial TTL / hop-limit values of real stacks
OWN_SHARE = 0.9  # an address in at least this share of a capture's connections may be its host's


@dataclass
class HostMap:
    hosts: list[Host]
    by_address: dict[str, Host] = field(default_factory=dict)
    by_vantage: dict[str, Host | None] = field(default_factory=dict)

    def host_of(self, address: str) -> Host | None:
        return self.by_address.get(_norm(address))

    def role_of(self, address: str) -> str:
        h = self.host_of(address)
        return h.role if h else "unknown"


def _norm(addr: str) -> str:
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return addr


def sender_role(host: Host | None) -> str:
    """A host's role as a reset sender (contract): firewalls and other boxes are middleboxes."""
    if host is None:
        return "unknown"
    if host.role in ("client", "proxy", "server"):
        return host.role
    return "middlebox"


def resolve_hosts(
    bundle: Bundle,
    connections: dict[str, list[Connection]],
    sent_ttls: dict[str, dict[str, dict[int, int]]],
) -> HostMap:
    """connections: per vantage; sent_ttls: per vantage, address -> {TTL: packets} it sent there."""
    hosts: list[Host] = [
        Host(h.name, h.role, [_norm(a) for a in h.addresses], "manifest") for h in bundle.hosts
    ]
    hmap = HostMap(hosts)
    for h in hosts:
        for a in h.addresses:
            hmap.by_address[a] = h
    inferred = _infer_roles(connections)
    for addr, (role, reason) in sorted(inferred.items()):
        if addr in hmap.by_address:
            continue
        h = Host(addr, role, [addr], "inferred", reason)
        hosts.append(h)
        hmap.by_address[addr] = h
    by_name = {h.name: h for h in hosts}
    for spec in bundle.captures:
        v = spec.vantage
        if spec.host and spec.host in by_name:
            hmap.by_vantage[v] = by_name[spec.host]
            continue
        own = _own_address(connections.get(v, []), sent_ttls.get(v, {}))
        hmap.by_vantage[v] = hmap.by_address.get(own) if own else None
    return hmap


def _infer_roles(connections: dict[str, list[Connection]]) -> dict[str, tuple[str, str]]:
    # Addresses in Connection rows come from the packet table and are canonical already: no parsing.
    answered: dict[str, list[tuple[float, float]]] = defaultdict(list)  # addr -> spans it answered
    originated: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for conns in connections.values():
        for c in conns:
            if c.history.startswith("^") or c.conn_state == "OTH":
                continue  # direction not known for midstream connections
            span = (c.ts, c.ts + (c.duration or 0.0))
            originated[c.orig_h].append(span)
            answered[c.resp_h].append(span)
    roles: dict[str, tuple[str, str]] = {}
    for addr in set(answered) | set(originated):
        a, o = answered.get(addr, []), originated.get(addr, [])
        if a and o:
            if _overlaps(a, o):
                roles[addr] = (
                    "proxy",
                    f"answers {len(a)} connection(s) while originating {len(o)} at the same time",
                )
            else:
                roles[addr] = ("other", "both originates and answers connections, never at the same time")
        elif a:
            roles[addr] = ("server", f"only answers connections ({len(a)})")
        else:
            roles[addr] = ("client", f"only originates connections ({len(o)})")
    return roles


def _overlaps(a: list[tuple[float, float]], o: list[tuple[float, float]]) -> bool:
    """Does any span of `o` intersect any span of `a`? (merge `a` into disjoint intervals, then search)"""
    sa = np.array(sorted(a))
    ends = np.maximum.accumulate(sa[:, 1])
    new = np.ones(len(sa), dtype=bool)
    new[1:] = sa[1:, 0] > ends[:-1]
    starts = sa[new, 0]
    stops = np.append(ends[np.flatnonzero(new)[1:] - 1], ends[-1])
    ov = np.array(o)
    idx = np.searchsorted(starts, ov[:, 1], side="right") - 1
    ok = idx >= 0
    return bool(np.any(stops[idx[ok]] >= ov[ok, 0]))


def _own_address(conns: list[Connection], ttls: dict[str, dict[int, int]]) -> str | None:
    if not conns:
        return None
    count: dict[str, int] = defaultdict(int)
    for c in conns:
        count[c.orig_h] += 1
        if c.resp_h != c.orig_h:
            count[c.resp_h] += 1
    candidates = [a for a, n in count.items() if n >= OWN_SHARE * len(conns)]
    local = [a for a in candidates if ttls.get(a) and all(t in INITIAL_TTLS for t in ttls[a])]
    if len(local) == 1:
        return local[0]
    return None
