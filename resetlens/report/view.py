"""What every reporter shows, derived once from the results model: verdict, incidents, filters, checklist.

The HTML, Markdown and terminal writers read these plain values; none of them re-derives a verdict
or groups resets on its own, so the three formats always agree.  Nothing here escapes text: each
writer escapes for its own output (HTML autoescape, Markdown escaping, rich markup escaping).
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from resetlens.blame import catalog
from resetlens.evidence import events as log_events
from resetlens.model import ROLES, Analysis, Incident, LogLine, Reset, Sender

# Resets closer than this (seconds) with the same sender and cause fall into one incident.
INCIDENT_GAP = 60.0
# Colour of each sender role, in every format that has colour (HTML timeline, terminal).
ROLE_COLOURS = {
    "client": "#1f77b4",
    "proxy": "#8e44ad",
    "server": "#2ca02c",
    "middlebox": "#d62728",
    "unknown": "#7f7f7f",
}
# Log kinds written by a proxy (the checklist's "proxy log lines").
PROXY_LOG_KINDS = ("nginx-error", "nginx-access", "haproxy", "envoy", "traefik", "caddy")
# Log kinds written by the hosts themselves: journals, syslog, kernel, host snapshots ("host").
HOST_LOG_KINDS = ("journald-json", "journald", "syslog", "kmsg", "host")
# Log events that show a process stop, kill or restart, or an overloaded host.
RESTART_EVENTS = frozenset(
    {code for code, e in log_events.EVENTS.items() if e.signal == "lifecycle"}
    | {
        log_events.LISTEN_OVERFLOW,
        log_events.ABORT_ON_OVERFLOW,
        log_events.SYN_FLOOD,
        log_events.ORPHAN_SOCKETS,
        log_events.TCP_MEM_PRESSURE,
        log_events.PROXY_RESOURCE,
    }
)
# Log events that show conntrack, NAT or port state.
STATE_EVENTS = frozenset({log_events.CONNTRACK_FULL, log_events.CONNTRACK_PRESSURE})
# Log events that name a configuration setting.
KNOB_EVENTS = frozenset({log_events.ABORT_ON_OVERFLOW, log_events.NFT_REJECT_RULE})
# Host-snapshot sysctls that are the checklist's conntrack and port-range state.
STATE_SYSCTLS = (
    "net.ipv4.ip_local_port_range",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_count",
    "net.netfilter.nf_conntrack_tcp_loose",
)
# Host-snapshot sysctls that are settings implicated in resets when set this way.
KNOB_SYSCTLS = {"net.ipv4.tcp_abort_on_overflow": "1", "net.netfilter.nf_conntrack_tcp_loose": "0"}


@dataclass(frozen=True)
class Words:
    """Whole words in evidence or log text; `hints` are cheap substrings any match contains (a fast pre-check)."""

    pattern: re.Pattern[str]
    hints: tuple[str, ...]

    def search(self, text: str) -> bool:
        low = text.lower()
        return any(h in low for h in self.hints) and self.pattern.search(text) is not None


# Words that mean restart/overload, host state, a setting, or a NAT.
RESTART_RE = Words(
    re.compile(r"(?i)\b(re-?start\w*|oom\w*|killed|exited|crash\w*|overflow\w*|backlog|somaxconn)\b"),
    ("start", "oom", "killed", "exited", "crash", "overflow", "backlog", "somaxconn"),
)
STATE_RE = Words(
    re.compile(r"(?i)\b(conntrack\w*|nf_conntrack\w*|ip_local_port_range|port[ _-]range|ephemeral ports?)\b"),
    ("conntrack", "port", "range"),
)
KNOB_RE = Words(
    re.compile(
        r"(?i)\b(\w+_timeout\w*|timeout_\w+|timeout \w+|keepalive_\w+|keep-?alive timeout|so_linger|linger\w*|"
        r"somaxconn|tcp_abort_on_overflow|nf_conntrack_\w+|sysctl|listen backlog)\b"
    ),
    (
        "timeout",
        "keepalive",
        "keep-alive",
        "linger",
        "somaxconn",
        "overflow",
        "conntrack",
        "sysctl",
        "backlog",
    ),
)
NAT_RE = Words(re.compile(r"(?i)\b(s?nat|dnat|masquerad\w*|translat\w*)\b"), ("nat", "masquerad", "translat"))
# Evidence codes (blame.catalog) that carry the facts of a checklist item.
NAT_CODES = ("nat_mapping",)
# Configuration knobs usually implicated by each cause (shown when the evidence names none).
CAUSE_KNOBS: dict[str, tuple[str, ...]] = {
    "no_listener": ("service readiness / listen port", "drain before restart"),
    "abortive_close": ("SO_LINGER", "lingering_close (nginx)", "option nolinger (HAProxy)"),
    "stale_reuse": (
        "keepalive_timeout (nginx)",
        "timeout http-keep-alive / timeout server (HAProxy)",
        "client pool idle timeout",
    ),
    "state_lost": ("net.netfilter.nf_conntrack_tcp_timeout_established", "TCP keepalive interval"),
    "timeout": (
        "proxy_read_timeout / proxy_send_timeout (nginx)",
        "timeout server / timeout client (HAProxy)",
        "reset_timedout_connection (nginx)",
    ),
    "policy_reject": (
        "firewall REJECT rule",
        "limit_conn / limit_req (nginx)",
        "http-request reject (HAProxy)",
    ),
    "tls_handshake": ("ssl_server_name / SNI", "ssl_protocols / ciphers"),
    "backlog_overflow": ("net.core.somaxconn", "listen backlog", "net.ipv4.tcp_abort_on_overflow"),
}


def fmt_ts(ts: float | None, *, date: bool = True) -> str:
    """UTC wall time of a reference-clock timestamp ('' when unknown)."""
    if ts is None:
        return ""
    try:
        d = datetime.fromtimestamp(float(ts), UTC)
    except (OverflowError, OSError, ValueError):
        return str(ts)
    return d.strftime("%Y-%m-%d %H:%M:%S.%f" if date else "%H:%M:%S.%f")[:-3]


def fmt_offset(offset: float | None, error: float | None) -> str:
    if offset is None:
        return ""
    text = f"{offset:+.6f} s"
    if error is not None:
        text += f" ± {error:.6f}"
    return text


def endpoint(addr: str, port: int) -> str:
    """addr:port, with IPv6 addresses bracketed as in URLs."""
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word if n == 1 else (words or word + 's')}"


def cause_title(code: str) -> str:
    cls = catalog.cause(code)
    return cls.title if cls.code == code else code


def sender_text(sender: Sender) -> str:
    """'the server 10.0.0.5 (kernel)' style phrase."""
    who = f"the {sender.role}" if sender.role != "unknown" else "an unknown sender"
    if sender.host and sender.host != sender.role:
        who += f" {sender.host}"
    if sender.kind and sender.kind != "unknown":
        who += f" ({sender.kind})"
    return who


def display_filter(reset: Reset) -> str:
    """Wireshark display filter isolating the reset's flow (the pipeline's, else built from the 4-tuple)."""
    if reset.display_filter:
        return reset.display_filter
    try:
        v6 = ipaddress.ip_address(reset.src).version == 6 or ipaddress.ip_address(reset.dst).version == 6
    except ValueError:
        v6 = ":" in reset.src or ":" in reset.dst
    field_name = "ipv6.addr" if v6 else "ip.addr"
    return (
        f"{field_name}=={reset.src} && {field_name}=={reset.dst} && "
        f"tcp.port=={reset.sport} && tcp.port=={reset.dport}"
    )


def counts(analysis: Analysis) -> dict[str, Counter[str]]:
    """Resets by sender role, cause and sender kind (always from the resets themselves)."""
    return {
        "role": Counter(r.sender.role for r in analysis.resets),
        "cause": Counter(r.cause for r in analysis.resets),
        "kind": Counter(r.sender.kind for r in analysis.resets),
    }


def incidents(analysis: Analysis) -> list[Incident]:
    """The analysis's incidents, else resets grouped by (role, host, cause) and INCIDENT_GAP clusters."""
    if analysis.incidents:
        return sorted(analysis.incidents, key=lambda i: (-len(i.resets), i.first_ts))
    groups: dict[tuple[str, str, str], list[Reset]] = {}
    for r in sorted(analysis.resets, key=lambda r: r.ts):
        groups.setdefault((r.sender.role, r.sender.host or "", r.cause), []).append(r)
    clusters: list[list[Reset]] = []
    for members in groups.values():
        current = [members[0]]
        for r in members[1:]:
            if r.ts - current[-1].ts > INCIDENT_GAP:
                clusters.append(current)
                current = []
            current.append(r)
        clusters.append(current)
    clusters.sort(key=lambda c: (-len(c), c[0].ts))
    return [_incident_of(f"I{n}", c) for n, c in enumerate(clusters, 1)]


