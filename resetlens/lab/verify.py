"""The lab checks its own truth against the wire, reading captures with tshark (not resetlens' reader).

Sightings of RSTs at every vantage are grouped into physical resets: the same (addresses, ports,
seq, ack, flags) at several vantages, and both copies of an `-i any` capture (one per interface),
are one reset. Each reset is labelled by the first scenario expectation that matches it; a reset no
expectation claims, an expectation met too few or too many times, or a sighting pattern that
contradicts the label (an "injected" reset present at the claimed sender's own vantage, a kernel
reset missing from it) is a verification problem.
"""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from resetlens.lab.capture import VANTAGES, capture_path
from resetlens.lab.procs import LabError
from resetlens.lab.topology import HOSTS, host_addresses, host_of

TSHARK_FIELDS = ("frame.number", "frame.time_epoch", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport",
                 "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "ip.ttl", "ipv6.hlim", "sll.ifindex",
                 "ip.id")  # fmt: skip
RST_FILTER = "tcp.flags.reset == 1 && !icmp && !icmpv6"
FLAG_LETTERS = (
    (0x01, "F"),
    (0x02, "S"),
    (0x04, "R"),
    (0x08, "P"),
    (0x10, "A"),
    (0x20, "U"),
    (0x40, "E"),
    (0x80, "C"),
)
# The vantage closest to each host: where a reset that host really sent must be seen.
OWN_VANTAGE = {
    "client": ("client",),
    "firewall": ("firewall",),
    "proxy": ("proxy-front", "proxy-back"),
    "server": ("server",),
}
SERVICE_PORT_MAX = 10000  # lab service ports are below, ephemeral client ports above


def flag_str(bits: int) -> str:
    return "".join(ch for bit, ch in FLAG_LETTERS if bits & bit)


@dataclass
class Sighting:
    vantage: str
    frame: int
    ts: float
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: str
    ttl: int
    ifindex: int
    ip_id: int | None


@dataclass
class Reset:
    sightings: list[Sighting]
    label: Expect | None = None

    @property
    def first(self) -> Sighting:
        return min(self.sightings, key=lambda s: s.ts)

    def seen_by(self, vantages: tuple[str, ...]) -> bool:
        return any(s.vantage in vantages for s in self.sightings)

    @property
    def ephemeral_port(self) -> int:
        f = self.first
        return f.sport if f.sport >= SERVICE_PORT_MAX else f.dport


@dataclass
class Ctx:
    """What the scenario did: client flows by tag, time marks, NAT mapping (outside -> inside address)."""

    flows: list[dict] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    nat: dict[str, str] = field(default_factory=dict)
    logs: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # kind -> (bundle path, lines)

    def flow_ports(self, tag: str) -> set[int]:
        return {f["sport"] for f in self.flows if f["tag"] == tag}


Match = Callable[[Reset, Ctx], bool]


@dataclass
class Expect:
    """One kind of reset the scenario causes, with its truth label."""

    name: str
    role: str
    host: str | None
    kind: str
    cause: str
    match: Match
    min: int = 1
    max: int | None = None
    note: str = ""
    logs: tuple[tuple[str, str], ...] = ()  # (log kind, regex; "{port}" = the reset's ephemeral port)


# --- match helpers --------------------------------------------------------------------------


def on_flow(tag: str, to: str | None = None) -> Match:
    """The reset belongs to a client flow with this tag; `to` = 'client' or 'peer' picks the direction."""

    def m(r: Reset, ctx: Ctx) -> bool:
        f = r.first
        ports = ctx.flow_ports(tag)
        towards_client = f.dport in ports and host_of(ctx.nat.get(f.dst, f.dst)) == "client"
        from_client = f.sport in ports and host_of(ctx.nat.get(f.src, f.src)) == "client"
        if to == "client":
            return towards_client
        if to == "peer":
            return from_client
        return towards_client or from_client

    return m


