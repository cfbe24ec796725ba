"""Tie log lines and host facts to the resets the packets show.

Matching, strongest first (the `match` of each model.LogLine says which one applied):
  4-tuple          the line names the connection (Go errors, HAProxy %bi:%bp %si:%sp, Envoy addresses,
                   nft LOG); checked against every sighting, since NAT rewrites addresses per vantage
  client-port      the line names the client's ip:port (HAProxy %ci:%cp, nginx $remote_port, Envoy)
  upstream+time    the upstream ip:port and the line's time (nginx error/access, HAProxy, Envoy)
  remote+time      an application's peer ip:port and time (connection refused)
  client+time      the client address without a port and the time (nginx error log)
  nginx-connection the nginx error line's *N equals a matched access line's $connection (same host)
  request-id       the same request id as a matched line of another source
  unit+port+time   a unit lifecycle event shortly before a reset on a port the unit's process listened on
  host+time        a lifecycle or kernel event on the host that sent or received the reset, shortly before
  port+time        a kernel SYN-flood line naming the reset's port
  time             a lifecycle/kernel event whose host is unknown, shortly before the reset (weak)
  nft-rule, host-counters, ss-socket   host snapshot facts (snapshots.py)

Each source's clock offset is estimated from its time-independent matches (4-tuple, client-port):
the median of (reset time - line time). It is applied to the source's times only when it is clearly
larger than the format's resolution. Lines that match no reset are returned as context.
"""

from __future__ import annotations

import bisect
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from resetlens import model
from resetlens.evidence import events
from resetlens.evidence.base import LogRecord, ParsedLog, parse_addr
from resetlens.evidence.snapshots import HostSnapshots, rule_matches_port

# Largest |reset time - line time| for a 4-tuple or client-port match (ports are reused later).
TUPLE_WINDOW = 600.0
# Slack added to time windows beyond the format's resolution and the request's duration, seconds.
SLACK = 0.5
# How long before a reset a lifecycle or kernel event may explain it, and how long after (clock skew).
LIFECYCLE_BEFORE = 30.0
LIFECYCLE_AFTER = 2.0
# A lifecycle event is attached to at most this many resets (the nearest ones).
LIFECYCLE_MAX_RESETS = 50
# Window for clock-offset pairs from upstream/peer endpoints (no 4-tuple): wide, the median sorts it out.
OFFSET_WINDOW = 120.0
# Endpoint-based pairs (distinct resets, agreeing within the resolution) needed before such an offset is applied.
OFFSET_MIN_WEAK = 3
# An estimated clock offset is applied when larger than this many resolutions (and than SKEW_MIN).
SKEW_RESOLUTIONS = 2.0
SKEW_MIN = 1.0
# Most context lines returned (the rest are counted in the sources' stats).
CONTEXT_LIMIT = 20000
# Events that explain resets on a host shortly after them.
HOST_TIMED = events.LIFECYCLE | {
    events.SYN_FLOOD,
    events.CONNTRACK_FULL,
    events.ORPHAN_SOCKETS,
    events.TCP_MEM_PRESSURE,
}


@dataclass
class CorrelationResult:
    by_reset: dict[str, list[model.LogLine]] = field(default_factory=dict)  # reset id -> correlated lines
    context: list[model.LogLine] = field(default_factory=list)  # lines that matched no reset
    sources: list[dict[str, Any]] = field(default_factory=list)  # per file: Analysis.log_sources rows
    warnings: list[str] = field(default_factory=list)


class _Bucket:
    """Resets sharing one key, in time order, for nearest-in-window lookups by bisection."""

    __slots__ = ("resets", "times")

    def __init__(self) -> None:
        self.resets: list[model.Reset] = []
        self.times: list[float] = []

    def add(self, r: model.Reset) -> None:
        if not self.resets or self.resets[-1] is not r:
            self.resets.append(r)

    def freeze(self) -> None:
        self.resets = list({id(r): r for r in self.resets}.values())
        self.resets.sort(key=lambda r: r.ts)
        self.times = [r.ts for r in self.resets]

    def nearest(self, ts: float | None, lo: float, hi: float) -> model.Reset | None:
        """The reset nearest to ts with lo <= reset.ts - ts <= hi (the first one when ts is None)."""
        if not self.resets:
            return None
        if ts is None:
            return self.resets[0]
        i = bisect.bisect_left(self.times, ts + lo)
        j = bisect.bisect_right(self.times, ts + hi)
        if i >= j:
            return None
        k = bisect.bisect_left(self.times, ts, i, j)
        best = [self.resets[x] for x in (k - 1, k) if i <= x < j]
        return min(best, key=lambda r: abs(r.ts - ts))