def _incident_of(ident: str, members: list[Reset]) -> Incident:
    first = members[0]
    kinds = Counter(r.sender.kind for r in members)
    sender = Sender(role=first.sender.role, host=first.sender.host, kind=kinds.most_common(1)[0][0])
    decision = next((r.decision for r in members if r.decision), "") or catalog.cause(first.cause).decide({})
    summary = (
        f"{plural(len(members), 'reset')} sent by {sender_text(sender)}: {cause_title(first.cause)}, "
        f"{fmt_ts(first.ts)} to {fmt_ts(members[-1].ts, date=False)} UTC."
    )
    return Incident(
        id=ident,
        cause=first.cause,
        sender=sender,
        first_ts=first.ts,
        last_ts=members[-1].ts,
        resets=[r.id for r in members],
        confidence=sum(r.confidence for r in members) / len(members),
        decision=decision,
        summary=summary,
    )


def pick_resets(analysis: Analysis, groups: list[Incident], per_incident: int, limit: int) -> list[Reset]:
    """Resets worth a section of their own: a few of every incident (largest first), then the rest by time."""
    by_id = {r.id: r for r in analysis.resets}
    chosen: dict[str, Reset] = {}
    for inc in groups:
        for rid in inc.resets[:per_incident]:
            if rid in by_id and len(chosen) < limit:
                chosen.setdefault(rid, by_id[rid])
    for r in sorted(analysis.resets, key=lambda r: r.ts):
        if len(chosen) >= limit:
            break
        chosen.setdefault(r.id, r)
    return list(chosen.values())


