"""The whole analysis, top to bottom, one stage per line of `analyze`.

captures -> packets/connections -> resets -> cross-vantage alignment -> log evidence -> verdicts.
Each stage takes plain data and gives plain data, so each is tested on its own.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resetlens import __version__
from resetlens.blame.engine import Case, judge
from resetlens.bundle import Bundle, CaptureSpec
from resetlens.capture import open_capture
from resetlens.capture.ladder import Ladder
from resetlens.capture.prefetch import prefetched
from resetlens.capture.table import FIELD_INDEX, PACKET_DTYPE, RST, flag_letters, halves_to_addr
from resetlens.errors import ResetlensError
from resetlens.model import Analysis, CaptureSummary, Connection, Reset, Sighting
from resetlens.tcp import analyze_vantage
from resetlens.tcp.conntable import ConnectionTable, address_ids, distinct_texts
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


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside: an analysis builds hundreds of thousands of small acyclic
    objects (ladder rows, evidence, hosts) that each collection would rescan for nothing; on a 1 GB
    capture that rescanning was 30 % of the run. The collector's previous state is restored after.

    Re-enabled plainly, the collector would at once scan every object made during the pause as young
    (0.1 s on a 1 GB capture, just before the process ends): they are moved to the oldest generation
    first (gc.freeze + gc.unfreeze, O(1)), where the usual full collections find them."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if not gc.get_freeze_count():  # never unfreeze what a caller froze on purpose
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def analyze(bundle: Bundle, on_built: Callable[[Analysis], None] | None = None) -> Analysis:
    """The analysis of a bundle. `on_built` is called with the Analysis as soon as its captures and
    connections are final (before the log evidence and the verdicts): a writer can start on them."""
    with paused_gc():
        return _analyze(bundle, on_built)


def _analyze(bundle: Bundle, on_built: Callable[[Analysis], None] | None = None) -> Analysis:
    reads = [read_vantage(spec, bundle) for spec in bundle.captures]
    if not any(r.summary.packets for r in reads):
        raise ResetlensError("no packets could be read from any capture", path=str(bundle.root or ""))
    reference = _reference(bundle, reads)
    clocks = clock.align({r.spec.vantage: r.result.anchors for r in reads}, reference)
    for r in reads:
        _apply_clock(r, clocks[r.spec.vantage])
    ttls = _address_ttls(reads)
    hosts = roles.resolve_hosts(bundle, {r.spec.vantage: r.result.connections for r in reads}, ttls)
    for r in reads:
        inferred = hosts.by_vantage.get(r.spec.vantage)
        if r.summary.host is None and inferred is not None:
            r.summary.host = inferred.name
    resets = build_resets(reads, clocks)
    analysis = Analysis(
        resetlens_version=__version__,
        captures=[r.summary for r in reads],
        connections=ConnectionTable.concat(r.result.connections for r in reads),
        resets=resets,
        title=bundle.title,
        bundle=_shown_path(bundle.root),
        reference_vantage=reference,
        hosts=hosts.hosts,
        warnings=list(bundle.warnings),
    )
    if on_built is not None:
        on_built(analysis)
    flows, conn_at = gather_flows(analysis, reads)
    case = Case(analysis, {r.spec.vantage: r for r in reads}, hosts, flows, conn_at)
    case.facts["sent_ttls"] = ttls
    attach_logs(bundle, analysis, case)
    judge(analysis, case)
    return analysis


def _shown_path(root: Path | None) -> str | None:
    """The bundle path for reports: relative to the working directory when inside it (no home paths leak)."""
    if root is None:
        return None
    try:
        return str(root.relative_to(Path.cwd()))
    except ValueError:
        return str(root)


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
            for chunk in prefetched(reader.chunks()):  # the next blocks are read while this one is tracked
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
        resets=len(rst),
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
    r.result.connections.shift(r.spec.vantage, est.offset)


def _address_ttls(reads: list[VantageRead]) -> dict[str, dict[str, dict[int, int]]]:
    """Per vantage, each source address's TTLs (TTL -> packets) over its non-RST anchor packets
    (handshakes, first data): host roles read which TTLs occur, blame reads the most common."""
    out: dict[str, dict[str, dict[int, int]]] = {}
    for r in reads:
        a = r.result.anchors
        per: dict[str, dict[int, int]] = defaultdict(dict)
        if a is not None and len(a):
            a = a[(a["flags"] & RST) == 0]
            ids, uhi, ulo = address_ids(a["src_hi"], a["src_lo"])
            keys, counts = np.unique(
                ids * 256 + a["ttl"], return_counts=True
            )  # (address, TTL) as one integer
            texts = distinct_texts(uhi, ulo)
            for key, n in zip(keys.tolist(), counts.tolist(), strict=True):
                per[texts[key >> 8]][key & 255] = n
        out[r.spec.vantage] = dict(per)
    return out


def build_resets(reads: list[VantageRead], clocks: dict[str, clock.ClockEstimate]) -> list[Reset]:
    """Group RST copies into reset events with their sightings (seen_at)."""
    by_vantage = {r.spec.vantage: r for r in reads}
    events = match.group_resets(
        {r.spec.vantage: r.rst for r in reads},
        {v: c.error for v, c in clocks.items()},
    )
    rst_rows = {r.spec.vantage: r.rst.tolist() for r in reads}  # one conversion, not one per sighting
    resets: list[Reset] = []
    for n, ev in enumerate(events, 1):
        sightings = [_sighting(by_vantage[c.vantage], c, rst_rows[c.vantage]) for c in ev.copies]
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


_I = FIELD_INDEX  # packet-table field -> index in a row tuple
_FR, _TS, _SH, _SL, _SP = _I["frame"], _I["ts"], _I["src_hi"], _I["src_lo"], _I["sport"]
_DH, _DL, _DP, _FL, _SQ, _AK = _I["dst_hi"], _I["dst_lo"], _I["dport"], _I["flags"], _I["seq"], _I["ack"]
_TTL, _IPID, _VER, _WIN, _DIR = (
    _I["ttl"],
    _I["ip_id"],
    _I["ipver"],
    _I["window"],
    _I["direction"],
)


def _sighting(r: VantageRead, c: match.Copy, rst_rows: list[tuple]) -> Sighting:
    """One copy of a reset at one vantage; `rst_rows` is r.rst as tuples (the RST as written there)."""
    row = rst_rows[c.row]
    frame = row[_FR]
    rec = r.records.get(frame)
    context: dict[str, Any] = rec.to_dict() if rec is not None else {}
    if c.doubles:
        context["copies"] = [
            {"frame": rst_rows[i][_FR], "ttl": rst_rows[i][_TTL], "direction": rst_rows[i][_DIR]}
            for i in [c.row, *c.doubles]
        ]
    uid = str(rec.uid) if rec is not None else ""
    ladder: Ladder | list[dict[str, Any]] = []
    frames: list[int] = []
    src, dst = halves_to_addr(row[_SH], row[_SL]), halves_to_addr(row[_DH], row[_DL])
    flow = r.result.flows.get(uid) if uid else None
    if flow is not None and len(flow):
        flow_frames = flow["frame"]
        idx = int(np.searchsorted(flow_frames, frame))
        lo, hi = max(0, idx - LADDER_BEFORE), min(len(flow), idx + 1 + LADDER_AFTER)
        ladder = Ladder(flow[lo:hi], r.offset, {(row[_SH], row[_SL]): src, (row[_DH], row[_DL]): dst})
        frames = flow_frames[:SNIPPET_FRAMES].tolist()
    ts = row[_TS]
    return Sighting(
        vantage=r.spec.vantage,
        ts=ts,
        frame=frame,
        ttl=row[_TTL],
        ip_id=row[_IPID] if row[_VER] == 4 else None,
        src=src,
        sport=row[_SP],
        dst=dst,
        dport=row[_DP],
        seq=row[_SQ],
        ack=row[_AK],
        flags=flag_letters(row[_FL]),
        window=row[_WIN],
        local_ts=ts - r.offset,
        connection=uid,
        context=context,
        ladder=ladder,
        flow_frames=frames,
    )


# ---------------------------------------------------------------------------------------------
# Pass 2: the reset's connection at the vantages where the RST itself is absent.
# ---------------------------------------------------------------------------------------------

CONN_SLACK = 2.0  # seconds a reset may fall outside a connection's span and still belong to it


def locate_connections(analysis: Analysis, reads: list[VantageRead]) -> dict[tuple[str, str], Connection]:
    """(reset id, vantage) -> the same connection at a vantage that did not capture the RST.

    Matched on the 4-tuple as written at any sighting (either direction); across a NAT that rewrote
    addresses, on both ports when that is unique (Linux masquerading keeps ports where it can).
    """
    if len(reads) < 2:
        return {}  # one capture: every sighting already names its connection
    by_tuple: dict[str, dict[tuple, list[int]]] = {}  # vantage -> 4-tuple -> row numbers in its table
    by_ports: dict[str, dict[tuple, list[int]]] = {}
    tables: dict[str, ConnectionTable] = {}
    for r in reads:
        t: dict[tuple, list[int]] = defaultdict(list)
        p: dict[tuple, list[int]] = defaultdict(list)
        table = tables[r.spec.vantage] = r.result.connections
        cols = zip(
            table.text("orig"), table.rows["orig_p"].tolist(), table.text("resp"), table.rows["resp_p"].tolist(),
            strict=True,
        )  # fmt: skip
        for i, (oh, op, rh, rp) in enumerate(cols):
            t[frozenset(((oh, op), (rh, rp)))].append(i)
            p[frozenset((op, rp))].append(i)
        by_tuple[r.spec.vantage] = t
        by_ports[r.spec.vantage] = p
    found: dict[tuple[str, str], Connection] = {}
    for reset in analysis.resets:
        seen = {s.vantage for s in reset.seen_at}
        tuples = {frozenset(((s.src, s.sport), (s.dst, s.dport))) for s in reset.seen_at}
        ports = {frozenset((s.sport, s.dport)) for s in reset.seen_at}
        for r in reads:
            v = r.spec.vantage
            if v in seen:
                continue
            err = (r.summary.clock_offset_error or 0.0) + CONN_SLACK
            rows = [i for tup in tuples for i in by_tuple[v].get(tup, [])]
            if not rows:
                rows = [i for pp in ports for i in by_ports[v].get(pp, [])]
            cands = [tables[v][i] for i in rows]
            cands = [c for c in cands if c.ts - err <= reset.ts <= c.ts + (c.duration or 0.0) + err]
            if cands:
                found[(reset.id, v)] = min(cands, key=lambda c: abs(c.ts - reset.ts))
    return found


def collect_packets(read: VantageRead, conns: list[Connection]) -> dict[str, np.ndarray]:
    """Re-read one capture and keep every packet of the given connections (by uid)."""
    from resetlens.capture.table import addr_to_halves, flow_key

    if not conns:
        return {}
    probe = np.zeros(len(conns), dtype=PACKET_DTYPE)
    for i, c in enumerate(conns):
        probe[i]["src_hi"], probe[i]["src_lo"] = addr_to_halves(c.orig_h)
        probe[i]["dst_hi"], probe[i]["dst_lo"] = addr_to_halves(c.resp_h)
        probe[i]["sport"], probe[i]["dport"] = c.orig_p, c.resp_p
    keys = flow_key(probe)
    spans = {c.uid: (c.first_frame, c.last_frame) for c in conns}
    key_of = {c.uid: int(k) for c, k in zip(conns, keys, strict=True)}
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    frame_base = 0
    for path in read.spec.paths:
        reader = open_capture(path)
        for chunk in reader.chunks():
            table = chunk.table
            if not len(table):
                continue
            frames = table["frame"].astype(np.int64) + frame_base
            fk = flow_key(table)
            hit = np.isin(fk, keys)
            if not hit.any():
                continue
            for uid, (lo, hi) in spans.items():
                sel = hit & (fk == np.uint64(key_of[uid])) & (frames >= lo) & (frames <= hi)
                if sel.any():
                    part = table[sel].copy()
                    part["frame"] = frames[sel]
                    parts[uid].append(part)
        frame_base += reader.info.packets
    return {uid: np.concatenate(p) for uid, p in parts.items()}


def gather_flows(analysis: Analysis, reads: list[VantageRead]) -> tuple[dict, dict]:
    """Packets of each reset's connection at every vantage that holds it.

    Returns (flows keyed by (vantage, uid), connection uid keyed by (reset id, vantage)).
    """
    flows: dict[tuple[str, str], np.ndarray] = {}
    conn_at: dict[tuple[str, str], str] = {}
    for r in reads:
        for uid, f in r.result.flows.items():
            flows[(r.spec.vantage, uid)] = f
    for reset in analysis.resets:
        for s in reset.seen_at:
            if s.connection:
                conn_at[(reset.id, s.vantage)] = s.connection
    located = locate_connections(analysis, reads)
    wanted: dict[str, dict[str, Connection]] = defaultdict(dict)
    for (rid, v), c in located.items():
        conn_at[(rid, v)] = c.uid
        if (v, c.uid) not in flows:
            wanted[v][c.uid] = c
    for r in reads:
        need = wanted.get(r.spec.vantage)
        if need:
            for uid, f in collect_packets(r, list(need.values())).items():
                flows[(r.spec.vantage, uid)] = f
    return flows, conn_at


# ---------------------------------------------------------------------------------------------
# Log and host evidence
# ---------------------------------------------------------------------------------------------


def attach_logs(bundle: Bundle, analysis: Analysis, case: Case) -> None:
    """Parse every log of the bundle and tie its lines (and host-snapshot facts) to the resets, before
    the verdicts, which read them."""
    snapshots: dict[str, Any] = {}  # host -> HostSnapshots
    if bundle.root is not None:  # captures given one by one come without host snapshots
        from resetlens.evidence.snapshots import load_snapshots  # ~10 ms of imports: only for a bundle

        snapshots = load_snapshots(str(bundle.root))
    if not bundle.logs and not snapshots:
        return
    from resetlens.evidence import parse_log  # the parsers load only when there are logs (~10 ms)
    from resetlens.evidence.correlate import correlate

    parsed = []
    for spec in bundle.logs:
        try:
            log = parse_log(spec.path, spec.kind, tz=bundle.timezone, host=spec.host, fmt=spec.format)
        except ResetlensError as e:
            analysis.warnings.append(str(e))
            continue
        log.path = bundle.display(spec.path)
        parsed.append(log)
    result = correlate(analysis.resets, parsed, hosts=analysis.hosts, snapshots=snapshots)
    analysis.context_logs = result.context
    analysis.log_sources = result.sources
    analysis.warnings.extend(result.warnings)
    for line in [*analysis.context_logs, *(x for r in analysis.resets for x in r.logs)]:
        if line.path and Path(line.path).is_absolute():
            line.path = bundle.display(Path(line.path))
        fpath = line.fields.get("path") if isinstance(line.fields, dict) else None
        if isinstance(fpath, str) and Path(fpath).is_absolute():
            line.fields["path"] = bundle.display(Path(fpath))
    case.facts["logs"] = parsed
    case.facts["snapshots"] = snapshots