_EMPTY = _Bucket()


@dataclass
class _Index:
    """Resets by 4-tuple, endpoint, address and time."""

    resets: list[model.Reset]
    by_tuple: dict[tuple[str, int, str, int], _Bucket] = field(default_factory=lambda: defaultdict(_Bucket))
    by_endpoint: dict[tuple[str, int], _Bucket] = field(default_factory=lambda: defaultdict(_Bucket))
    by_addr: dict[str, _Bucket] = field(default_factory=lambda: defaultdict(_Bucket))
    times: list[float] = field(default_factory=list)
    ordered: list[model.Reset] = field(default_factory=list)

    @classmethod
    def build(cls, resets: list[model.Reset]) -> _Index:
        ix = cls(resets)
        for r in resets:
            tuples = {(r.src, r.sport, r.dst, r.dport)}
            for s in r.seen_at:
                if s.src and s.dst:
                    tuples.add((s.src, s.sport, s.dst, s.dport))
            endpoints, addrs = set(), set()
            for a, ap, b, bp in tuples:
                ix.by_tuple[(a, ap, b, bp)].add(r)
                ix.by_tuple[(b, bp, a, ap)].add(r)
                endpoints |= {(a, ap), (b, bp)}
                addrs |= {a, b}
            for e in endpoints:
                ix.by_endpoint[e].add(r)
            for a in addrs:
                ix.by_addr[a].add(r)
        for table in (ix.by_tuple, ix.by_endpoint, ix.by_addr):
            for bucket in table.values():
                bucket.freeze()
        ix.ordered = sorted(resets, key=lambda r: r.ts)
        ix.times = [r.ts for r in ix.ordered]
        return ix

    def between(self, lo: float, hi: float) -> list[model.Reset]:
        i = bisect.bisect_left(self.times, lo)
        j = bisect.bisect_right(self.times, hi)
        return self.ordered[i:j]


def _endpoint(
    fields: dict[str, Any], addr_key: str, port_key: str, joined_key: str
) -> tuple[str, int] | None:
    addr, port = fields.get(addr_key), fields.get(port_key)
    if isinstance(addr, str) and isinstance(port, int):
        return addr, port
    joined = fields.get(joined_key)
    return parse_addr(joined) if isinstance(joined, str) else None


def _duration(rec: LogRecord) -> float:
    """How long the request or stream lasted before the line was written, seconds (0 when unknown)."""
    f = rec.fields
    for key, scale in (("request_time", 1.0), ("Ta", 0.001), ("Tt", 0.001), ("duration", 0.001)):
        v = f.get(key)
        if isinstance(v, (int, float)) and v > 0:
            return float(v) * scale
    return 0.0


def _tuples(rec: LogRecord) -> list[tuple[str, int, str, int]]:
    out = [rec.tuple4] if rec.tuple4 else []
    for t in rec.fields.get("tuples", []) or []:
        if isinstance(t, (list, tuple)) and len(t) == 4 and tuple(t) not in out:
            out.append(tuple(t))  # type: ignore[arg-type]
    return out


def _strong(rec: LogRecord, ix: _Index) -> tuple[model.Reset, str] | None:
    """Time-independent matches: 4-tuple, then client ip:port."""
    for t in _tuples(rec):
        r = ix.by_tuple.get(t, _EMPTY).nearest(rec.ts, -TUPLE_WINDOW, TUPLE_WINDOW)
        if r:
            return r, "4-tuple"
    client = _endpoint(rec.fields, "client_addr", "client_port", "client")
    if (
        client is None
        and isinstance(rec.fields.get("remote_addr"), str)
        and isinstance(rec.fields.get("remote_port"), int)
    ):
        client = (rec.fields["remote_addr"], rec.fields["remote_port"])
    if client:
        r = ix.by_endpoint.get(client, _EMPTY).nearest(rec.ts, -TUPLE_WINDOW, TUPLE_WINDOW)
        if r:
            return r, "client-port"
    return None