def verdict(analysis: Analysis, groups: list[Incident] | None = None) -> str:
    """The one-paragraph verdict: the pipeline's when it wrote one, else built from the incidents."""
    given = analysis.summary.get("verdict") if isinstance(analysis.summary, dict) else None
    if isinstance(given, str) and given.strip():
        return given.strip()
    resets = analysis.resets
    vantages = len(analysis.captures)
    if not resets:
        return f"No TCP reset was found in {plural(vantages, 'capture')}" + (
            f" ({plural(sum(c.packets for c in analysis.captures), 'packet')})." if vantages else "."
        )
    groups = incidents(analysis) if groups is None else groups
    parts = [f"{plural(len(resets), 'reset')} seen across {plural(vantages, 'vantage point')}."]
    for inc in groups[:3]:
        parts.append(
            f"{len(inc.resets)} sent by {sender_text(inc.sender)}: {cause_title(inc.cause).lower()} "
            f"(confidence {inc.confidence:.0%}); fix: {inc.decision}"
        )
    if len(groups) > 3:
        rest = sum(len(i.resets) for i in groups[3:])
        parts.append(f"{plural(rest, 'more reset')} in {plural(len(groups) - 3, 'smaller incident')}.")
    undecided = sum(1 for r in resets if r.cause == "unknown" or r.sender.role == "unknown")
    if undecided:
        parts.append(f"{undecided} could not be fully attributed: see what is missing below.")
    return " ".join(parts)


def all_logs(analysis: Analysis) -> list[tuple[LogLine, str | None]]:
    """Every log line in the analysis with the reset it is tied to (None for context lines)."""
    out: list[tuple[LogLine, str | None]] = [(x, r.id) for r in analysis.resets for x in r.logs]
    out += [(x, None) for x in analysis.context_logs]
    return out


