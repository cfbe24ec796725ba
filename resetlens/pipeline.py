"""The whole analysis, top to bottom, one stage per line of `analyze`.

captures -> packets/connections -> resets -> cross-vantage alignment -> log evidence -> verdicts.
Each stage takes plain data and gives plain data, so each is tested on its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resetlens import __version__
from resetlens.bundle import Bundle, CaptureSpec, load_bundle
from resetlens.capture import open_capture
from resetlens.capture.table import PACKET_DTYPE, RST, flag_letters, halves_to_addr
from resetlens.errors import ResetlensError
from resetlens.model import Analysis, CaptureSummary, Connection, Reset, Sighting
from resetlens.tcp import analyze_vantage
from resetlens.vantage import clock, match, roles

LADDER_BEFORE = 12  # packets of the flow shown before the RST in a ladder diagram
LADDER_AFTER = 4  # ... and after it (what followed tells injected from genuine)
SNIPPET_FRAMES = 5000  # frames of one connection written to a pcap snippet at most


@dataclass
class VantageRead:
    """Everything pass 1 learnt from one capture."""

    spec: CaptureSpec
    summary: CaptureSummary
    result: Any  # resetlens.tcp.VantageResult
    rst: np.ndarray  # every RST row of the capture (own clock)
    segments: dict[int, bytes]  # frame -> raw TCP segment of each RST
    records: dict[int, Any] = field(default_factory=dict)  # frame -> tcp.resets.ResetRecord
    offset: float = 0.0


def analyze_path(path: Path) -> Analysis:
    """A bundle folder or a single capture file -> Analysis (used by batch workers)."""
    return analyze(load_bundle(path))


analyze_bundle = analyze_path


def analyze(bundle: Bundle) -> Analysis:
    reads = [read_vantage(spec, bundle) for spec in bundle.captures]
    if not any(r.summary.packets for r in reads):
        raise ResetlensError("no packets could be read from any capture", path=str(bundle.root or ""))
    reference = _reference(bundle, reads)
    clocks = clock.align({r.spec.vantage: r.result.anchors for r in reads}, reference)
    for r in reads:
        _apply_clock(r, clocks[r.spec.vantage])
    hosts = roles.resolve_hosts(bundle, {r.spec.vantage: r.result.connections for r in reads}, _sent_ttls(reads))
    resets = build_resets(reads, clocks)
    analysis = Analysis(
        resetlens_version=__version__,
        captures=[r.summary for r in reads],
        connections=[c for r in reads for c in r.result.connections],
        resets=resets,
        title=bundle.title,
        bundle=str(bundle.root) if bundle.root else None,
        reference_vantage=reference,
        hosts=hosts.hosts,
        warnings=list(bundle.warnings),
    )
    from resetlens.blame.engine import judge
    from resetlens.evidence.pipeline import gather_evidence

    evidence = gather_evidence(bundle, analysis)
    judge(analysis, reads, hosts, evidence)
    return analysis


def _reference(bundle: Bundle, reads: list[VantageRead]) -> str:
    names = [r.spec.vantage for r in reads]
    if bundle.reference:
        if bundle.reference not in names:
            raise ResetlensError(f"reference vantage {bundle.reference!r} is not one of: {', '.join(names)}")
        return bundle.reference
    return next((r.spec.vantage for r in reads if r.summary.packets), names[0])


def read_vantage(spec: CaptureSpec, bundle: Bundle | None = None) -> VantageRead:
    """Pass 1 over one vantage's file(s): packet table -> connections, RST records, anchors."""
    rst_parts: list[np.ndarray] = []
    segments: dict[int, bytes] = {}
    infos: list[Any] = []
    warnings: list[str] = []
    display = bundle.display if bundle else str

    def chunks() -> Iterator[Any]:
        frame_base = 0
        for path in spec.paths:
            reader = open_capture(path)
            for chunk in reader.chunks():
                table = chunk.table
                if frame_base:
                    table = table.copy()
                    table["frame"] += frame_base
                    chunk.table = table
                    chunk.segments = {f + frame_base: s for f, s in chunk.segments.items()}
                is_rst = (table["flags"] & RST) != 0
                if is_rst.any():
                    rst_parts.append(table[is_rst].copy())
                    segments.update(chunk.segments)
                yield chunk
            infos.append(reader.info)
            frame_base += reader.info.packets
            if len(spec.paths) > 1:
                warnings.extend(f"{display(path)}: {w}" for w in reader.info.warnings)
            else:
                warnings.extend(reader.info.warnings)

    result = analyze_vantage(chunks(), spec.vantage)
    rst = np.concatenate(rst_parts) if rst_parts else np.zeros(0, dtype=PACKET_DTYPE)
    first = [i.first_ts for i in infos if i.first_ts is not None]
    last = [i.last_ts for i in infos if i.last_ts is not None]
    fmt = infos[0].format if infos else ""
    summary = CaptureSummary(
        vantage=spec.vantage,
        path=display(spec.path) if len(spec.paths) == 1 else ", ".join(display(p) for p in spec.paths),
        host=spec.host,
        packets=sum(i.packets for i in infos),
        resets=int(len(rst)),
        first_ts=min(first) if first else None,
        last_ts=max(last) if last else None,
        warnings=warnings,
        format=fmt,
        link_types=sorted({lt for i in infos for lt in i.link_types}),
        tcp_packets=sum(i.tcp_packets for i in infos),
        bytes=sum(i.bytes for i in infos),
    )
    records = {int(rec.frame): rec for rec in result.resets}
    return VantageRead(spec, summary, result, rst, segments, records)