def _timed(
    rec: LogRecord, ts: float, slack: float, resolution: float, ix: _Index
) -> tuple[model.Reset, str] | None:
    """Matches that need the line's time: upstream endpoint, application peer, client address.

    A line's time is truncated to its resolution and written at the end of the request, so the reset
    lies within [ts - duration - slack, ts + resolution + slack].
    """
    dur = _duration(rec)
    lo, hi = -dur - slack, resolution + slack
    ups = [_endpoint(rec.fields, "upstream_addr", "upstream_port", "upstream")]
    ups += [
        (t["ip"], t["port"]) for t in rec.fields.get("upstreams") or () if t.get("ip")
    ]  # every peer nginx tried
    for up in dict.fromkeys(u for u in ups if u):
        r = ix.by_endpoint.get(up, _EMPTY).nearest(ts, lo, hi)
        if r:
            return r, "upstream+time"
    remote = rec.fields.get("remote")
    if isinstance(remote, str) and rec.event.startswith("app_"):
        ep = parse_addr(remote)
        if ep:
            r = ix.by_endpoint.get(ep, _EMPTY).nearest(ts, lo, hi)
            if r:
                return r, "remote+time"
    for key in ("client", "client_addr", "remote_addr", "client_host"):
        addr = rec.fields.get(key)
        if isinstance(addr, str) and addr:
            addr = addr if parse_addr(addr) is None else parse_addr(addr)[0]  # type: ignore[index]
            r = ix.by_addr.get(addr, _EMPTY).nearest(ts, lo, hi)
            if r:
                return r, "client+time"
            break
    return None


def _endpoint_reset(rec: LogRecord, ts: float, lo: float, hi: float, ix: _Index) -> model.Reset | None:
    """The nearest reset on the line's upstream or peer ip:port (for clock-offset pairs only)."""
    for ep in (
        _endpoint(rec.fields, "upstream_addr", "upstream_port", "upstream"),
        parse_addr(rec.fields["remote"]) if isinstance(rec.fields.get("remote"), str) else None,
    ):
        if ep:
            r = ix.by_endpoint.get(ep, _EMPTY).nearest(ts, lo, hi)
            if r:
                return r
    return None


def _estimate_offset(pairs: list[float], resolution: float) -> dict[str, Any]:
    """Median of (reset - line) over strong pairs; applied only when clearly beyond the resolution."""
    if not pairs:
        return {
            "clock_offset": None,
            "clock_offset_pairs": 0,
            "clock_offset_applied": False,
            "clock_offset_spread": None,
        }
    med = statistics.median(pairs)
    spread = statistics.median(abs(p - med) for p in pairs) if len(pairs) > 1 else None
    applied = abs(med) > max(SKEW_RESOLUTIONS * resolution, SKEW_MIN)
    return {
        "clock_offset": round(med, 6),
        "clock_offset_pairs": len(pairs),
        "clock_offset_applied": applied,
        "clock_offset_spread": round(spread, 6) if spread is not None else None,
    }


def _line(rec: LogRecord, path: str, offset: float, how: str) -> model.LogLine:
    ts = rec.ts + offset if rec.ts is not None else None
    return model.LogLine(
        kind=rec.kind,
        path=path,
        line=rec.line,
        ts=ts,
        text=rec.text,
        host=rec.host,
        event=rec.event,
        fields=rec.fields,  # shared, not copied: many lines, read-only from here on
        match=how,
    )


class _Hosts:
    """Host name <-> addresses, from the manifest and the snapshots' own sockets."""

    def __init__(self, hosts: Iterable[model.Host] | None, snapshots: dict[str, HostSnapshots]) -> None:
        self.addrs: dict[str, set[str]] = defaultdict(set)
        for h in hosts or ():
            self.addrs[h.name] |= set(h.addresses)
        for name, hs in snapshots.items():
            if self.addrs.get(name):
                continue
            for snap in (hs.before, hs.after):
                for s in snap.sockets if snap else ():
                    if s.local not in ("*", "0.0.0.0", "::") and not s.local.startswith("127."):
                        self.addrs[name].add(s.local)

    def of(self, name: str | None) -> set[str]:
        return self.addrs.get(name, set()) if name else set()