def log_lanes(analysis: Analysis) -> list[tuple[str, str]]:
    """(path, label) of each log source, in the analysis's order, then any other path met in log lines."""
    lanes: dict[str, str] = {}
    for src in analysis.log_sources:
        path = str(src.get("path", ""))
        lanes.setdefault(path, f"{src.get('kind', 'log')}: {path.rsplit('/', 1)[-1]}")
    for line, _ in all_logs(analysis):
        lanes.setdefault(line.path, f"{line.kind}: {line.path.rsplit('/', 1)[-1]}")
    return list(lanes.items())


# ---------------------------------------------------------------------------------------------
# The checklist of a defensible incident report, each item ticked from the analysis or said missing.
# ---------------------------------------------------------------------------------------------

# Checklist statuses: found in the analysis / looked and nothing there / the input to decide was not given.
PRESENT, NONE_FOUND, MISSING = "present", "none found", "missing"


@dataclass
class CheckItem:
    key: str
    title: str
    status: str  # PRESENT | NONE_FOUND | MISSING
    summary: str  # one plain sentence
    details: list[str] = field(default_factory=list)  # supporting lines (hostile text: escape on output)


def _scan_evidence(
    analysis: Analysis, wanted: dict[str, tuple[Words, tuple[str, ...]]], limit: int = 8
) -> dict[str, list[str]]:
    """One pass over all evidence: for each item of `wanted`, up to `limit` 'R1: text' lines whose code is
    one of its codes or whose text has its words (one combined pre-check keeps 10 k resets fast)."""
    out: dict[str, list[str]] = {key: [] for key in wanted}
    codes = {c for _, cs in wanted.values() for c in cs}
    hints = tuple(dict.fromkeys(h for words, _ in wanted.values() for h in words.hints))
    hinted: dict[str, bool] = {}  # text -> has any hint (evidence texts repeat: ~40 % on a big capture)
    for r in analysis.resets:
        for e in r.evidence:
            if e.missing:
                continue
            if e.code not in codes:
                has = hinted.get(e.text)
                if has is None:
                    has = hinted[e.text] = _has_any(e.text.lower(), hints)
                if not has:
                    continue
            for key, (words, cs) in wanted.items():
                if len(out[key]) < limit and (e.code in cs or words.search(e.text)):
                    out[key].append(f"{r.id}: {e.text}")
        if all(len(v) >= limit for v in out.values()):
            break
    return out


def _has_any(text: str, parts: tuple[str, ...]) -> bool:
    """Whether any of the substrings occurs (a plain loop of `in`: faster than one alternation regex)."""
    for part in parts:
        if part in text:
            return True
    return False


def _log_lines(
    logs: list[tuple[LogLine, str | None]],
    kinds: tuple[str, ...],
    events: frozenset[str] = frozenset(),
    pattern: Words | None = None,
    limit: int = 8,
    tied_only: bool = False,
) -> list[str]:
    """Log lines of these kinds (with one of these events, or text matching the pattern, when given),
    lines stating a close, reset, timeout or restart before plain request lines."""
    found: list[tuple[LogLine, str | None]] = []
    for line, rid in logs:
        if (tied_only and rid is None) or line.kind not in kinds:
            continue
        if (events or pattern) and not (line.event in events or (pattern and pattern.search(line.text))):
            continue
        found.append((line, rid))
    found.sort(key=lambda p: _plain_event(p[0].event))
    return [f"{rid + ': ' if rid else ''}{line.path}:{line.line}: {line.text}" for line, rid in found[:limit]]


def _plain_event(code: str) -> bool:
    """True for a log event that says nothing about a close (a completed request, an info line)."""
    event = log_events.EVENTS.get(code)
    return event is None or event.signal == "info"


def _snapshot_sysctls(analysis: Analysis) -> list[tuple[str, str, str]]:
    """(host, sysctl, value) recorded by host snapshots (log sources of kind 'host')."""
    out: list[tuple[str, str, str]] = []
    for src in analysis.log_sources:
        summary = src.get("summary")
        sysctl = summary.get("sysctl") if isinstance(summary, dict) else None
        if src.get("kind") == "host" and isinstance(sysctl, dict):
            host = str(src.get("host") or src.get("path", ""))
            out += [(host, str(k), str(v)) for k, v in sysctl.items()]
    return out


