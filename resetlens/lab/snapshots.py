"""Host snapshots as text (before and after each scenario): snapshots/<host>/<name>-before.txt|-after.txt."""

from __future__ import annotations

from pathlib import Path

from resetlens.lab.procs import run
from resetlens.lab.topology import HOSTS, Topology

# name -> commands whose outputs are concatenated, each under a "$ command" line
SNAPSHOTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "ss": (("ss", "-tanpi"),),
    "nstat": (("nstat", "-asz"),),
    "nft": (("nft", "list", "ruleset"),),
    "conntrack": (("conntrack", "-S"), ("conntrack", "-C"), ("sysctl", "net.netfilter.nf_conntrack_max",
                  "net.netfilter.nf_conntrack_count", "net.netfilter.nf_conntrack_tcp_loose")),
    "link": (("ip", "-s", "link"),),
    "sysctl": (("sysctl", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_abort_on_overflow", "net.core.somaxconn",
                "net.ipv4.tcp_syncookies", "net.ipv4.ip_forward"),),
}  # fmt: skip


def snapshot(topo: Topology, bundle: Path, when: str) -> None:
    for host in HOSTS:
        folder = bundle / "snapshots" / host
        folder.mkdir(parents=True, exist_ok=True)
        for name, commands in SNAPSHOTS.items():
            parts = []
            for cmd in commands:
                parts.append(f"$ {' '.join(cmd)}\n" + run(list(cmd), ns=topo.ns(host), check=False))
            (folder / f"{name}-{when}.txt").write_text("".join(parts))
