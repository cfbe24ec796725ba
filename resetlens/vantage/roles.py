"""Hosts and their roles: from the manifest when given, otherwise inferred and said so.

Inference, per address over all captures: an address that only originates connections is a
client, one that only answers is a server, and one that answers on one leg while originating on
another at the same moment is a proxy. A capture's own host is the address present in (almost)
every connection it holds whose own packets leave with an initial TTL (never routed yet).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from resetlens.bundle import Bundle
from resetlens.model import Host
from resetlens.tcp.conntable import STATE_INDEX, ConnectionTable

INITIAL_TTLS = (255, 128, 64, 60, 32, 30)  # common initial TTL / hop-limit values of real stacks
OWN_SHARE = 0.9  # an address in at least this share of a capture's connections may be its host's


@dataclass
class HostMap:
    hosts: list[Host]
    by_address: dict[str, Host] = field(default_factory=dict)
    by_vantage: dict[str, Host | None] = field(default_factory=dict)

    def host_of(self, address: str) -> Host | None:
        # Keys are canonical texts, and a packet's address text is one already: parse only on a miss.
        host = self.by_address.get(address)
        return host if host is not None else self.by_address.get(_norm(address))

    def role_of(self, address: str) -> str:
        h = self.host_of(address)
        return h.role if h else "unknown"


@functools.lru_cache(maxsize=65536)
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
    connections: Mapping[str, ConnectionTable],
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
    inferred = _infer_roles(ConnectionTable.concat(connections.values()))
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
        own = _own_address(connections.get(v, ConnectionTable.empty()), sent_ttls.get(v, {}))
        hmap.by_vantage[v] = hmap.by_address.get(own) if own else None
    return hmap


def _infer_roles(table: ConnectionTable) -> dict[str, tuple[str, str]]:
    # Addresses in the rows come from the packet table and are canonical already: no parsing.
    if not len(table):
        return {}
    r = table.rows
    # direction not known for midstream connections
    known = (r["state"] != STATE_INDEX["OTH"]) & ~np.array([h[:1] == "^" for h in table.history], dtype=bool)
    orig, resp, texts = table.address_ids()
    orig, resp = orig[known], resp[known]
    start = r["ts"][known]
    stop = start + np.nan_to_num(r["duration"][known])
    n_orig = np.bincount(orig, minlength=len(texts))
    n_resp = np.bincount(resp, minlength=len(texts))
    both = np.flatnonzero((n_orig > 0) & (n_resp > 0))
    spans_o = _spans_by_address(orig, start, stop, both)
    spans_a = _spans_by_address(resp, start, stop, both)
    roles: dict[str, tuple[str, str]] = {}
    for i in np.flatnonzero((n_orig > 0) | (n_resp > 0)).tolist():
        addr, a, o = texts[i], int(n_resp[i]), int(n_orig[i])
        if a and o:
            if _overlaps(spans_a[i], spans_o[i]):
                roles[addr] = ("proxy", f"answers {a} connection(s) while originating {o} at the same time")
            else:
                roles[addr] = ("other", "both originates and answers connections, never at the same time")
        elif a:
            roles[addr] = ("server", f"only answers connections ({a})")
        else:
            roles[addr] = ("client", f"only originates connections ({o})")
    return roles


def _spans_by_address(
    ids: np.ndarray, start: np.ndarray, stop: np.ndarray, wanted: np.ndarray
) -> dict[int, np.ndarray]:
    """For each wanted address id, its (start, stop) spans as an [n, 2] array (one sort, then slices)."""
    sel = np.isin(ids, wanted)
    ids, start, stop = ids[sel], start[sel], stop[sel]
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    spans = np.stack([start[order], stop[order]], axis=1)
    keys, first = np.unique(ids, return_index=True)
    bounds = np.append(first, len(ids))
    return {int(k): spans[bounds[j] : bounds[j + 1]] for j, k in enumerate(keys.tolist())}


def _overlaps(a: np.ndarray, o: np.ndarray) -> bool:
    """Does any span of `o` intersect any span of `a`? (merge `a` into disjoint intervals, then search)"""
    sa = a[np.lexsort((a[:, 1], a[:, 0]))]
    ends = np.maximum.accumulate(sa[:, 1])
    new = np.ones(len(sa), dtype=bool)
    new[1:] = sa[1:, 0] > ends[:-1]
    starts = sa[new, 0]
    stops = np.append(ends[np.flatnonzero(new)[1:] - 1], ends[-1])
    idx = np.searchsorted(starts, o[:, 1], side="right") - 1
    ok = idx >= 0
    return bool(np.any(stops[idx[ok]] >= o[ok, 0]))


def _own_address(table: ConnectionTable, ttls: dict[str, dict[int, int]]) -> str | None:
    if not len(table):
        return None
    orig, resp, texts = table.address_ids()
    count = np.bincount(orig, minlength=len(texts)) + np.bincount(resp[resp != orig], minlength=len(texts))
    candidates = [texts[i] for i in np.flatnonzero(count >= OWN_SHARE * len(table)).tolist()]
    local = [a for a in candidates if ttls.get(a) and all(t in INITIAL_TTLS for t in ttls[a])]
    if len(local) == 1:
        return local[0]
    return None