def _involves(r: model.Reset, addrs: set[str]) -> bool:
    if r.src in addrs or r.dst in addrs:
        return True
    return any(s.src in addrs or s.dst in addrs for s in r.seen_at)


def _ports_of(r: model.Reset, addrs: set[str] | None = None) -> set[int]:
    """Ports of the reset's endpoints (those on `addrs` when given)."""
    out = set()
    for a, p in (
        [(r.src, r.sport), (r.dst, r.dport)]
        + [(s.src, s.sport) for s in r.seen_at]
        + [(s.dst, s.dport) for s in r.seen_at]
    ):
        if a and (addrs is None or a in addrs):
            out.add(p)
    return out


def correlate(
    resets: list[model.Reset],
    logs: list[ParsedLog],
    hosts: Iterable[model.Host] | None = None,
    snapshots: dict[str, HostSnapshots] | None = None,
    *,
    attach: bool = True,
    context_limit: int = CONTEXT_LIMIT,
) -> CorrelationResult:
    """Correlate parsed logs and host snapshots with resets. With attach, lines are also appended to reset.logs."""
    snapshots = snapshots or {}
    ix = _Index.build(resets)
    hostmap = _Hosts(hosts, snapshots)
    res = CorrelationResult(by_reset={r.id: [] for r in resets})
    seen: dict[str, set[tuple[str, int, str]]] = defaultdict(set)

    def put(r: model.Reset, line: model.LogLine) -> bool:
        key = (line.path, line.line, line.text[:80])
        if key in seen[r.id]:
            return False
        seen[r.id].add(key)
        res.by_reset[r.id].append(line)
        return True

    # unit -> ports its processes listened on, from journald PIDs and ss snapshots of the same host
    unit_ports: dict[tuple[str | None, str], set[int]] = defaultdict(set)
    for log in logs:
        for unit, pids in (log.meta.get("unit_pids") or {}).items():
            for name, hs in snapshots.items():
                for snap in (hs.before, hs.after):
                    for s in snap.sockets if snap else ():
                        if s.state == "LISTEN" and any(pid in pids for _, pid, _ in s.processes):
                            unit_ports[(name, unit)].add(s.lport)

    unmatched_total = 0
    context_cut = 0
    for log in logs:
        matched: dict[int, list[tuple[model.Reset, str]]] = {}
        pairs: list[float] = []
        strong: dict[int, tuple[model.Reset, str]] = {}
        weak: dict[
            str, float
        ] = {}  # reset id -> (reset - line) of its nearest line on an upstream/peer endpoint
        for i, rec in enumerate(log.records):
            got = _strong(rec, ix)
            if got:
                strong[i] = got
                if rec.ts is not None:
                    pairs.append(got[0].ts - rec.ts)
            elif rec.ts is not None and rec.event and rec.event != events.REQUEST:
                near = _endpoint_reset(rec, rec.ts, -OFFSET_WINDOW, OFFSET_WINDOW, ix)
                if near is not None and (near.id not in weak or abs(near.ts - rec.ts) < abs(weak[near.id])):
                    weak[near.id] = (
                        near.ts - rec.ts
                    )  # one pair per reset: many lines about one reset say little
        stats = log.stats()
        if pairs:
            stats.update(_estimate_offset(pairs, log.resolution), clock_offset_basis="4-tuple/client-port")
        else:
            est = _estimate_offset(list(weak.values()), log.resolution)
            agree = (est["clock_offset_spread"] or 0.0) <= max(SKEW_MIN, 2 * log.resolution)
            est["clock_offset_applied"] = (
                est["clock_offset_applied"] and len(weak) >= OFFSET_MIN_WEAK and agree
            )
            stats.update(est, clock_offset_basis="upstream/peer endpoint + nearest time" if weak else None)
        stats["resolution"] = log.resolution
        offset = stats["clock_offset"] if stats["clock_offset_applied"] else 0.0
        slack = SLACK + abs(stats["clock_offset_spread"] or 0.0)
        for i, rec in enumerate(log.records):
            if i in strong:
                matched[i] = [strong[i]]
                continue
            if rec.ts is None:
                continue
            ts = rec.ts + offset
            if rec.event in HOST_TIMED:
                found = _host_timed(rec, ts, ix, hostmap, unit_ports, log.host)
                if found:
                    matched[i] = found
                continue
            got = _timed(rec, ts, slack, log.resolution, ix)
            if got:
                matched[i] = [got]
        # joins: nginx *N <-> $connection on the same host, and request ids
        by_conn: dict[tuple[str | None, int], list[model.Reset]] = defaultdict(list)
        by_rid: dict[str, list[model.Reset]] = defaultdict(list)
        for i, hits in matched.items():
            rec = log.records[i]
            conn, rid = rec.fields.get("connection"), rec.fields.get("request_id")
            for r, _ in hits:
                if isinstance(conn, int) and rec.kind.startswith("nginx"):
                    by_conn[(rec.host, conn)].append(r)
                if isinstance(rid, str):
                    by_rid[rid].append(r)
        log.meta["_joins"] = (by_conn, by_rid)
        log.meta["_matched"] = matched
        log.meta["_offset"] = offset
        res.sources.append(stats)

    # cross-file joins (nginx error <-> access, request ids between sources)
    all_conn: dict[tuple[str | None, int], _Bucket] = defaultdict(_Bucket)
    all_rid: dict[str, _Bucket] = defaultdict(_Bucket)
    for log in logs:
        by_conn, by_rid = log.meta["_joins"]
        for k, v in by_conn.items():
            for r in v:
                all_conn[k].add(r)
        for k, v in by_rid.items():
            for r in v:
                all_rid[k].add(r)
    for table in (all_conn, all_rid):
        for bucket in table.values():
            bucket.freeze()
    for log, stats in zip(logs, res.sources, strict=True):
        matched = log.meta.pop("_matched")
        log.meta.pop("_joins")
        offset = log.meta.pop("_offset")
        for i, rec in enumerate(log.records):
            if i in matched:
                continue
            conn, rid = rec.fields.get("connection"), rec.fields.get("request_id")
            if isinstance(conn, int) and rec.kind.startswith("nginx") and (rec.host, conn) in all_conn:
                r = all_conn[(rec.host, conn)].nearest(rec.ts, -TUPLE_WINDOW, TUPLE_WINDOW)
                if r:
                    matched[i] = [(r, "nginx-connection")]
                    continue
            if isinstance(rid, str) and rid in all_rid:
                r = all_rid[rid].nearest(rec.ts, -TUPLE_WINDOW, TUPLE_WINDOW)
                if r:
                    matched[i] = [(r, "request-id")]
        n_matched = 0
        unmatched_requests = 0
        for i, rec in enumerate(log.records):
            hits = matched.get(i)
            if hits:
                n_matched += 1
                for r, how in hits:
                    put(r, _line(rec, log.path, offset, how))
                continue
            if rec.event in ("", events.REQUEST):
                unmatched_requests += 1
                continue
            unmatched_total += 1
            if len(res.context) < context_limit:
                res.context.append(_line(rec, log.path, offset, ""))
            else:
                context_cut += 1
        stats["matched"] = n_matched
        stats["unmatched_requests"] = unmatched_requests

    _snapshot_facts(resets, snapshots, hostmap, res, put, context_limit)
    if context_cut:
        res.warnings.append(
            f"{context_cut} unmatched log lines beyond the first {context_limit} were not kept as context"
        )
    for r in resets:
        res.by_reset[r.id].sort(key=lambda x: (x.ts is None, x.ts or 0.0))
        if attach:
            have = {(x.path, x.line, x.text[:80]) for x in r.logs}
            r.logs.extend(x for x in res.by_reset[r.id] if (x.path, x.line, x.text[:80]) not in have)
    return res