def leg(src_host: str, dst_host: str, port: int | None = None) -> Match:
    """The reset's addresses (as first seen) are src_host -> dst_host, optionally on a service port."""

    def m(r: Reset, ctx: Ctx) -> bool:
        f = r.first
        ok = f.src in host_addresses(src_host) and f.dst in host_addresses(dst_host)
        return ok and (port is None or port in (f.sport, f.dport))

    return m


def both(*matches: Match) -> Match:
    return lambda r, ctx: all(m(r, ctx) for m in matches)


def in_log(kind: str, pattern: str) -> Match:
    """A line of that log matches `pattern` with "{port}" set to the reset's ephemeral port."""

    def m(r: Reset, ctx: Ctx) -> bool:
        rx = re.compile(pattern.replace("{port}", str(r.ephemeral_port)))
        return any(rx.search(line) for line in ctx.logs.get(kind, ("", []))[1])

    return m


def after(mark: str) -> Match:
    return lambda r, ctx: r.first.ts >= ctx.marks.get(mark, float("inf"))


# --- reading ---------------------------------------------------------------------------------


def read_sightings(bundle: Path) -> list[Sighting]:
    out: list[Sighting] = []
    for v in VANTAGES:
        path = bundle / capture_path(v)
        if not path.exists():
            raise LabError(f"capture missing: {path}")
        cmd = ["tshark", "-n", "-r", str(path), "-Y", RST_FILTER, "-T", "fields", "-E", "separator=\t",
               "-E", "occurrence=f"]  # fmt: skip
        for name in TSHARK_FIELDS:
            cmd += ["-e", name]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise LabError(f"tshark failed on {path}: {done.stderr.strip()[:200]}")
        for line in done.stdout.splitlines():
            c = line.split("\t")
            if len(c) < len(TSHARK_FIELDS):
                continue
            out.append(Sighting(
                vantage=v.name, frame=int(c[0]), ts=float(c[1]), src=c[2] or c[4], dst=c[3] or c[5],
                sport=int(c[6]), dport=int(c[7]), seq=int(c[8]), ack=int(c[9]), flags=flag_str(int(c[10], 16)),
                ttl=int(c[11] or c[12] or 0), ifindex=int(c[13] or 0), ip_id=int(c[14], 16) if c[14] else None,
            ))  # fmt: skip
    return out


def group(sightings: list[Sighting], nat: dict[str, str]) -> list[Reset]:
    """Sightings -> physical resets: align the k-th copy of one key across (vantage, interface) lists."""
    lists: dict[tuple, dict[tuple[str, int], list[Sighting]]] = defaultdict(lambda: defaultdict(list))
    for s in sightings:
        key = (nat.get(s.src, s.src), s.sport, nat.get(s.dst, s.dst), s.dport, s.seq, s.ack, s.flags)
        lists[key][(s.vantage, s.ifindex)].append(s)
    resets = []
    for per_point in lists.values():
        for seq in per_point.values():
            seq.sort(key=lambda s: s.ts)
        for k in range(max(len(seq) for seq in per_point.values())):
            resets.append(Reset([seq[k] for seq in per_point.values() if len(seq) > k]))
    resets.sort(key=lambda r: r.first.ts)
    return resets


# --- labelling and verification -------------------------------------------------------------


def label(resets: list[Reset], expects: list[Expect], ctx: Ctx) -> list[str]:
    problems = []
    counts = dict.fromkeys((e.name for e in expects), 0)
    for r in resets:
        for e in expects:
            if e.match(r, ctx):
                r.label = e
                counts[e.name] += 1
                break
        f = r.first
        where = f"RST {f.src}:{f.sport} -> {f.dst}:{f.dport} seq={f.seq} ({', '.join(s.vantage for s in r.sightings)})"
        if r.label is None:
            problems.append(f"unlabelled {where}")
            continue
        problems += _check_sightings(r, r.label, where)
    for e in expects:
        n = counts[e.name]
        if n < e.min or (e.max is not None and n > e.max):
            problems.append(
                f"expectation {e.name!r}: {n} reset(s) on the wire, wanted {e.min}..{e.max or 'any'}"
            )
    return problems


