"""Who sent each reset, how, why, and what to fix.

The verdict has two halves, decided separately and then combined:
1. Origin: did the host whose address the RST carries really send it? Proof comes from the
   presence matrix (seen leaving the claimed sender's own capture, or absent from it while that
   capture holds the connection), a router's `-i any` capture showing it only outgoing, and, with
   fewer captures, from TTL against the claimed sender's baseline, the Weaver et al. races (data
   from the claimed sender after its RST) and injector fingerprints.
2. Cause: the packet story at the vantage nearest the sender (what the RST answered, idle gaps,
   FINs before it, handshake state, TLS ClientHello) plus correlated log lines and host state.
Every rule that fires adds Evidence; the confidence is the product of the two halves' strength.
When the evidence does not decide, the cause is `unknown` and the missing evidence is named.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from resetlens.blame import catalog as cat
from resetlens.blame.story import IDLE_GAP, TLS_HANDSHAKE_HEAD, Story, is_tls_record, round_timeout, tell
from resetlens.capture.table import DIR_IN, DIR_OUT, addr_to_halves
from resetlens.model import Analysis, Evidence, Host, Incident, Reset, Sender, Sighting
from resetlens.vantage.roles import HostMap, sender_role

# Origin strengths (probability the origin verdict is right given the strongest evidence).
PROOF_PRESENCE = 0.97  # seen at / absent from the claimed sender's own capture
PROOF_LOCAL_OUT = 0.95  # outgoing-only copy on a router's -i any capture
PROOF_RACE = 0.9  # claimed sender kept sending after its RST
PROOF_TTL = 0.75  # TTL off the claimed sender's baseline
ONE_SIDE = 0.7  # only the receiving side captured, nothing anomalous
# Clusters of resets with the same sender and cause closer than this form one incident.
INCIDENT_GAP = 60.0
# A reset within this of a log line about the same connection or port is tied to it (seconds).
LOG_WINDOW = 2.0


@dataclass
class Case:
    """Everything the rules may look at."""

    analysis: Analysis
    reads: dict[str, Any]  # vantage -> pipeline.VantageRead
    hosts: HostMap
    flows: dict[tuple[str, str], np.ndarray]  # (vantage, connection uid) -> packets, own clock
    conn_at: dict[tuple[str, str], str]  # (reset id, vantage) -> connection uid there
    facts: dict[str, Any] = field(default_factory=dict)  # host facts from snapshots and logs
    stories: dict[tuple[str, str, int], Story | None] = field(default_factory=dict)  # memo of story.tell


@dataclass
class Origin:
    forged: bool | None  # True: not sent by the host its address claims; None: cannot tell
    strength: float
    sender: Host | None
    claimed: Host | None
    evidence: list[Evidence]
    best_vantage: str | None  # where the packet story is read (nearest the real sender)


def judge(analysis: Analysis, case: Case) -> None:
    leg_evidence = _stitch_legs(analysis, case)  # first: the legs' log lines feed the verdicts
    for reset in analysis.resets:
        _verdict(case, reset)
        reset.evidence.extend(leg_evidence.get(reset.id, []))
    _inherit_follow_ups(analysis)
    _shared_device(analysis, case)
    _mark_both_directions(analysis)
    analysis.incidents = incidents(analysis.resets)
    analysis.summary = summarize(analysis)


# ---------------------------------------------------------------------------------------------
# Origin
# ---------------------------------------------------------------------------------------------


def _claimed(case: Case, reset: Reset) -> tuple[Host | None, str]:
    """The host the RST claims to come from (ignoring a NAT box's address if another sighting has one)."""
    first: tuple[Host | None, str] = (None, reset.src)
    for s in reset.seen_at:
        h = case.hosts.host_of(s.src)
        if h is not None and h.role != "firewall":
            return h, s.src
        if h is not None and first[0] is None:
            first = (h, s.src)
    return first


def _story(case: Case, reset: Reset, vantage: str, sighting: Sighting | None) -> Story | None:
    uid = case.conn_at.get((reset.id, vantage))
    if not uid or sighting is None:
        return None
    key = (vantage, uid, sighting.frame)
    if key in case.stories:  # told already (each reset asks twice: for its origin and its cause)
        return case.stories[key]
    flow = case.flows.get((vantage, uid))
    if flow is None or not len(flow):
        return None
    story = case.stories[key] = tell(flow, sighting.frame)
    return story


def _covered(case: Case, vantage: str, ts: float) -> bool:
    s = case.reads[vantage].summary
    err = (s.clock_offset_error or 0.0) + 0.5
    return s.first_ts is not None and s.last_ts is not None and s.first_ts - err <= ts <= s.last_ts + err


def _sender_packets_after(case: Case, reset: Reset, vantage: str, claimed_addr: str) -> list[int]:
    """Frames at `vantage` from the claimed sender after the RST's time, in the same connection."""
    uid = case.conn_at.get((reset.id, vantage))
    flow = case.flows.get((vantage, uid)) if uid else None
    if flow is None or not len(flow):
        return []
    read = case.reads[vantage]
    hi, lo = addr_to_halves(claimed_addr)
    ports = {reset.sport, reset.dport}
    from_claimed = (flow["src_hi"] == hi) & (flow["src_lo"] == lo) & np.isin(flow["sport"], list(ports))
    ts_ref = flow["ts"] + read.offset
    later = ts_ref > reset.ts + 0.0005
    not_rst = (flow["flags"] & 0x4) == 0
    return [int(f) for f in flow["frame"][from_claimed & later & not_rst][:10]]


def _origin(case: Case, reset: Reset) -> Origin:
    ev: list[Evidence] = []
    claimed, claimed_addr = _claimed(case, reset)
    claimed_name = claimed.name if claimed else claimed_addr
    by_v = {s.vantage: s for s in reset.seen_at}
    sender_vantages = [v for v, h in case.hosts.by_vantage.items() if h is not None and h is claimed]
    forged: bool | None = None
    strength = 0.0
    sender: Host | None = claimed
    best: str | None = None

    # 1. The claimed sender's own capture(s): the strongest proof either way.
    seen_there = [v for v in sender_vantages if v in by_v]
    if seen_there:
        v = seen_there[0]
        forged, strength, best = False, PROOF_PRESENCE, v
        ev.append(
            Evidence(
                "seen_leaving_sender",
                cat.evidence_text(
                    "seen_leaving_sender", {"vantage": v, "host": claimed_name, "frame": by_v[v].frame}
                ),
                v,
                by_v[v].frame,
                1.0,
            )
        )
    else:
        holding = [
            v for v in sender_vantages if _covered(case, v, reset.ts) and case.conn_at.get((reset.id, v))
        ]
        for v in holding[:1]:
            forged, strength = True, PROOF_PRESENCE
            ev.append(
                Evidence(
                    "absent_at_sender",
                    cat.evidence_text("absent_at_sender", {"vantage": v, "host": claimed_name}),
                    v,
                    None,
                    1.0,
                )
            )
            after = _sender_packets_after(case, reset, v, claimed_addr) if claimed_addr else []
            if after:
                ev.append(
                    Evidence(
                        "data_after_rst",
                        cat.evidence_text(
                            "data_after_rst",
                            {"claimed": claimed_name, "frames": ", ".join(map(str, after[:5])), "vantage": v},
                        ),
                        v,
                        after[0],
                        1.0,
                    )
                )
        if not holding:
            for v in sender_vantages:
                ev.append(
                    Evidence(
                        "sender_capture_gap",
                        cat.evidence_text("sender_capture_gap", {"vantage": v, "host": claimed_name}),
                        v,
                        None,
                        0.0,
                        missing=True,
                    )
                )

    # 2. Router / firewall captures: generated there, or forwarded?
    injector: Host | None = None
    for s in reset.seen_at:
        h = case.hosts.by_vantage.get(s.vantage)
        if h is None or h is claimed:
            continue
        copies = s.context.get("copies") or [
            {"frame": s.frame, "ttl": s.ttl, "direction": _direction(case, s)}
        ]
        dirs = {c.get("direction", 0) for c in copies}
        if DIR_OUT in dirs and DIR_IN not in dirs:
            injector = h
            ev.append(
                Evidence(
                    "locally_generated",
                    cat.evidence_text(
                        "locally_generated", {"host": h.name, "vantage": s.vantage, "frame": s.frame}
                    ),
                    s.vantage,
                    s.frame,
                    1.0,
                )
            )
        elif DIR_OUT in dirs and DIR_IN in dirs:
            ev.append(
                Evidence(
                    "forwarded",
                    cat.evidence_text(
                        "forwarded",
                        {
                            "host": h.name,
                            "vantage": s.vantage,
                            "frames": ", ".join(str(c["frame"]) for c in copies),
                        },
                    ),
                    s.vantage,
                    s.frame,
                    0.3,
                )
            )
    if injector is not None and injector.role == "firewall" and forged is not True:
        if forged is False:
            pass  # the sender's own capture shows it: the firewall merely also generated a copy? keep presence proof
        else:
            forged, strength = True, PROOF_LOCAL_OUT

    # 3. TTL and races at each sighting, against the claimed sender's baseline in the same flow.
    ttl_votes: list[bool] = []
    for s in reset.seen_at:
        st = _story(case, reset, s.vantage, s)
        if st is None:
            continue
        if best is None:
            best = s.vantage
        base = st.sender_ttl_baseline
        if base is None:
            # No earlier packet from the sender in this connection: its other connections at this vantage.
            counts = (case.facts.get("sent_ttls") or {}).get(s.vantage, {}).get(s.src)
            addr_ttl = max(counts, key=counts.get) if counts else None
            if addr_ttl is not None and addr_ttl != s.ttl:
                ttl_votes.append(False)
                where = "closer to this vantage than" if s.ttl > addr_ttl else "farther away than"
                ev.append(
                    Evidence(
                        "ttl_address_mismatch",
                        cat.evidence_text(
                            "ttl_address_mismatch",
                            {
                                "ttl": s.ttl,
                                "vantage": s.vantage,
                                "claimed": claimed_name,
                                "baseline": addr_ttl,
                                "hops": abs(int(s.ttl) - int(addr_ttl)),
                                "where": where,
                            },
                        ),
                        s.vantage,
                        s.frame,
                        0.7,
                    )
                )
        elif base is not None:
            if s.ttl == base:
                ttl_votes.append(True)
                ev.append(
                    Evidence(
                        "ttl_matches",
                        cat.evidence_text(
                            "ttl_matches", {"ttl": s.ttl, "vantage": s.vantage, "claimed": claimed_name}
                        ),
                        s.vantage,
                        s.frame,
                        0.3,
                    )
                )
            else:
                ttl_votes.append(False)
                hops = abs(int(s.ttl) - int(base))
                where = "closer to this vantage than" if s.ttl > base else "farther away than"
                ev.append(
                    Evidence(
                        "ttl_mismatch",
                        cat.evidence_text(
                            "ttl_mismatch",
                            {
                                "ttl": s.ttl,
                                "vantage": s.vantage,
                                "claimed": claimed_name,
                                "baseline": base,
                                "hops": hops,
                                "where": where,
                            },
                        ),
                        s.vantage,
                        s.frame,
                        0.8,
                    )
                )
        if st.sender_data_after and forged is not False:
            ev.append(
                Evidence(
                    "data_after_rst",
                    cat.evidence_text(
                        "data_after_rst",
                        {
                            "claimed": claimed_name,
                            "frames": ", ".join(map(str, st.sender_data_after[:5])),
                            "vantage": s.vantage,
                        },
                    ),
                    s.vantage,
                    st.sender_data_after[0],
                    0.9,
                )
            )
            if forged is None:
                forged, strength = True, PROOF_RACE
        if st.rst_burst > 1 and st.burst_seq_changes and forged is not False:
            ev.append(
                Evidence(
                    "rst_burst_seq_change",
                    cat.evidence_text("rst_burst_seq_change", {"count": st.rst_burst}),
                    s.vantage,
                    s.frame,
                    0.6,
                )
            )
    if forged is None and ttl_votes:
        if not any(ttl_votes):
            forged, strength = True, PROOF_TTL
        elif all(ttl_votes):
            forged, strength = False, ONE_SIDE
    crafted = [s for s in reset.seen_at if s.context.get("reserved_bits")]
    if crafted:
        ev.append(
            Evidence(
                "reserved_bits",
                cat.evidence_text("reserved_bits", {"flags": 0xE00}),
                crafted[0].vantage,
                crafted[0].frame,
                0.6,
            )
        )
        if forged is None:
            forged, strength = True, PROOF_TTL
    _fingerprints(reset, claimed_name, ev)
    # NAT mapping between sightings (a lone sighting has none: skip building the tuples).
    tuples = (
        {(s.src, s.sport, s.dst, s.dport): s.vantage for s in reset.seen_at} if len(reset.seen_at) > 1 else {}
    )
    if len(tuples) > 1:
        (a, va), (b, vb) = list(tuples.items())[:2]
        ev.append(
            Evidence(
                "nat_mapping",
                cat.evidence_text(
                    "nat_mapping",
                    {
                        "a": f"{a[0]}:{a[1]} > {a[2]}:{a[3]}",
                        "va": va,
                        "b": f"{b[0]}:{b[1]} > {b[2]}:{b[3]}",
                        "vb": vb,
                    },
                ),
                vb,
                None,
                0.0,
            )
        )

    if not forged and claimed is not None and claimed.role == "firewall":
        # A firewall answering for an address it holds (its NAT address) is still not an endpoint of the
        # connection: the reset is the box's, not the peer's.
        forged, injector = True, claimed
        strength = max(strength, PROOF_PRESENCE if seen_there else PROOF_TTL)
        ev.append(
            Evidence(
                "injector_fingerprint",
                cat.evidence_text(
                    "injector_fingerprint",
                    {
                        "what": f"source {claimed_addr} belongs to {claimed.name} (a firewall/NAT), not to an endpoint of "
                        "the connection"
                    },
                ),
                reset.seen_at[0].vantage,
                reset.seen_at[0].frame,
                0.8,
            )
        )
    if forged:
        sender = injector if injector is not None else _lone_middlebox(case)
    if not sender_vantages:
        ev.append(
            Evidence(
                "missing_sender_capture",
                cat.evidence_text("missing_sender_capture", {"claimed": claimed_name}),
                None,
                None,
                0.0,
                missing=True,
            )
        )
        if forged is None:
            forged, strength = False, ONE_SIDE * 0.9
    if forged is None:
        forged, strength = False, 0.5
    if best is None and reset.seen_at:
        best = reset.seen_at[0].vantage
    if not forged and claimed is not None:
        for v in sender_vantages:
            if v in by_v:
                best = v
    return Origin(forged, strength, sender, claimed, ev, best)


def _fingerprints(reset: Reset, claimed: str, ev: list[Evidence]) -> None:
    """IP ID continuity and header habits of the RST against its claimed sender's earlier packets."""
    s = max(reset.seen_at, key=lambda x: x.ttl)  # the copy nearest its sender
    c = s.context
    prev, delta = c.get("baseline_ip_id"), c.get("ip_id_delta")
    if s.ip_id is not None and prev is not None and delta is not None:
        if 0 < delta <= 64:
            ev.append(
                Evidence(
                    "ipid_continues",
                    cat.evidence_text("ipid_continues", {"ip_id": s.ip_id, "claimed": claimed, "prev": prev}),
                    s.vantage,
                    s.frame,
                    0.3,
                )
            )
        elif s.ip_id == 0 and prev:
            ev.append(
                Evidence(
                    "ipid_zero", cat.evidence_text("ipid_zero", {"claimed": claimed}), s.vantage, s.frame, 0.2
                )
            )
    habits = []
    if c.get("missing_options"):
        habits.append(
            f"it lacks the TCP option(s) {', '.join(c['missing_options'])} that {claimed} put on every "
            "earlier segment"
        )
    if c.get("df_changed"):
        habits.append("its DF bit differs from the sender's earlier packets")
    if not c.get("rst_ack") and s.window:
        habits.append(f"a bare RST with window {s.window} (stacks send 0; some injectors do not)")
    if habits:
        ev.append(
            Evidence(
                "stack_fingerprint",
                cat.evidence_text("stack_fingerprint", {"what": "Header habits: " + "; ".join(habits) + "."}),
                s.vantage,
                s.frame,
                0.2,
            )
        )


def _direction(case: Case, s: Sighting) -> int:
    rst = case.reads[s.vantage].rst  # in frame order
    i = int(np.searchsorted(rst["frame"], s.frame))
    return int(rst["direction"][i]) if i < len(rst) and int(rst["frame"][i]) == s.frame else 0


def _lone_middlebox(case: Case) -> Host | None:
    if "lone_middlebox" not in case.facts:  # hosts can number thousands on a big capture: look once
        boxes = [h for h in case.hosts.hosts if h.role == "firewall"]
        case.facts["lone_middlebox"] = boxes[0] if len(boxes) == 1 else None
    return case.facts["lone_middlebox"]


# ---------------------------------------------------------------------------------------------
# Cause
# ---------------------------------------------------------------------------------------------


@dataclass
class CauseFinding:
    code: str
    kind: str  # kernel | application | injected | unknown
    strength: float
    facts: dict[str, Any]
    evidence: list[Evidence]
    missing: str = ""
    story: Story | None = None  # the packet story the finding was read from


def _cause(case: Case, reset: Reset, origin: Origin) -> CauseFinding:
    by_v = {s.vantage: s for s in reset.seen_at}
    s = by_v.get(origin.best_vantage or "") or (reset.seen_at[0] if reset.seen_at else None)
    st = _story(case, reset, s.vantage, s) if s else None
    finding = _cause_from_story(case, reset, origin, s, st)
    finding.story = st
    return finding


def _cause_from_story(
    case: Case, reset: Reset, origin: Origin, s: Sighting | None, st: Story | None
) -> CauseFinding:
    sender_name = (
        origin.sender.name if origin.sender else (origin.claimed.name if origin.claimed else reset.src)
    )
    facts: dict[str, Any] = {
        "sender_host": sender_name,
        "sender_role": origin.sender.role if origin.sender else "unknown",
        "dst": reset.dst,
        "dport": reset.dport,
        "sport": reset.sport,
        "peer": reset.dst,
        "receiver": sender_name,
        "service": "the service",
    }
    ev: list[Evidence] = []
    if st is None:
        return CauseFinding(
            "unknown",
            "injected" if origin.forged else "unknown",
            0.3,
            {
                **facts,
                "missing": "the packets of this connection before the reset (the capture starts later or the "
                "connection was not tracked)",
            },
            ev,
            "the packets of this connection before the reset",
        )
    v, f = s.vantage, s.frame
    facts["idle"] = _human(st.gap_before)

    if origin.forged:
        return _cause_injected(case, reset, origin, st, facts, ev, v, f)

    # The stack answered a SYN: nothing listened.
    if st.answers == "syn":
        ev.append(
            Evidence(
                "answers_syn",
                cat.evidence_text(
                    "answers_syn",
                    {
                        "peer": reset.dst,
                        "answered": st.answered_frame,
                        "dst": reset.src,
                        "dport": reset.sport,
                    },
                ),
                v,
                f,
                0.9,
            )
        )
        return CauseFinding("no_listener", "kernel", 0.92 if st.reply_exact else 0.8, facts, ev)

    # Never accepted: RST right after the handshake with no data from the sender.
    if (
        st.established
        and not st.sender_is_orig
        and st.sender_data_before == 0
        and not st.rst_ack
        and st.answers in ("ack", "data")
        and st.since_handshake is not None
        and st.since_handshake < 1.0
        and not st.peer_sent_tls_hello
    ):
        ev.append(
            Evidence(
                "answers_handshake_ack",
                cat.evidence_text("answers_handshake_ack", {"ms": round(st.since_handshake * 1000, 1)}),
                v,
                f,
                0.8,
            )
        )
        return CauseFinding("backlog_overflow", "kernel", 0.8, facts, ev)

    # TLS: reset after the ClientHello, before the sender said anything.
    if (
        st.peer_sent_tls_hello
        and st.sender_data_before == 0
        and st.since_peer_request is not None
        and st.since_peer_request < 2.0
    ):
        ev.append(
            Evidence(
                "after_client_hello",
                cat.evidence_text(
                    "after_client_hello",
                    {
                        "peer": reset.dst,
                        "frame": st.answered_frame or "?",
                        "ms": round(st.since_peer_request * 1000, 1),
                    },
                ),
                v,
                f,
                0.8,
            )
        )
        facts.update(trigger="ClientHello", how="no response, connection reset")
        return CauseFinding("tls_handshake", "application" if st.rst_ack else "kernel", 0.8, facts, ev)

    # TLS spoken to a plain-text port: the client's ClientHello drew plain text back, and it gave up.
    if (
        st.sender_is_orig
        and (st.sender_first_head >> 16) == TLS_HANDSHAKE_HEAD
        and st.peer_first_head
        and not is_tls_record(st.peer_first_head)
    ):
        ev.append(
            Evidence(
                "after_client_hello",
                cat.evidence_text(
                    "after_client_hello",
                    {"peer": sender_name, "frame": "?", "ms": round(st.gap_before * 1000, 1)},
                ),
                v,
                f,
                0.7,
            )
        )
        facts.update(
            trigger="server's non-TLS answer",
            how="TLS ClientHello answered with plain text",
            peer=sender_name,
            sender_host=sender_name,
        )
        return CauseFinding("tls_handshake", "application" if st.rst_ack else "kernel", 0.75, facts, ev)

    # A kernel reply for a segment with no socket behind it (seq = the segment's ack, no ACK flag).
    if not st.rst_ack and st.answers in ("data", "ack", "fin") and st.reply_exact:
        what = {"data": "data", "ack": "ACK", "fin": "FIN"}[st.answers]
        ev.append(
            Evidence(
                "answers_segment_no_socket",
                cat.evidence_text(
                    "answers_segment_no_socket",
                    {"peer": reset.dst, "what": what, "answered": st.answered_frame, "sender": sender_name},
                ),
                v,
                f,
                0.8,
            )
        )
        if st.sender_fin_before:
            ev.append(
                Evidence(
                    "after_sender_fin",
                    cat.evidence_text(
                        "after_sender_fin",
                        {
                            "sender": sender_name,
                            "peer": reset.dst,
                            "what": what,
                            "idle": _human(st.peer_idle_before_trigger),
                        },
                    ),
                    v,
                    st.answered_frame,
                    0.6,
                )
            )
            if st.answers == "data" and not st.sender_is_orig and st.peer_idle_before_trigger >= IDLE_GAP:
                # The originator (a client or proxy pool) reused a connection the server had closed.
                facts["idle"] = _human(st.peer_idle_before_trigger)
                return CauseFinding("stale_reuse", "kernel", 0.85, facts, ev)
            if st.sender_is_orig and st.answers == "data" and round_timeout(st.sender_fin_delay):
                # It closed exactly a round time after its request: a timer (proxy_read_timeout, client timeout).
                ev.append(
                    Evidence(
                        "after_idle",
                        cat.evidence_text(
                            "after_idle",
                            {
                                "idle": _human(st.sender_fin_delay),
                                "waiting": "a response, then closed with FIN",
                            },
                        ),
                        v,
                        f,
                        0.6,
                    )
                )
                facts.update(
                    idle=_human(st.sender_fin_delay),
                    knob="proxy_read_timeout / timeout server / client timeout",
                )
                return CauseFinding(
                    "timeout", "kernel", 0.7, facts, ev, "the proxy's or client's log line for the timeout"
                )
            if st.sender_is_orig and st.answers == "data":
                # The originator gave up and closed (client abort, proxy timeout); the late response
                # found no socket. Logs tell which: a proxy's timeout line turns this into `timeout`.
                facts["how"] = "it had given up and closed its side; the late response found no socket"
                return CauseFinding(
                    "abortive_close",
                    "kernel",
                    0.6,
                    facts,
                    ev,
                    "why the originator closed first (proxy or client logs)",
                )
            facts["how"] = "it had closed its side; the peer's late segment found no socket"
            return CauseFinding(
                "abortive_close",
                "kernel",
                0.55,
                facts,
                ev,
                "which side's program closed first and why (proxy or application logs)",
            )
        facts["how"] = "no FIN was ever sent: the socket vanished (process or host restart, state flush)"
        return CauseFinding("state_lost", "kernel", 0.7, facts, ev)

    # An active reset from a socket: a program (or a proxy's timer) aborted the connection.
    if st.rst_ack:
        waiting = "a response from " + sender_name if not st.sender_is_orig else "the peer"
        if st.sender_is_orig:  # the requesting side: its own bytes are the request
            when = (
                "after the response had arrived"
                if st.peer_data_before
                else (
                    "after sending its request, before any response"
                    if st.sender_data_before
                    else "before sending anything"
                )
            )
        else:
            when = (
                "after reading the request"
                if st.peer_data_before and not st.sender_data_before
                else ("mid-response" if st.sender_data_before else "before any data")
            )
        ev.append(
            Evidence(
                "active_abort",
                cat.evidence_text("active_abort", {"sender": sender_name, "when": when}),
                v,
                f,
                0.6,
            )
        )
        role = origin.sender.role if origin.sender else "unknown"
        if (
            not st.sender_is_orig
            and st.established
            and not st.peer_data_before
            and not st.sender_data_before
            and st.since_handshake is not None
            and st.since_handshake < 0.2
            and role in ("proxy", "server")
        ):
            # Accepted, then reset at once with nothing said: a connection-level rule (tcp-request reject, ACL).
            facts.update(
                how=f"reset {_human(st.since_handshake)} after the handshake, before any data",
                rule="a connection-level reject rule",
            )
            return CauseFinding("policy_reject", "application", 0.7, facts, ev)
        if st.gap_before >= IDLE_GAP and role == "proxy":
            waiting = "the upstream's response" if st.peer_data_before else "the client"
            ev.append(
                Evidence(
                    "after_idle",
                    cat.evidence_text("after_idle", {"idle": _human(st.gap_before), "waiting": waiting}),
                    v,
                    f,
                    0.6,
                )
            )
            facts["knob"] = "proxy_read_timeout / timeout server / timeout client"
            return CauseFinding("timeout", "application", 0.75, facts, ev)
        if st.sender_data_before and not st.sender_is_orig:
            ev.append(
                Evidence(
                    "mid_response",
                    cat.evidence_text(
                        "mid_response", {"sender": sender_name, "bytes": st.sender_data_before}
                    ),
                    v,
                    f,
                    0.4,
                )
            )
        elif st.peer_data_before and not st.sender_is_orig:
            ev.append(
                Evidence(
                    "unread_request",
                    cat.evidence_text(
                        "unread_request",
                        {"sender": sender_name, "peer": reset.dst, "bytes": st.peer_data_before},
                    ),
                    v,
                    f,
                    0.4,
                )
            )
        facts["how"] = when
        if (
            st.sender_is_orig
            and st.sender_data_before
            and st.peer_data_before
            and s.context.get("ack_check") == "exact"
        ):
            # The request went out, the whole response came back and was acknowledged: nothing was lost.
            facts["how"] = "after a complete exchange: the whole response had arrived and was acknowledged"
            facts["advice"] = cat.AbortiveClose.advice_after_exchange
        return CauseFinding("abortive_close", "application", 0.72, facts, ev)

    return CauseFinding(
        "unknown",
        "unknown",
        0.3,
        {**facts, "missing": "a packet story that fits a known cause"},
        ev,
        "a packet story that fits a known cause (logs of the sender would tell)",
    )


# Reject rules in a firewall ruleset, by what they react to.
RULE_STATE = ("ct state invalid",)  # a packet of a flow the box has no state for
RULE_LIMITS = ("limit rate", "quota", "ct count", "meter", "over ")  # rate, byte and connection limits


# Port matches in a ruleset line: `tcp dport 443`, `sport 9002`, `dport { 80, 443 }` (negations excluded).
RULE_PORTS = re.compile(r"\b[sd]port\s+(?!!=)(\{[^}]*\}|\d+(?:-\d+)?)")


def _rule_fits(rule: dict[str, Any], *ports: int) -> bool:
    """A rule that names ports (source or destination) fits a connection only if it names one of its ports."""
    from resetlens.evidence.snapshots import rule_matches_port  # rulesets come with host snapshots only

    if not (rule_matches_port(rule, ports[0]) or rule_matches_port(rule, ports[1])):
        return False
    named: list[tuple[int, int]] = []
    for m in RULE_PORTS.finditer(str(rule.get("key") or rule["rule"])):
        for part in re.findall(r"\d+(?:-\d+)?", m.group(1)):
            lo, _, hi = part.partition("-")
            named.append((int(lo), int(hi or lo)))
    return not named or any(lo <= p <= hi for lo, hi in named for p in ports)


def _rule_text(rule: dict[str, Any]) -> str:
    """A ruleset line as quoted in a verdict: without its packet counters."""
    return " ".join(str(rule.get("key") or rule["rule"]).split())


def _fired_rules(case: Case, host: Host | None) -> list[dict[str, Any]]:
    """Reject-with-reset rules of `host` whose counters moved between the snapshots (or counted at all)."""
    snaps = case.facts.get("snapshots") or {}
    hs = snaps.get(host.name) if host else None
    if hs is None or hs.after is None:
        return []
    # Pair before/after by the rule's counter-free key (its text includes the counters).
    before = {r.get("key", r["rule"]): r.get("packets") for r in (hs.before.rejects if hs.before else [])}
    fired = []
    for rule in hs.after.rejects:
        n, prior = rule.get("packets"), before.get(rule.get("key", rule["rule"]))
        moved = (n or 0) - (prior or 0) if isinstance(prior, int) else (n or 0)
        if moved > 0:
            fired.append(rule)
    return fired


def _cause_injected(
    case: Case,
    reset: Reset,
    origin: Origin,
    st: Story,
    facts: dict[str, Any],
    ev: list[Evidence],
    v: str,
    f: int,
) -> CauseFinding:
    box = origin.sender.name if origin.sender else "a middlebox on the path"
    facts.update(sender_host=box, sender_role="middlebox")
    # Only rules that can match this connection explain it (a rule naming other ports does not).
    rules = [r for r in _fired_rules(case, origin.sender) if _rule_fits(r, reset.sport, reset.dport)]
    state_rules = [r for r in rules if any(k in r["rule"] for k in RULE_STATE)]
    other_rules = [r for r in rules if r not in state_rules]
    for r in rules[:3]:
        ev.append(
            Evidence(
                "host_state",
                cat.evidence_text(
                    "host_state", {"host": box, "what": f"rule hit between the snapshots: {r['rule']}"}
                ),
                None,
                None,
                0.6,
            )
        )
    if state_rules and not other_rules:
        facts["how"] = f"a segment of a flow it had no state for hit `{_rule_text(state_rules[0])}`"
        return CauseFinding("state_lost", "injected", 0.8, facts, ev)
    if st.answers in ("syn", "ack") and not st.peer_data_before:
        facts.update(
            how="connection attempt reset by a firewall rule (rate limit or ACL)",
            rule=_rule_text(other_rules[0]) if other_rules else "reject with tcp reset",
        )
        return CauseFinding("policy_reject", "injected", 0.85 if other_rules else 0.75, facts, ev)
    if st.peer_data_before or st.sender_data_before:
        if not other_rules and st.gap_before >= IDLE_GAP and st.answers in ("data", "ack", "fin"):
            facts["how"] = (
                f"a segment after {_human(st.peer_idle_before_trigger)} idle found no NAT/conntrack entry"
            )
            return CauseFinding(
                "state_lost",
                "injected",
                0.6,
                facts,
                ev,
                "conntrack statistics or the firewall's ruleset (lost entry, or a rule?)",
            )
        facts.update(
            how="mid-stream, after content passed (DPI, WAF or byte limit)",
            rule=_rule_text(other_rules[0]) if other_rules else "a content or quota rule",
        )
        return CauseFinding("policy_reject", "injected", 0.8 if other_rules else 0.7, facts, ev)
    facts.update(how="forged reset", rule=_rule_text(other_rules[0]) if other_rules else "?")
    return CauseFinding("policy_reject", "injected", 0.5, facts, ev, "the firewall's ruleset and logs")


# Log events that name a cause, and the sender roles they may speak for (None = any).
LOG_CAUSE: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "proxy_timeout": ("timeout", ("proxy",)),
    "upstream_timeout": ("timeout", ("proxy",)),
    "client_timeout": ("timeout", ("proxy",)),
    "policy_reject": ("policy_reject", ("proxy", "middlebox", "server")),
    "firewall_log": ("policy_reject", ("middlebox",)),
    "nft_reject_rule": ("policy_reject", ("middlebox",)),
    "tls_handshake_failed": ("tls_handshake", None),
    "app_tls_reset": ("tls_handshake", None),
    "listen_overflow": ("backlog_overflow", ("server", "proxy")),
    "abort_on_overflow": ("backlog_overflow", ("server", "proxy")),
    "conntrack_full": ("state_lost", ("middlebox",)),
    "conntrack_pressure": ("state_lost", ("middlebox",)),
}
# Lifecycle events: the sender's service went away or came back (restart, kill, OOM).
LIFECYCLE = {
    "unit_stopping",
    "unit_stopped",
    "unit_exited",
    "unit_failed",
    "unit_restart_scheduled",
    "unit_oom",
    "oom_kill",
    "oomd_kill",
    "unit_starting",
    "unit_started",
}
# Packet causes a log line may overrule: the packets alone left these open.
SOFT_CAUSES = {"abortive_close", "unknown", "state_lost", "stale_reuse"}