def _host_timed(
    rec: LogRecord,
    ts: float,
    ix: _Index,
    hostmap: _Hosts,
    unit_ports: dict[tuple[str | None, str], set[int]],
    manifest_host: str | None = None,
) -> list[tuple[model.Reset, str]]:
    """Resets shortly after a lifecycle/kernel event, on the event's host (and the unit's ports when known).

    The host is the line's own (_HOSTNAME, syslog header), else the manifest's host for the file.
    """
    cands = ix.between(ts - LIFECYCLE_AFTER, ts + LIFECYCLE_BEFORE)
    addrs = hostmap.of(rec.host) or hostmap.of(manifest_host)
    how = "time"
    if addrs:
        cands = [r for r in cands if _involves(r, addrs)]
        how = "host+time"
    unit = rec.fields.get("unit")
    ports = set()
    if isinstance(unit, str):
        for (h, u), p in unit_ports.items():
            if u == unit and (h in (rec.host, manifest_host) or h is None or rec.host is None):
                ports |= p
    if rec.event == events.SYN_FLOOD and isinstance(rec.fields.get("port"), int):
        ports = {rec.fields["port"]}
        how = "port+time"
    if ports:
        cands = [r for r in cands if _ports_of(r, addrs or None) & ports]
        if how != "port+time":
            how = "unit+port+time"
    cands.sort(key=lambda r: abs(r.ts - ts))
    return [(r, how) for r in cands[:LIFECYCLE_MAX_RESETS]]