def _check_sightings(r: Reset, e: Expect, where: str) -> list[str]:
    claimed = host_of(r.first.src)
    if e.kind == "injected":
        if claimed and claimed != e.host and r.seen_by(OWN_VANTAGE[claimed]):
            return [f"{where}: labelled injected by {e.host} but seen at {claimed}'s own vantage"]
        return []
    if e.host in OWN_VANTAGE and not r.seen_by(OWN_VANTAGE[e.host]):
        return [f"{where}: labelled {e.kind} by {e.host} but absent from {OWN_VANTAGE[e.host]}"]
    return []


# the backend's log line for a request: its request line and the peer's port
APP_REQUEST_RE = r'http "(?P<request>[^"]+)" peer=\S+:{port}\b'


def log_hits(r: Reset, e: Expect, logs: dict[str, tuple[str, list[str]]]) -> list[dict]:
    """Lines of the bundle's logs that the expectation names, narrowed to this reset.

    "{port}" is the reset's ephemeral port; "{request}" is the request line the backend logged for
    that port (so an nginx error line, which has no upstream port, is tied to its own request).
    """
    hits = []
    port = str(r.ephemeral_port)
    request = None
    app_rx = re.compile(APP_REQUEST_RE.replace("{port}", port))
    for line in logs.get("app", ("", []))[1]:
        if m := app_rx.search(line):
            request = re.escape(m.group("request"))
    for kind, pattern in e.logs:
        if kind not in logs or ("{request}" in pattern and request is None):
            continue
        path, lines = logs[kind]
        rx = re.compile(pattern.replace("{port}", port).replace("{request}", request or ""))
        hits += [{"path": path, "line": i + 1} for i, text in enumerate(lines) if rx.search(text)]
    return hits


def truth_entries(resets: list[Reset], logs: dict[str, tuple[str, list[str]]]) -> list[dict]:
    out = []
    for r in resets:
        f, e = r.first, r.label
        out.append({
            "src": f.src, "sport": f.sport, "dst": f.dst, "dport": f.dport, "seq": f.seq, "ack": f.ack,
            "flags": f.flags, "ts": f.ts,
            "seen_at": [{"vantage": s.vantage, "frame": s.frame, "ttl": s.ttl, "ip_id": s.ip_id}
                        for s in sorted(r.sightings, key=lambda s: (s.ts, s.vantage))],
            "sender": {"role": e.role if e else "unknown", "host": e.host if e else None, "kind": e.kind if e else "unknown"},
            "cause": e.cause if e else "unknown",
            "logs": log_hits(r, e, logs) if e else [],
            "note": e.note if e else "not labelled: verification failed",
            "expectation": e.name if e else None,
        })  # fmt: skip
    return out


def check_truth_file(bundle: Path, truth: dict) -> list[str]:
    """Re-read the captures and compare with a written truth.json (used by the fixture tests)."""
    problems = []
    wire = {(s.vantage, s.frame) for s in read_sightings(bundle)}
    claimed = [(sa["vantage"], sa["frame"]) for r in truth["resets"] for sa in r["seen_at"]]
    if len(claimed) != len(set(claimed)):
        problems.append("a sighting is claimed by two resets")
    if set(claimed) != wire:
        problems.append(
            f"{len(wire - set(claimed))} RST sighting(s) unlabelled, {len(set(claimed) - wire)} claimed but absent"
        )
    for r in truth["resets"]:
        if (
            r["sender"]["role"] not in ("client", "proxy", "server", "middlebox")
            or r["sender"]["host"] not in HOSTS
        ):
            problems.append(f"bad sender {r['sender']}")
    return problems
