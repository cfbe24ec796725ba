"""tcpdump at every vantage, with the mix of link types and time-stamp precisions real bundles have."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path

from resetlens.lab.procs import LabError, ProcessTable
from resetlens.lab.topology import Topology

SNAPLEN = 512  # bytes per packet: headers, HTTP request lines and TLS ClientHellos, no bulk payload
START_TIMEOUT = 5.0  # seconds to wait for tcpdump's "listening on"


@dataclass(frozen=True)
class Vantage:
    name: str
    host: str
    iface: str  # "any" gives a Linux SLL2 capture: the router sees each forwarded packet twice
    nano: bool  # --time-stamp-precision=nano (pcap magic a1b23c4d) or microsecond


VANTAGES: tuple[Vantage, ...] = (
    Vantage("client", "client", "eth0", nano=True),
    Vantage("firewall", "firewall", "any", nano=False),
    Vantage("proxy-front", "proxy", "px-f", nano=False),
    Vantage("proxy-back", "proxy", "px-b", nano=True),
    Vantage("server", "server", "eth0", nano=False),
)


def capture_path(vantage: Vantage) -> str:
    return f"captures/{vantage.name}.pcap"


class Captures:
    """Starts one tcpdump per vantage and stops them (SIGINT flushes the file) by PID."""

    def __init__(self, topo: Topology, procs: ProcessTable, bundle: Path) -> None:
        self.topo, self.procs, self.bundle = topo, procs, bundle

    def start(self) -> None:
        (self.bundle / "captures").mkdir(parents=True, exist_ok=True)
        errs = {}
        for v in VANTAGES:
            cmd = ["tcpdump", "-i", v.iface, "-n", "-U", "--immediate-mode", "-Z", "root", "-s", str(SNAPLEN), "-w",
                   str(self.bundle / capture_path(v))]  # fmt: skip
            if v.nano:
                cmd[1:1] = ["--time-stamp-precision=nano"]
            cmd += ["tcp or icmp or icmp6"]
            errs[v.name] = self.bundle / f".tcpdump-{v.name}.err"
            self.procs.spawn(f"tcpdump-{v.name}", cmd, ns=self.topo.ns(v.host), stderr=errs[v.name])
        deadline = time.monotonic() + START_TIMEOUT
        for v in VANTAGES:
            while "listening on" not in errs[v.name].read_text(errors="replace"):
                if time.monotonic() > deadline or not self.procs.alive(f"tcpdump-{v.name}"):
                    raise LabError(f"tcpdump at {v.name} did not start: {errs[v.name].read_text()[-300:]}")
                time.sleep(0.02)
        time.sleep(0.2)  # the kernel-side socket filter is attached just before the message

    def stop(self) -> None:
        time.sleep(0.3)  # last packets through the veths
        for v in VANTAGES:
            self.procs.stop(f"tcpdump-{v.name}", signal.SIGINT)
        for v in VANTAGES:
            (self.bundle / f".tcpdump-{v.name}.err").unlink(missing_ok=True)