def _apply_clock(r: VantageRead, est: clock.ClockEstimate) -> None:
    """Put every time of this vantage on the reference clock."""
    r.offset = est.offset
    s = r.summary
    s.clock_offset = est.offset
    s.clock_offset_error = est.error
    s.clock_method = est.method
    if est.note:
        s.warnings.append(f"clock: {est.note}")
    if est.offset == 0.0:
        return
    if s.first_ts is not None:
        s.first_ts += est.offset
    if s.last_ts is not None:
        s.last_ts += est.offset
    r.rst["ts"] += est.offset
    for c in r.result.connections:
        c.ts += est.offset


def _sent_ttls(reads: list[VantageRead]) -> dict[str, dict[str, set[int]]]:
    out: dict[str, dict[str, set[int]]] = {}
    for r in reads:
        a = r.result.anchors
        per: dict[str, set[int]] = defaultdict(set)
        if len(a):
            pairs = np.unique(np.stack([a["src_hi"], a["src_lo"], a["ttl"].astype(np.uint64)], axis=1), axis=0)
            for hi, lo, ttl in pairs[:5000]:
                per[halves_to_addr(hi, lo)].add(int(ttl))
        out[r.spec.vantage] = per
    return out


def build_resets(reads: list[VantageRead], clocks: dict[str, clock.ClockEstimate]) -> list[Reset]:
    """Group RST copies into reset events with their sightings (seen_at)."""
    by_vantage = {r.spec.vantage: r for r in reads}
    events = match.group_resets(
        {r.spec.vantage: r.rst for r in reads},
        {v: c.error for v, c in clocks.items()},
    )
    resets: list[Reset] = []
    for n, ev in enumerate(events, 1):
        sightings = [_sighting(by_vantage[c.vantage], c) for c in ev.copies]
        first = sightings[0]
        resets.append(
            Reset(
                id=f"R{n}",
                ts=first.ts,
                src=first.src,
                sport=first.sport,
                dst=first.dst,
                dport=first.dport,
                seen_at=sightings,
            )
        )
    return resets


def _row_dict(row: np.void, offset: float) -> dict[str, Any]:
    return {
        "frame": int(row["frame"]),
        "ts": float(row["ts"]) + offset,
        "src": halves_to_addr(row["src_hi"], row["src_lo"]),
        "sport": int(row["sport"]),
        "dst": halves_to_addr(row["dst_hi"], row["dst_lo"]),
        "dport": int(row["dport"]),
        "flags": flag_letters(int(row["flags"])),
        "seq": int(row["seq"]),
        "ack": int(row["ack"]),
        "len": int(row["payload_len"]),
        "ttl": int(row["ttl"]),
        "ip_id": int(row["ip_id"]) if int(row["ipver"]) == 4 else None,
        "window": int(row["window"]),
    }


def _sighting(r: VantageRead, c: match.Copy) -> Sighting:
    row = r.rst[c.row]
    frame = int(row["frame"])
    rec = r.records.get(frame)
    context: dict[str, Any] = rec.to_dict() if rec is not None else {}
    if c.doubles:
        context["copies"] = [
            {"frame": int(r.rst[i]["frame"]), "ttl": int(r.rst[i]["ttl"]), "direction": int(r.rst[i]["direction"])}
            for i in [c.row, *c.doubles]
        ]
    uid = str(getattr(rec, "conn_uid", "") or "") if rec is not None else ""
    ladder: list[dict[str, Any]] = []
    frames: list[int] = []
    flow = r.result.flows.get(uid) if uid else None
    if flow is not None and len(flow):
        idx = int(np.searchsorted(flow["frame"], frame))
        lo, hi = max(0, idx - LADDER_BEFORE), min(len(flow), idx + 1 + LADDER_AFTER)
        ladder = [_row_dict(p, r.offset) for p in flow[lo:hi]]
        frames = [int(f) for f in flow["frame"][:SNIPPET_FRAMES]]
    d = _row_dict(row, 0.0)
    return Sighting(
        vantage=r.spec.vantage,
        ts=float(row["ts"]),
        frame=frame,
        ttl=d["ttl"],
        ip_id=d["ip_id"],
        src=d["src"],
        sport=d["sport"],
        dst=d["dst"],
        dport=d["dport"],
        seq=d["seq"],
        ack=d["ack"],
        flags=d["flags"],
        window=d["window"],
        local_ts=float(row["ts"]) - r.offset,
        connection=uid,
        context=context,
        ladder=ladder,
        flow_frames=frames,
    )


def connections_of(analysis: Analysis, vantage: str) -> list[Connection]:
    return [c for c in analysis.connections if c.vantage == vantage]