def _apply_logs(reset: Reset, role: str, finding: CauseFinding) -> CauseFinding:
    """Let correlated log lines confirm or sharpen the packet verdict; each line used becomes evidence."""
    for line in reset.logs:
        summary = line.text if len(line.text) <= 160 else line.text[:157] + "..."
        facts = {"kind": line.kind, "path": line.path, "line": line.line, "summary": summary}
        mapped = LOG_CAUSE.get(line.event)
        if line.event == "app_reset_sent":
            # A program saying it reset this connection: a middlebox's policy, or an endpoint's abort.
            mapped = (
                ("policy_reject", ("middlebox",))
                if role == "middlebox"
                else ("abortive_close", ("client", "server", "proxy"))
            )
            if role == "middlebox" and finding.facts.get("rule") in (None, "?", "a content or quota rule"):
                finding.facts["rule"] = f"the resets it logs in {line.path}"
        if line.event == "nft_reject_rule" and any(k in line.text for k in RULE_STATE):
            mapped = ("state_lost", ("middlebox",))  # a reject of INVALID packets: the box had lost the flow
        if mapped and (mapped[1] is None or role in mapped[1]):
            code = mapped[0]
            finding.evidence.append(
                Evidence("log_line", cat.evidence_text("log_line", facts), None, None, 0.7)
            )
            if code == finding.code:
                finding.strength = min(0.97, finding.strength + 0.15)
            elif finding.code in SOFT_CAUSES or (code == "timeout" and finding.code == "abortive_close"):
                finding.code = code
                finding.kind = (
                    "injected"
                    if finding.kind == "injected"
                    else ("kernel" if code in ("backlog_overflow", "state_lost") else "application")
                )
                finding.strength = max(finding.strength, 0.8)
                finding.missing = ""
        elif line.event in LIFECYCLE:
            finding.evidence.append(
                Evidence("log_line", cat.evidence_text("log_line", facts), None, None, 0.6)
            )
            if finding.code == "no_listener":
                finding.strength = min(0.97, finding.strength + 0.05)
                finding.facts["service"] = (
                    finding.facts.get("service", "the service") + " (it was restarting)"
                )
            elif finding.code in ("stale_reuse", "state_lost", "unknown") and finding.kind != "injected":
                finding.code, finding.kind, finding.strength = "state_lost", "kernel", 0.85
                finding.facts["how"] = f"the service restarted ({summary}) and its sockets went with it"
                finding.missing = ""
        elif line.event:
            finding.evidence.append(
                Evidence("log_line", cat.evidence_text("log_line", facts), None, None, 0.3)
            )
    return finding