def _snapshot_facts(
    resets: list[model.Reset],
    snapshots: dict[str, HostSnapshots],
    hostmap: _Hosts,
    res: CorrelationResult,
    put: Callable[[model.Reset, model.LogLine], bool],
    context_limit: int,
) -> None:
    """Host facts (reject rules, counters) and socket owners from ss, per host."""
    for name, hs in snapshots.items():
        addrs = hostmap.of(name)
        facts = hs.facts()
        matched = 0
        for fact in facts:
            path = fact.fields.get("path", "")
            line = model.LogLine(
                kind="host",
                path=path,
                line=fact.line,
                ts=None,
                text=fact.text,
                host=name,
                event=fact.event,
                fields=dict(fact.fields),
            )
            hits = []
            for r in resets:
                if addrs and not _involves(r, addrs):
                    continue
                if fact.event == events.NFT_REJECT_RULE:
                    if any(rule_matches_port(fact.fields, p) for p in _ports_of(r)):
                        hits.append((r, "nft-rule"))
                elif addrs:
                    hits.append((r, "host-counters"))
            for r, how in hits:
                line_r = model.LogLine(**{**line.__dict__, "match": how, "fields": dict(line.fields)})
                put(r, line_r)
            if hits:
                matched += 1
            elif len(res.context) < context_limit:
                res.context.append(line)
        owners = 0
        for r in resets:
            for a, p, b, bp in (
                {(r.src, r.sport, r.dst, r.dport), (r.dst, r.dport, r.src, r.sport)}
                | {(s.src, s.sport, s.dst, s.dport) for s in r.seen_at if s.src}
                | {(s.dst, s.dport, s.src, s.sport) for s in r.seen_at if s.src}
            ):
                if addrs and a not in addrs:
                    continue
                sock = hs.owner(a, p, b, bp)
                if sock is None or (not addrs and sock.local != a):
                    continue
                procs = ", ".join(f"{n} pid {pid}" for n, pid, _ in sock.processes) or "no process shown"
                text = f"{a}:{p} socket {sock.state} {sock.local}:{sock.lport} <-> {sock.peer}:{sock.pport}: {procs}"
                fields = {
                    "addr": a,
                    "port": p,
                    "state": sock.state,
                    "processes": [list(x) for x in sock.processes],
                }
                path = (hs.after or hs.before).files.get("ss", "") if (hs.after or hs.before) else ""
                if put(
                    r,
                    model.LogLine(
                        kind="host",
                        path=path,
                        line=1,
                        ts=None,
                        text=text,
                        host=name,
                        event=events.SOCKET_OWNER,
                        fields=fields,
                        match="ss-socket",
                    ),
                ):
                    owners += 1
        res.sources.append(
            {
                "kind": "host",
                "path": f"snapshots/{name}",
                "host": name,
                "lines": len(facts),
                "parsed": len(facts),
                "unparsed": 0,
                "matched": matched,
                "socket_owners": owners,
                "clock_offset": None,
                "clock_offset_pairs": 0,
                "clock_offset_applied": False,
                "warnings": list(hs.warnings),
                "summary": hs.summary(),
            }
        )