def checklist(analysis: Analysis, snippets: dict[tuple[str, str], str] | None = None) -> list[CheckItem]:
    """The defensible incident report's checklist, filled from the evidence."""
    items: list[CheckItem] = []
    resets = analysis.resets
    source_kinds = {str(s.get("kind", "")) for s in analysis.log_sources}
    logs = all_logs(analysis)
    source_kinds |= {x.kind for x, _ in logs}
    found = _scan_evidence(
        analysis,
        {
            "nat": (NAT_RE, NAT_CODES),
            "restart": (RESTART_RE, ()),
            "state": (STATE_RE, ()),
            "knob": (KNOB_RE, ()),
        },
    )

    # 1. the reset captured at two vantage points (and its pcap snippets)
    multi = [r for r in resets if len({s.vantage for s in r.seen_at}) >= 2]
    if not resets:
        items.append(CheckItem("two_vantages", "pcap at two vantage points", NONE_FOUND, "No reset to show."))
    elif multi:
        details = [f"{r.id}: seen at {', '.join(s.vantage for s in r.seen_at)}" for r in multi[:8]]
        if snippets:
            details.append(f"{plural(len(snippets), 'pcap snippet')} linked from the resets below.")
        items.append(
            CheckItem(
                "two_vantages",
                "pcap at two vantage points",
                PRESENT,
                f"{len(multi)} of {plural(len(resets), 'reset')} captured at two or more vantage points.",
                details,
            )
        )
    else:
        status = MISSING if len(analysis.captures) < 2 else NONE_FOUND
        why = (
            "Only one capture was supplied: a second one, near the other end, is needed to tell who sent the resets."
            if len(analysis.captures) < 2
            else "Every reset was seen at one vantage only (absent from the others: that itself is evidence)."
        )
        items.append(CheckItem("two_vantages", "pcap at two vantage points", status, why))

    # 2. the 4-tuples and any NAT mapping between vantages
    translated = []
    for r in resets:
        tuples = {(s.src, s.sport, s.dst, s.dport) for s in r.seen_at if s.src}
        if len(tuples) > 1:
            translated.append(
                f"{r.id}: "
                + " | ".join(
                    f"{s.vantage} {endpoint(s.src, s.sport)} -> {endpoint(s.dst, s.dport)}" for s in r.seen_at
                )
            )
    nat_evidence = found["nat"]
    if not resets:
        items.append(CheckItem("tuples", "4-tuples and NAT mapping", NONE_FOUND, "No reset to show."))
    else:
        details = [f"{r.id}: {endpoint(r.src, r.sport)} -> {endpoint(r.dst, r.dport)}" for r in resets[:5]]
        if translated or nat_evidence:
            summary = "4-tuples of every reset; " + (
                f"address translation mapped for {plural(len(translated), 'reset')}."
                if translated
                else "the evidence names a NAT on the path."
            )
            items.append(
                CheckItem(
                    "tuples",
                    "4-tuples and NAT mapping",
                    PRESENT,
                    summary,
                    translated[:8] + nat_evidence + details,
                )
            )
        elif len(analysis.captures) >= 2:
            summary = (
                "4-tuples of every reset; the addresses are the same at every vantage (no NAT between them)."
            )
            items.append(CheckItem("tuples", "4-tuples and NAT mapping", PRESENT, summary, details))
        else:
            summary = (
                "4-tuples known; the NAT mapping needs a capture on the other side of the translating box."
            )
            items.append(CheckItem("tuples", "4-tuples and NAT mapping", MISSING, summary, details))

    # 3. proxy log lines
    proxy_lines = _log_lines(logs, PROXY_LOG_KINDS, tied_only=True)
    if proxy_lines:
        items.append(
            CheckItem(
                "proxy_logs", "proxy log lines", PRESENT, "Proxy log lines tied to the resets:", proxy_lines
            )
        )
    elif source_kinds & set(PROXY_LOG_KINDS):
        items.append(
            CheckItem(
                "proxy_logs", "proxy log lines", NONE_FOUND, "Proxy logs were read; no line matched a reset."
            )
        )
    else:
        proxies = any(h.role == "proxy" for h in analysis.hosts) or any(
            r.sender.role == "proxy" for r in resets
        )
        items.append(
            CheckItem(
                "proxy_logs",
                "proxy log lines",
                MISSING,
                "No proxy log (nginx, HAProxy, Envoy) was supplied"
                + (": add the proxy's error and access logs." if proxies else "."),
            )
        )

    # 4. restart / overload evidence
    restart = _log_lines(logs, HOST_LOG_KINDS, RESTART_EVENTS, RESTART_RE) + found["restart"]
    if restart:
        items.append(CheckItem("restart", "restart or overload evidence", PRESENT, "Found:", restart))
    elif source_kinds & set(HOST_LOG_KINDS):
        items.append(
            CheckItem(
                "restart",
                "restart or overload evidence",
                NONE_FOUND,
                "Host logs were read: no restart, kill or overload near the resets.",
            )
        )
    else:
        items.append(
            CheckItem(
                "restart",
                "restart or overload evidence",
                MISSING,
                "No journald or syslog export from the hosts: restarts and OOM kills cannot be ruled out.",
            )
        )

    # 5. conntrack and port-range state
    sysctls = _snapshot_sysctls(analysis)
    state = [f"{host}: {key} = {value}" for host, key, value in sysctls if key in STATE_SYSCTLS]
    state += _log_lines(logs, HOST_LOG_KINDS, STATE_EVENTS, STATE_RE) + found["state"]
    if state:
        items.append(CheckItem("conntrack", "conntrack and port-range state", PRESENT, "Found:", state))
    else:
        items.append(
            CheckItem(
                "conntrack",
                "conntrack and port-range state",
                MISSING,
                "No conntrack table or ip_local_port_range snapshot from the hosts: state loss on a NAT or "
                "firewall cannot be confirmed or ruled out.",
            )
        )

    # 6. configuration knobs implicated
    knobs = [
        f"{host}: {key} = {value}" for host, key, value in sysctls if KNOB_SYSCTLS.get(key) == value.strip()
    ]
    knobs += _log_lines(logs, HOST_LOG_KINDS, KNOB_EVENTS) + found["knob"]
    causes = Counter(r.cause for r in resets if r.cause in CAUSE_KNOBS)
    if knobs:
        items.append(
            CheckItem("knobs", "configuration knobs implicated", PRESENT, "Named by the evidence:", knobs)
        )
    elif causes:
        details = [f"{cause_title(c)}: {', '.join(CAUSE_KNOBS[c])}" for c, _ in causes.most_common()]
        items.append(
            CheckItem(
                "knobs",
                "configuration knobs implicated",
                MISSING,
                "The evidence names no setting; by cause, check these (attach the config files to confirm):",
                details,
            )
        )
    else:
        items.append(
            CheckItem(
                "knobs",
                "configuration knobs implicated",
                NONE_FOUND,
                "No decided cause implicates a setting.",
            )
        )
    return items


def missing(analysis: Analysis, limit: int = 12) -> list[str]:
    """What would decide what is still undecided: the missing evidence the blame engine named."""
    seen: dict[str, None] = {}
    for r in analysis.resets:
        for e in r.evidence:
            if e.missing:
                seen.setdefault(e.text, None)
    return list(seen)[:limit]


def ordered_roles(present: set[str]) -> list[str]:
    return [r for r in ROLES if r in present] + sorted(present - set(ROLES))


def reset_facts(reset: Reset) -> dict[str, Any]:
    """Plain facts of one reset, for the explanation when the pipeline wrote none."""
    return {
        "sender_host": reset.sender.host or reset.src,
        "sender_role": reset.sender.role,
        "src": reset.src,
        "sport": reset.sport,
        "dst": reset.dst,
        "dport": reset.dport,
        "peer": reset.dst,
    }


def explanation(reset: Reset) -> str:
    """The pipeline's explanation, else the catalog's when the reset's facts fill it ('' otherwise)."""
    if reset.explanation:
        return reset.explanation
    text = catalog.cause(reset.cause).explain(reset_facts(reset))
    return "" if "?" in text else text
