"""The one results model every stage fills and every reporter reads (../shared/contract.md §3).

Field names are the contract's; fields beyond the contract are extensions and are marked so.
Every dataclass converts to plain JSON-able dicts with `to_dict()` and back with `from_dict()`,
so a saved analysis re-renders without re-reading captures (`resetlens report`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# JSON format version. Bump and note here when a contract field changes meaning or goes away.
#   1: first release (contract format 1).
FORMAT = 1

# Sender roles (contract): who really emitted a reset.
ROLES = ("client", "proxy", "server", "middlebox", "unknown")
# Host roles a manifest may declare (contract §2); "firewall" hosts send as role "middlebox".
HOST_ROLES = ("client", "proxy", "server", "firewall", "other")
# Sender kinds (contract): how the reset came to be.
KINDS = ("kernel", "application", "injected", "unknown")


@dataclass
class CaptureSummary:
    """One capture file as read: a vantage point."""

    vantage: str  # unique label of the capture point
    path: str  # as given (relative to the bundle when from a manifest)
    host: str | None  # the manifest host the capture was taken on, or the inferred one
    packets: int  # frames read (all link types and protocols)
    resets: int  # TCP segments with RST in this capture
    first_ts: float | None  # first frame time, reference clock
    last_ts: float | None  # last frame time, reference clock
    clock_offset: float = 0.0  # seconds added to this capture's own times
    clock_offset_error: float | None = None  # ± seconds, None when not estimated
    warnings: list[str] = field(default_factory=list)  # truncation, skipped link types, ...
    # extensions
    format: str = ""  # "pcap", "pcap-ns", "pcapng", with "+gzip" when compressed
    link_types: list[str] = field(default_factory=list)  # link types met, by name
    tcp_packets: int = 0  # TCP segments decoded into the packet table
    bytes: int = 0  # size of the file on disk
    clock_method: str = ""  # how the offset was found ("reference", "matched packets", "none")


@dataclass(slots=True)  # one per connection: slots keep a million of them affordable
class Connection:
    """One TCP connection as seen at one vantage, in Zeek conn.log terms."""

    vantage: str
    ts: float  # first packet, reference clock
    orig_h: str  # originator address (Zeek's notion: who sent the SYN, else the first packet)
    orig_p: int
    resp_h: str
    resp_p: int
    conn_state: str  # S0 S1 SF REJ S2 S3 RSTO RSTR RSTOS0 RSTRH SH SHR OTH
    history: str  # Zeek's history letters
    duration: float  # last packet minus first packet, seconds
    orig_bytes: int  # payload bytes from the originator (sequence-number based, like Zeek)
    resp_bytes: int
    # extensions
    uid: str = ""  # stable id within the analysis, e.g. "C3-client"
    orig_pkts: int = 0
    resp_pkts: int = 0
    first_frame: int = 0
    last_frame: int = 0


@dataclass
class Sighting:
    """One copy of a reset as captured at one vantage."""

    vantage: str
    ts: float  # reference clock
    frame: int  # 1-based frame number in that capture
    ttl: int  # IPv4 TTL / IPv6 hop limit as captured there
    ip_id: int | None  # IPv4 identification (None for IPv6)
    # extensions: the packet as written at this vantage (addresses differ across a NAT)
    src: str = ""
    sport: int = 0
    dst: str = ""
    dport: int = 0
    seq: int = 0
    ack: int = 0
    flags: str = ""  # "R" or "RA" (plus any other bits)
    window: int = 0
    local_ts: float = 0.0  # the capture's own clock, before the offset
    connection: str = ""  # uid of the Connection it belongs to at this vantage
    context: dict[str, Any] = field(default_factory=dict)  # the RST record (tcp.resets.ResetRecord)
    # the flow's last packets at this vantage up to the RST and a few after, for ladder diagrams:
    # dicts with frame, ts (reference clock), src, sport, dst, dport, flags, seq, ack, len, ttl, ip_id, window
    # (the pipeline's is a resetlens.capture.ladder.Ladder: a sequence of those dicts, made when read)
    ladder: list[dict[str, Any]] = field(default_factory=list)
    flow_frames: list[int] = field(
        default_factory=list
    )  # frames of the connection here (capped), for pcap snippets


@dataclass
class Evidence:
    """One fact a verdict rests on; `code` is a blame.catalog evidence code."""

    code: str
    text: str
    vantage: str | None = None
    frame: int | None = None
    # extensions
    weight: float = 0.0  # signed contribution to the verdict (positive supports it)
    missing: bool = False  # True when this names evidence that is absent (what a second capture would add)


@dataclass
class LogLine:
    """A log line correlated with a reset (or kept as context)."""

    kind: str  # nginx-error | nginx-access | haproxy | envoy | journald-json | syslog | app | host
    path: str
    line: int  # 1-based line number in its file
    ts: float | None  # reference clock, None when the line carries no usable time
    text: str  # the line as read (hostile text: reporters escape it)
    # extensions
    host: str | None = None
    event: str = ""  # the parser's classification, e.g. "upstream_reset", "unit_restart"
    fields: dict[str, Any] = field(default_factory=dict)
    match: str = ""  # how it was tied to the reset: "4-tuple", "client+time", "unit+port+time", ...


@dataclass
class Sender:
    role: str = "unknown"  # ROLES
    host: str | None = None
    kind: str = "unknown"  # KINDS


@dataclass
class Reset:
    """One physical reset event, merged across the vantages that saw it."""

    id: str
    ts: float  # first sighting, reference clock
    src: str  # as written in the RST (at the first sighting)
    sport: int
    dst: str
    dport: int
    seen_at: list[Sighting] = field(default_factory=list)
    sender: Sender = field(default_factory=Sender)
    cause: str = "unknown"
    confidence: float = 0.0
    evidence: list[Evidence] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)
    decision: str = ""
    # extensions
    flow: str = ""  # id of the cross-vantage flow (the same connection through NAT/proxy legs)
    incident: str = ""  # id of the incident group (same sender, cause, time cluster)
    effective: bool = True  # False for a RST that could not have torn the connection down
    explanation: str = ""  # the cause's explanation filled with this reset's evidence
    display_filter: str = ""  # Wireshark display filter isolating the reset's flow


@dataclass
class Host:
    """A machine with a role, from the manifest or inferred."""

    name: str
    role: str  # HOST_ROLES
    addresses: list[str] = field(default_factory=list)
    source: str = "manifest"  # "manifest" or "inferred"
    reason: str = ""  # why inferred that way


@dataclass
class Incident:
    """Resets grouped by sender, cause and time cluster."""

    id: str
    cause: str
    sender: Sender
    first_ts: float
    last_ts: float
    resets: list[str]  # reset ids
    confidence: float
    decision: str
    summary: str


@dataclass
class Analysis:
    format: int = FORMAT
    resetlens_version: str = ""
    captures: list[CaptureSummary] = field(default_factory=list)
    connections: Sequence[Connection] = field(default_factory=list)  # a list, or columnar (tcp.conntable)
    resets: list[Reset] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    # extensions
    title: str = ""
    bundle: str | None = None
    reference_vantage: str | None = None
    hosts: list[Host] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    context_logs: list[LogLine] = field(default_factory=list)  # log lines that matched no reset
    log_sources: list[dict[str, Any]] = field(
        default_factory=list
    )  # per file: kind, path, lines, unparsed, clock offset
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        # connections may be a columnar resetlens.tcp.conntable.ConnectionTable: rows one by one
        out = dataclasses.asdict(dataclasses.replace(self, connections=[]))
        out["connections"] = [dataclasses.asdict(c) for c in self.connections]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Analysis:
        """Rebuild from JSON (tolerates unknown keys so older readers survive newer files)."""
        a = _build(cls, data)
        a.captures = [_build(CaptureSummary, c) for c in data.get("captures", [])]
        a.connections = [_build(Connection, c) for c in data.get("connections", [])]
        a.hosts = [_build(Host, h) for h in data.get("hosts", [])]
        a.context_logs = [_build(LogLine, x) for x in data.get("context_logs", [])]
        a.incidents = [_incident_from(i) for i in data.get("incidents", [])]
        a.resets = [_reset_from(r) for r in data.get("resets", [])]
        return a


def _build(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def _incident_from(data: dict[str, Any]) -> Incident:
    inc = _build(Incident, data)
    inc.sender = _build(Sender, data.get("sender", {}))
    return inc


def _reset_from(data: dict[str, Any]) -> Reset:
    r = _build(Reset, data)
    r.seen_at = [_build(Sighting, s) for s in data.get("seen_at", [])]
    r.sender = _build(Sender, data.get("sender", {}))
    r.evidence = [_build(Evidence, e) for e in data.get("evidence", [])]
    r.logs = [_build(LogLine, x) for x in data.get("logs", [])]
    return r
