"""Host snapshots taken before and after a capture, as text files in the bundle.

    snapshots/<host>/<name>-before.txt and <name>-after.txt
    names: ss (ss -tanpi), nstat (nstat -saz), netstat (netstat -s), nft (nft list ruleset),
           conntrack-stats (conntrack -S), conntrack-count (conntrack -C [then nf_conntrack_max]),
           ip-link (ip -s link), sysctl (key = value lines)

Every parser takes the text as written and skips what it does not understand; the facts that can
explain resets (counter deltas, reject rules, a full conntrack table, abort-on-overflow) come out as
LogRecords of kind "host" so correlation and reports treat them like log lines.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from resetlens.evidence import events
from resetlens.evidence.base import LogRecord

# Snapshot names a bundle may hold, in the order collect writes them.
NAMES = ("ss", "nstat", "netstat", "nft", "conntrack-stats", "conntrack-count", "ip-link", "sysctl")
# Other names for the same outputs (a `conntrack` file may hold both `conntrack -S` and `-C`).
NAME_ALIASES = {
    "conntrack": ("conntrack-stats", "conntrack-count"),
    "link": ("ip-link",),
    "ip-s-link": ("ip-link",),
    "sysctls": ("sysctl",),
}
# Largest snapshot file read (a huge ss dump is cut, with a warning).
MAX_SNAPSHOT = 64 << 20

# Counters that count resets and aborts (nstat names).
ABORT_COUNTERS = (
    "TcpExtTCPAbortOnData",  # RST sent: data arrived after the application closed
    "TcpExtTCPAbortOnClose",  # RST sent: closed with unread data
    "TcpExtTCPAbortOnMemory",  # RST sent: out of memory or too many orphans
    "TcpExtTCPAbortOnTimeout",  # connection aborted after retransmission timeouts
    "TcpExtTCPAbortOnLinger",  # RST sent: linger2 (FIN_WAIT2) timeout
)
# Accept-queue overflow counters.
LISTEN_COUNTERS = ("TcpExtListenOverflows", "TcpExtListenDrops")
# All RSTs the host sent.
RST_COUNTERS = ("TcpOutRsts",)
# Other counters worth showing in a report.
CONTEXT_COUNTERS = (
    "TcpEstabResets",
    "TcpAttemptFails",
    "TcpExtTCPSynRetrans",
    "TcpExtTCPTimeouts",
    "TcpExtTCPReqQFullDrop",
)
# Sysctls that change how the host resets.
SYSCTLS = (
    "net.ipv4.ip_local_port_range",  # ephemeral ports (source-port exhaustion)
    "net.ipv4.tcp_abort_on_overflow",  # 1: a full accept queue answers with RST
    "net.netfilter.nf_conntrack_max",  # conntrack table size
    "net.netfilter.nf_conntrack_count",  # entries in use (when readable)
    "net.netfilter.nf_conntrack_tcp_loose",  # 0: mid-stream packets of unknown flows are INVALID
)
# conntrack count above this share of the max is "near full".
CONNTRACK_NEAR_FULL = 0.9

# netstat -s phrase -> nstat counter.
NETSTAT_PHRASES = {
    "resets sent": "TcpOutRsts",
    "connection resets received": "TcpEstabResets",
    "failed connection attempts": "TcpAttemptFails",
    "times the listen queue of a socket overflowed": "TcpExtListenOverflows",
    "SYNs to LISTEN sockets dropped": "TcpExtListenDrops",
    "connections reset due to unexpected data": "TcpExtTCPAbortOnData",
    "connections reset due to early user close": "TcpExtTCPAbortOnClose",
    "connections aborted due to memory pressure": "TcpExtTCPAbortOnMemory",
    "connections aborted due to timeout": "TcpExtTCPAbortOnTimeout",
    "connections aborted after user close in linger timeout": "TcpExtTCPAbortOnLinger",
}

# ss: state, queues, local, peer, then process and (next lines, indented) the -i details.
SS_RE = re.compile(r"^([A-Z][A-Z0-9-]+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+)(?:\s+(.*))?$")
SS_USER_RE = re.compile(r'\("([^"]*)",pid=(\d+),fd=(\d+)\)')
NSTAT_RE = re.compile(r"^([A-Za-z][A-Za-z0-9]+)\s+(-?\d+)(?:\s+\S+)?\s*$")
NETSTAT_LINE_RE = re.compile(r"^\s+(\d+) (.+?)\s*$")
KV_RE = re.compile(r"([a-z_]+)=(\d+)")
IP_LINK_RE = re.compile(r"^\d+:\s+([^:@\s]+)(?:@\S+)?:")
SYSCTL_RE = re.compile(r"^([a-z0-9_.\-/]+)\s*[=:]\s*(.*)$")
NFT_TABLE_RE = re.compile(r"^\s*table (\w+) (\S+) \{")
NFT_CHAIN_RE = re.compile(r"^\s*chain (\S+) \{")
NFT_COUNTER_RE = re.compile(r"counter packets (\d+) bytes (\d+)")
NFT_LIMIT_RE = re.compile(r"limit rate (?:over )?[^ ]+(?: burst \d+ \w+)?")
NFT_DPORT_RE = re.compile(r"tcp dport (\{[^}]*\}|\S+)")
IPT_REJECT_RE = re.compile(r"-j REJECT --reject-with tcp-reset")


@dataclass
class Socket:
    state: str
    local: str
    lport: int
    peer: str
    pport: int
    processes: list[tuple[str, int, int]] = field(default_factory=list)  # (name, pid, fd)
    info: str = ""  # ss -i details


@dataclass
class Snapshot:
    """One host at one moment (before or after)."""

    sockets: list[Socket] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)  # nstat names
    rejects: list[dict[str, Any]] = field(default_factory=list)  # firewall rules that reset
    conntrack: dict[str, int] = field(default_factory=dict)  # summed conntrack -S, plus count/max
    links: dict[str, dict[str, int]] = field(default_factory=dict)  # iface -> rx_dropped, tx_dropped, ...
    sysctl: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # name -> path read


@dataclass
class HostSnapshots:
    host: str
    before: Snapshot | None = None
    after: Snapshot | None = None
    warnings: list[str] = field(default_factory=list)

    def counter_deltas(self) -> dict[str, int]:
        """after - before for every counter in both (absolute `after` when there is no before)."""
        after = self.after.counters if self.after else {}
        before = self.before.counters if self.before else {}
        if not after:
            return {}
        return {k: v - before.get(k, 0) for k, v in after.items() if not before or k in before}

    def owner(self, addr: str, port: int, peer: str | None = None, pport: int | None = None) -> Socket | None:
        """The socket with this local address:port (and peer, when given); listeners as a fallback."""
        if not hasattr(self, "_by_port"):
            self._by_port: dict[int, list[Socket]] = {}
            for snap in (self.after, self.before):
                for s in snap.sockets if snap else ():
                    self._by_port.setdefault(s.lport, []).append(s)
        listener = None
        for s in self._by_port.get(port, ()):
            if s.local not in (addr, "*", "0.0.0.0", "::"):
                continue
            if peer is not None and s.peer == peer and s.pport == pport:
                return s
            if s.state == "LISTEN" and listener is None:
                listener = s
        return listener

    def facts(self) -> list[LogRecord]:
        """The host facts that can explain resets, as records of kind "host"."""
        out: list[LogRecord] = []
        after = self.after or self.before
        if after is None:
            return out
        deltas = self.counter_deltas()
        span = "between the snapshots" if self.before and self.after else "since boot"

        def add(event: str, name: str, text: str, fields: dict[str, Any]) -> None:
            path = after.files.get(name) or (self.before.files.get(name, "") if self.before else "")
            out.append(LogRecord(int(fields.get("line", 1)), None, text, "host", self.host, event, fields))
            out[-1].fields["path"] = path

        listen = {k: deltas[k] for k in LISTEN_COUNTERS if deltas.get(k)}
        if listen:
            add(events.LISTEN_OVERFLOW, "nstat", f"{_fmt(listen)} {span}", listen)
        aborts = {k: deltas[k] for k in ABORT_COUNTERS if deltas.get(k)}
        if aborts:
            add(events.ABORT_COUNTERS, "nstat", f"{_fmt(aborts)} {span}", aborts)
        rsts = {k: deltas[k] for k in RST_COUNTERS if deltas.get(k)}
        if rsts:
            add(events.RST_COUNTERS, "nstat", f"{_fmt(rsts)} {span}", rsts)
        if after.sysctl.get("net.ipv4.tcp_abort_on_overflow", "").strip() == "1":
            add(
                events.ABORT_ON_OVERFLOW,
                "sysctl",
                "net.ipv4.tcp_abort_on_overflow = 1",
                {"sysctl": "net.ipv4.tcp_abort_on_overflow"},
            )
        before_hits = {
            _rule_key(r["rule"]): r.get("packets") for r in (self.before.rejects if self.before else [])
        }
        for rule in after.rejects:
            fields = dict(rule)
            prior = before_hits.get(rule["key"])
            if isinstance(prior, int) and isinstance(rule.get("packets"), int):
                fields["packets_delta"] = rule["packets"] - prior
            hits = fields.get("packets_delta", rule.get("packets"))
            where = (
                f" ({hits} packets {span if 'packets_delta' in fields else 'counted'})"
                if hits is not None
                else ""
            )
            add(events.NFT_REJECT_RULE, "nft", f"{rule['chain']}: {rule['rule']}{where}", fields)
        ct = dict(after.conntrack)
        count, cmax = (
            ct.get("count"),
            ct.get("max") or _int(after.sysctl.get("net.netfilter.nf_conntrack_max")),
        )
        before_ct = self.before.conntrack if self.before else {}
        drops = {k: ct[k] - before_ct.get(k, 0) for k in ("drop", "early_drop", "insert_failed") if ct.get(k)}
        drops = {k: v for k, v in drops.items() if v > 0}
        if (count is not None and cmax and count >= CONNTRACK_NEAR_FULL * cmax) or drops:
            fields = {"count": count, "max": cmax, **drops}
            add(
                events.CONNTRACK_PRESSURE,
                "conntrack-stats",
                f"conntrack count {count} of max {cmax}; {_fmt(drops) or 'no drops'}",
                fields,
            )
        if after.sysctl.get("net.netfilter.nf_conntrack_tcp_loose", "").strip() == "0":
            add(
                events.CONNTRACK_PRESSURE,
                "sysctl",
                "net.netfilter.nf_conntrack_tcp_loose = 0 (mid-stream packets of unknown flows are INVALID)",
                {"sysctl": "nf_conntrack_tcp_loose"},
            )
        before_links = self.before.links if self.before else {}
        for iface, stats in after.links.items():
            prior = before_links.get(iface, {})
            d = {
                k: v - prior.get(k, 0)
                for k, v in stats.items()
                if k.endswith("dropped") and v - prior.get(k, 0) > 0
            }
            if d and (self.before is not None):
                add(events.LINK_DROPS, "ip-link", f"{iface}: {_fmt(d)} {span}", {"iface": iface, **d})
        return out

    def summary(self) -> dict[str, Any]:
        after = self.after or self.before
        return {
            "host": self.host,
            "before": self.before is not None,
            "after": self.after is not None,
            "sockets": len(after.sockets) if after else 0,
            "counter_deltas": {
                k: v
                for k, v in self.counter_deltas().items()
                if k in ABORT_COUNTERS + LISTEN_COUNTERS + RST_COUNTERS + CONTEXT_COUNTERS
            },
            "sysctl": {k: after.sysctl[k] for k in SYSCTLS if after and k in after.sysctl},
            "rejects": len(after.rejects) if after else 0,
            "warnings": list(self.warnings),
        }


def _rule_key(rule: str) -> str:
    """A rule without its counters, to find the same rule in both snapshots."""
    return NFT_COUNTER_RE.sub("", rule)


def _fmt(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} +{v}" if isinstance(v, int) else f"{k} {v}" for k, v in values.items())


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).split()[0]) if text is not None else None
    except (ValueError, IndexError):
        return None


def _endpoint(text: str) -> tuple[str, int] | None:
    """ss endpoint '10.0.0.9:8080', '[::ffff:10.0.0.9]:8080', '*:22', '10.0.0.9%eth0:53' -> (addr, port)."""
    addr, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    addr = addr.strip("[]").split("%")[0]
    if addr.startswith("::ffff:") and addr.count(".") == 3:
        addr = addr[7:]
    return addr, int(port)


def parse_ss(text: str) -> list[Socket]:
    sockets: list[Socket] = []
    for line in text.splitlines():
        if line[:1] in (" ", "\t"):
            if sockets:
                sockets[-1].info = (sockets[-1].info + " " + line.strip()).strip()
            continue
        m = SS_RE.match(line.strip())
        if not m:
            continue
        local, peer = _endpoint(m[4]), _endpoint(m[5])
        if local is None:
            continue
        peer = peer or ("*", 0)
        procs = [(name, int(pid), int(fd)) for name, pid, fd in SS_USER_RE.findall(m[6] or "")]
        sockets.append(Socket(m[1], local[0], local[1], peer[0], peer[1], procs))
    return sockets


def parse_nstat(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = NSTAT_RE.match(line.strip())
        if m:
            out[m[1]] = int(m[2])
    return out


def parse_netstat(text: str) -> dict[str, int]:
    """netstat -s: the phrases resetlens knows become nstat names; the rest are kept as 'Section: phrase'."""
    out: dict[str, int] = {}
    section = ""
    for line in text.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            section = line.strip().rstrip(":")
            continue
        m = NETSTAT_LINE_RE.match(line)
        if m:
            phrase = m[2]
            out[NETSTAT_PHRASES.get(phrase, f"{section}: {phrase}")] = int(m[1])
    return out


def parse_nft(text: str) -> list[dict[str, Any]]:
    """Rules that reject with a TCP reset: table, chain, rule text, limit, counters, dport (also iptables-save)."""
    rules: list[dict[str, Any]] = []
    table = chain = ""
    for n, line in enumerate(text.splitlines(), 1):
        m = NFT_TABLE_RE.match(line)
        if m:
            table = f"{m[1]} {m[2]}"
            continue
        m = NFT_CHAIN_RE.match(line)
        if m:
            chain = m[1]
            continue
        if "reject with tcp reset" not in line and not IPT_REJECT_RE.search(line):
            continue
        rule = line.strip()
        entry: dict[str, Any] = {"table": table, "chain": chain or _ipt_chain(rule), "rule": rule, "line": n}
        entry["key"] = _rule_key(rule)  # the rule without its counters: the same rule in both snapshots
        c = NFT_COUNTER_RE.search(rule)
        if c:
            entry.update(packets=int(c[1]), bytes=int(c[2]))
        lim = NFT_LIMIT_RE.search(rule)
        if lim:
            entry["limit"] = lim[0]
        d = NFT_DPORT_RE.search(rule) or re.search(r"--dport (\d+(?::\d+)?)", rule)
        if d:
            entry["dports"] = _ports(d[1])
        rules.append(entry)
    return rules


def _ipt_chain(rule: str) -> str:
    m = re.match(r"-A (\S+)", rule)
    return m[1] if m else ""


def _ports(text: str) -> list[int | list[int]]:
    """'8080', '{ 80, 443 }', '8000-8100' -> [8080], [80, 443], [[8000, 8100]]."""
    out: list[int | list[int]] = []
    for part in re.split(r"[\s,{}]+", text):
        m = re.fullmatch(r"(\d+)[-:](\d+)", part)
        if m:
            out.append([int(m[1]), int(m[2])])
        elif part.isdigit():
            out.append(int(part))
    return out


def rule_matches_port(rule: dict[str, Any], port: int) -> bool:
    """True when a reject rule has no dport match or its dports include `port`."""
    dports = rule.get("dports")
    if not dports:
        return True
    return any(p == port if isinstance(p, int) else p[0] <= port <= p[1] for p in dports)


def parse_conntrack_stats(text: str) -> dict[str, int]:
    """conntrack -S: per-CPU key=value lines, summed."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        for k, v in KV_RE.findall(line):
            if k != "cpu":
                out[k] = out.get(k, 0) + int(v)
    return out