def _human(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


# ---------------------------------------------------------------------------------------------
# Verdict
# ---------------------------------------------------------------------------------------------


def _effective(reset: Reset, story: Story | None) -> tuple[bool, str]:
    """A RST the receiver could not have accepted: a bad checksum everywhere it was seen (offload makes
    checksums look bad on captures taken on the sending host or a veth, so that alone proves nothing)
    and the receiver carrying on with data as if nothing happened."""
    bad = [s for s in reset.seen_at if s.context.get("checksum") == "bad"]
    if bad and len(bad) == len(reset.seen_at) and story is not None and story.peer_data_after:
        return (
            False,
            f"bad TCP checksum, and the receiver kept sending data (frame {story.peer_data_after[0]})",
        )
    return True, ""


def _verdict(case: Case, reset: Reset) -> None:
    origin = _origin(case, reset)
    finding = _cause(case, reset, origin)
    effective, why = _effective(reset, finding.story)
    if reset.logs:
        role = "middlebox" if origin.forged else sender_role(origin.claimed)
        finding = _apply_logs(reset, role, finding)
    reset.evidence = origin.evidence + finding.evidence
    reset.effective = effective
    if origin.forged:
        role, kind = "middlebox", "injected"
        host = origin.sender.name if origin.sender else None
    else:
        sender = origin.claimed
        role = sender_role(sender) if sender else "unknown"
        kind = finding.kind if finding.kind != "injected" else "unknown"
        host = sender.name if sender else None
        if sender is None:
            role = "unknown"
    reset.sender = Sender(role=role, host=host, kind=kind)
    code = finding.code
    if not effective:
        reset.evidence.append(
            Evidence("not_effective", cat.evidence_text("not_effective", {"why": why}), None, None, 1.0)
        )
        code = "unknown"
        finding.facts["missing"] = f"nothing: this RST was not effective ({why})"
    reset.cause = code
    conf = origin.strength * finding.strength
    if code == "unknown":
        conf = min(conf, 0.4)
    reset.confidence = round(float(conf), 2)
    cause_cls = cat.cause(code)
    facts = finding.facts
    facts.setdefault("missing", finding.missing or "?")
    reset.explanation = cause_cls.explain(facts)
    reset.decision = cause_cls.decide(facts)
    if finding.missing and code != "unknown":
        reset.evidence.append(
            Evidence(
                "missing",
                cat.evidence_text("missing", {"what": f"Would make this firmer: {finding.missing}."}),
                None,
                None,
                0.0,
                missing=True,
            )
        )
    reset.display_filter = display_filter(reset)


def _stitch_legs(analysis: Analysis, case: Case) -> dict[str, list[Evidence]]:
    """Hop stitching: tie each reset on a proxied connection to the proxy's other leg, and give it the
    proxy's log lines about that client connection (access-log client port, then the error log's
    connection number), which time alone cannot place. Returns the leg evidence per reset id."""
    from resetlens.vantage.stitch import describe, stitch

    legs = stitch(analysis, case.hosts.by_vantage)
    if not legs:
        return {}
    index: dict[tuple, tuple[str, Any]] = {}
    for leg in legs:
        for side, conn in (("front", leg.front), ("back", leg.back)):
            index[(conn.orig_h, conn.orig_p, conn.resp_h, conn.resp_p)] = (side, leg)
    out: dict[str, list[Evidence]] = defaultdict(list)
    used: set[int] = set()
    for r in analysis.resets:
        hit = None
        for s in r.seen_at:
            hit = index.get((s.src, s.sport, s.dst, s.dport)) or index.get((s.dst, s.dport, s.src, s.sport))
            if hit:
                break
        if not hit:
            continue
        side, leg = hit
        other = leg.back if side == "front" else leg.front
        r.flow = f"{leg.front.uid}+{leg.back.uid}"
        out[r.id].append(
            Evidence(
                "other_leg",
                cat.evidence_text(
                    "other_leg",
                    {
                        "proxy": leg.proxy,
                        "this": side,
                        "other": "back" if side == "front" else "front",
                        "desc": describe(other),
                        "ms": round(leg.delay * 1000, 1),
                    },
                ),
                other.vantage,
                other.first_frame,
                0.3,
            )
        )
        for n, line in _leg_lines(analysis, leg.front):
            if all((x.path, x.line) != (line.path, line.line) for x in r.logs):
                line.match = f"proxy leg: client port {leg.front.orig_p}"
                r.logs.append(line)
                used.add(n)
    if used:
        analysis.context_logs = [x for n, x in enumerate(analysis.context_logs) if n not in used]
    return out


def _leg_lines(analysis: Analysis, front: Any) -> list[tuple[int, Any]]:
    """Context log lines about one client connection of a proxy: by client address and port, and the nginx
    error lines sharing those access lines' connection number."""
    port, addr = front.orig_p, front.orig_h
    found = []
    for n, x in enumerate(analysis.context_logs):
        f = x.fields
        if (f.get("remote_port") == port and f.get("remote_addr", addr) == addr) or f.get(
            "client_port"
        ) == port:
            found.append((n, x))
    conns = {x.fields.get("connection") for _, x in found if x.kind == "nginx-access"} - {None}
    if conns:
        found += [
            (n, x)
            for n, x in enumerate(analysis.context_logs)
            if x.kind == "nginx-error" and x.fields.get("connection") in conns
        ]
    return found


def _shared_device(analysis: Analysis, case: Case) -> None:
    """RSTs claiming different sources but carrying consecutive IPv4 IDs and one TTL at a vantage come from
    one device: if one of them is injected, so are the others (unless their sender's capture shows them)."""
    by_vantage: dict[str, list[tuple[Sighting, Reset]]] = defaultdict(list)
    for r in analysis.resets:
        for s in r.seen_at:
            if s.ip_id:
                by_vantage[s.vantage].append((s, r))
    for items in by_vantage.values():
        items.sort(key=lambda x: x[0].ts)
        for (sa, ra), (sb, rb) in itertools.pairwise(items):
            if ra is rb or sa.src == sb.src or sa.ttl != sb.ttl or sb.ts - sa.ts > 60:
                continue
            if not 0 < (int(sb.ip_id) - int(sa.ip_id)) % 65536 <= 10:
                continue
            for x, y, sx in ((ra, rb, sb), (rb, ra, sa)):
                x.evidence.append(
                    Evidence(
                        "same_device_ipid",
                        cat.evidence_text(
                            "same_device_ipid",
                            {
                                "other": y.id,
                                "other_src": sx.src,
                                "ids": f"{sa.ip_id}, {sb.ip_id}",
                                "ttl": sa.ttl,
                            },
                        ),
                        sx.vantage,
                        sx.frame,
                        0.7,
                    )
                )
            proven = {r.id for r in (ra, rb) if any(e.code == "seen_leaving_sender" for e in r.evidence)}
            kinds = {ra.sender.kind, rb.sender.kind}
            if "injected" in kinds:
                src = ra if ra.sender.kind == "injected" else rb
                for r in (ra, rb):
                    if r.sender.kind != "injected" and r.id not in proven:
                        r.sender = Sender("middlebox", src.sender.host, "injected")
                        r.cause = src.cause
                        r.confidence = round(min(src.confidence, 0.6), 2)
                        r.decision = src.decision
                        r.explanation = src.explanation


def _inherit_follow_ups(analysis: Analysis) -> None:
    """A RST answering the peer's late segment after the sender's own earlier reset of the same connection
    (its socket is gone now) shares the first reset's cause; alone it would look like 'no socket'."""
    first_by_conn: dict[tuple[str, str, str, int], Reset] = {}
    for r in sorted(analysis.resets, key=lambda x: x.ts):
        if r.sender.kind == "injected":
            continue
        key = next(((s.vantage, s.connection, r.src, r.sport) for s in r.seen_at if s.connection), None)
        if key is None:
            continue
        first = first_by_conn.setdefault(key, r)
        if first is r:
            continue
        if r.cause in ("unknown", "state_lost", "no_listener") and first.cause != "unknown":
            r.cause = first.cause
            r.sender.kind = "kernel"
            r.confidence = round(min(first.confidence, 0.9), 2)
            r.decision = first.decision
            r.explanation = first.explanation
            r.evidence.append(
                Evidence(
                    "follow_up_reset",
                    cat.evidence_text(
                        "follow_up_reset",
                        {"sender": r.sender.host or r.src, "first": first.id, "peer": r.dst},
                    ),
                    None,
                    None,
                    0.7,
                )
            )


def display_filter(reset: Reset) -> str:
    fam = "ipv6" if ":" in reset.src else "ip"
    return (
        f"{fam}.addr=={reset.src} && {fam}.addr=={reset.dst} && tcp.port=={reset.sport} && "
        f"tcp.port=={reset.dport}"
    )


def _mark_both_directions(analysis: Analysis) -> None:
    """Injected RSTs towards both ends of one connection within a few ms: a DPI box resetting both sides."""
    injected = [r for r in analysis.resets if r.sender.kind == "injected"]
    by_tuple: dict[tuple, list[Reset]] = defaultdict(list)  # (src, sport, dst, dport) -> its resets
    for r in injected:
        by_tuple[(r.src, r.sport, r.dst, r.dport)].append(r)
    for a in injected:
        for b in by_tuple.get((a.dst, a.dport, a.src, a.sport), []):  # the other direction only
            if a is b or abs(a.ts - b.ts) > 0.05:
                continue
            a.evidence.append(
                Evidence(
                    "both_directions_reset",
                    cat.evidence_text(
                        "both_directions_reset",
                        {"window": round(abs(a.ts - b.ts) * 1000, 1), "other": b.id},
                    ),
                    None,
                    None,
                    0.5,
                )
            )
            # One box reset both ends: both resets share the better-evidenced remedy.
            if "a content or quota rule" in a.decision and "a content or quota rule" not in b.decision:
                a.decision, a.explanation = b.decision, b.explanation


# ---------------------------------------------------------------------------------------------
# Incidents and summary
# ---------------------------------------------------------------------------------------------


def incidents(resets: list[Reset]) -> list[Incident]:
    groups: dict[tuple, list[Reset]] = defaultdict(list)
    for r in sorted(resets, key=lambda r: r.ts):
        # Same sender, cause and remedy (two firewall rules are two incidents), then split by time.
        groups[(r.sender.role, r.sender.host, r.sender.kind, r.cause, r.decision)].append(r)
    out: list[Incident] = []
    for (role, host, kind, cause, _), rs in groups.items():
        cluster: list[Reset] = []
        for r in rs:
            if cluster and r.ts - cluster[-1].ts > INCIDENT_GAP:
                out.append(_incident(len(out) + 1, cluster, role, host, kind, cause))
                cluster = []
            cluster.append(r)
        if cluster:
            out.append(_incident(len(out) + 1, cluster, role, host, kind, cause))
    out.sort(key=lambda i: (-len(i.resets), i.first_ts))
    by_id = {r.id: r for r in resets}
    for n, inc in enumerate(out, 1):
        inc.id = f"I{n}"
        for rid in inc.resets:
            by_id[rid].incident = inc.id
    return out


def _incident(n: int, rs: list[Reset], role: str, host: str | None, kind: str, cause: str) -> Incident:
    c = cat.cause(cause)
    who = f"{host} ({role}, {kind})" if host else f"{role} ({kind})"
    summary = f"{len(rs)} reset(s) {c.title.lower()} — sent by {who}"
    return Incident(
        id=f"I{n}",
        cause=cause,
        sender=Sender(role, host, kind),
        first_ts=rs[0].ts,
        last_ts=rs[-1].ts,
        resets=[r.id for r in rs],
        confidence=_mean_confidence(rs),
        decision=rs[0].decision,
        summary=summary,
    )


def _mean_confidence(rs: list[Reset]) -> float:
    # Most incidents hold one reset: its confidence is the mean, without numpy's per-call cost.
    if len(rs) == 1:
        return round(float(rs[0].confidence), 2)
    return round(float(np.mean([r.confidence for r in rs])), 2)


def summarize(analysis: Analysis) -> dict[str, Any]:
    rs = analysis.resets
    by_role = Counter(r.sender.role for r in rs)
    by_cause = Counter(r.cause for r in rs)
    by_kind = Counter(r.sender.kind for r in rs)
    return {
        "resets": len(rs),
        "by_role": dict(by_role),
        "by_cause": dict(by_cause),
        "by_kind": dict(by_kind),
        "injected": by_kind.get("injected", 0),
        "verdict": verdict_paragraph(analysis),
    }


def verdict_paragraph(analysis: Analysis) -> str:
    rs = analysis.resets
    nv = len(analysis.captures)
    if not rs:
        return (
            f"No TCP reset in {nv} capture(s) "
            f"({sum(c.packets for c in analysis.captures)} packets): nothing to blame."
        )
    parts = [f"{len(rs)} reset(s) seen across {nv} capture(s)."]
    for inc in analysis.incidents[:3]:
        c = cat.cause(inc.cause)
        who = inc.sender.host or inc.sender.role
        parts.append(
            f"{len(inc.resets)} {'was' if len(inc.resets) == 1 else 'were'} sent by {who} "
            f"({inc.sender.role}, {inc.sender.kind}): {c.title.lower()} "
            f"(confidence {inc.confidence:.0%}). {inc.decision}"
        )
    if len(analysis.incidents) > 3:
        parts.append(f"{len(analysis.incidents) - 3} smaller incident(s) follow in the details.")
    unknown = sum(1 for r in rs if r.cause == "unknown")
    if unknown:
        parts.append(f"{unknown} reset(s) stay unexplained; their evidence lists say what is missing.")
    return " ".join(parts)