def parse_conntrack_count(text: str) -> dict[str, int]:
    """conntrack -C output (a number), optionally followed by nf_conntrack_max on the next line."""
    nums = [int(t) for t in re.findall(r"^\s*(\d+)\s*$", text, re.M)]
    out: dict[str, int] = {}
    if nums:
        out["count"] = nums[0]
    if len(nums) > 1:
        out["max"] = nums[1]
    return out


def parse_ip_link(text: str) -> dict[str, dict[str, int]]:
    links: dict[str, dict[str, int]] = {}
    iface = None
    header: tuple[str, list[str]] | None = None
    for line in text.splitlines():
        m = IP_LINK_RE.match(line)
        if m:
            iface = m[1]
            links[iface] = {}
            header = None
            continue
        s = line.strip()
        if s.startswith(("RX:", "TX:")) and iface:
            header = (s[:2].lower(), s[3:].split())
            continue
        if header and iface and s and all(t.isdigit() for t in s.split()):
            for name, value in zip(header[1], s.split(), strict=False):
                links[iface][f"{header[0]}_{name}"] = int(value)
            header = None
    return links


def parse_sysctl(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = SYSCTL_RE.match(line.strip())
        if m:
            out[m[1].replace("/", ".")] = m[2].strip()
    return out


def parse_snapshot(files: dict[str, str]) -> Snapshot:
    """A Snapshot from {name: text}."""
    snap = Snapshot()
    if "ss" in files:
        snap.sockets = parse_ss(files["ss"])
    if "nstat" in files:
        snap.counters.update(parse_nstat(files["nstat"]))
    if "netstat" in files:
        for k, v in parse_netstat(files["netstat"]).items():
            snap.counters.setdefault(k, v)
    if "nft" in files:
        snap.rejects = parse_nft(files["nft"])
    if "conntrack-stats" in files:
        snap.conntrack.update(parse_conntrack_stats(files["conntrack-stats"]))
    if "conntrack-count" in files:
        snap.conntrack.update(parse_conntrack_count(files["conntrack-count"]))
    if "ip-link" in files:
        snap.links = parse_ip_link(files["ip-link"])
    if "sysctl" in files:
        snap.sysctl = parse_sysctl(files["sysctl"])
    if "max" not in snap.conntrack and snap.sysctl.get("net.netfilter.nf_conntrack_max", "").isdigit():
        snap.conntrack["max"] = int(snap.sysctl["net.netfilter.nf_conntrack_max"])
    if "count" not in snap.conntrack and snap.sysctl.get("net.netfilter.nf_conntrack_count", "").isdigit():
        snap.conntrack["count"] = int(snap.sysctl["net.netfilter.nf_conntrack_count"])
    return snap


def load_host(directory: str, host: str | None = None) -> HostSnapshots:
    """Read snapshots/<host>/ (files named <name>-before.txt / <name>-after.txt)."""
    hs = HostSnapshots(host or os.path.basename(os.path.normpath(directory)))
    texts: dict[str, dict[str, str]] = {"before": {}, "after": {}}
    paths: dict[str, dict[str, str]] = {"before": {}, "after": {}}
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        hs.warnings.append(f"{directory}: {exc.strerror}")
        return hs
    for fname in names:
        m = re.fullmatch(r"(.+)-(before|after)\.txt", fname)
        if not m:
            continue
        targets = (m[1],) if m[1] in NAMES else NAME_ALIASES.get(m[1])
        if not targets:
            hs.warnings.append(f"{fname}: unknown snapshot name (expected one of {', '.join(NAMES)})")
            continue
        path = os.path.join(directory, fname)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_SNAPSHOT + 1)
        except OSError as exc:
            hs.warnings.append(f"{path}: {exc.strerror}")
            continue
        if len(data) > MAX_SNAPSHOT:
            hs.warnings.append(f"{path}: larger than {MAX_SNAPSHOT} bytes, cut")
        for name in targets:
            texts[m[2]][name] = texts[m[2]].get(name, "") + data[:MAX_SNAPSHOT].decode("utf-8", "replace")
            paths[m[2]][name] = path
    for when in ("before", "after"):
        if texts[when]:
            snap = parse_snapshot(texts[when])
            snap.files = paths[when]
            setattr(hs, when, snap)
    return hs


def load_snapshots(bundle_dir: str) -> dict[str, HostSnapshots]:
    """Every host under <bundle>/snapshots/, by host name; {} when the bundle has none."""
    root = os.path.join(bundle_dir, "snapshots")
    if not os.path.isdir(root):
        return {}
    out = {}
    for host in sorted(os.listdir(root)):
        if os.path.isdir(os.path.join(root, host)):
            out[host] = load_host(os.path.join(root, host), host)
    return out
