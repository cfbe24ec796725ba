"""The lab network: client — firewall — proxy — server, one netns each, joined by veth pairs.

    client eth0 ── fw-c firewall fw-p ── px-f proxy px-b ── eth0 server
      10.77.1.0/24              10.77.2.0/24            10.77.3.0/24
      fd00:77:1::/64            fd00:77:2::/64          fd00:77:3::/64

The firewall and the proxy host both route, so a client can reach the server directly (raw TCP and
TLS scenarios) or through nginx/HAProxy on the proxy host. Nothing is routed out of the lab.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass, field
from types import FrameType

from resetlens.lab.procs import run

# Namespace names are NS_PREFIX + owner PID + "-" + host; the PID lets a sweep find stale ones.
NS_PREFIX = "rlab"
NS_RE = re.compile(rf"^{NS_PREFIX}(\d+)-[a-z]+$")


@dataclass(frozen=True)
class Iface:
    host: str
    name: str
    v4: str  # address/prefix
    v6: str


@dataclass(frozen=True)
class Link:
    a: Iface
    b: Iface


# Declarative topology: (host-a iface, host-b iface) per veth pair.
LINKS: tuple[Link, ...] = (
    Link(
        Iface("client", "eth0", "10.77.1.2/24", "fd00:77:1::2/64"),
        Iface("firewall", "fw-c", "10.77.1.1/24", "fd00:77:1::1/64"),
    ),
    Link(
        Iface("firewall", "fw-p", "10.77.2.1/24", "fd00:77:2::1/64"),
        Iface("proxy", "px-f", "10.77.2.2/24", "fd00:77:2::2/64"),
    ),
    Link(
        Iface("proxy", "px-b", "10.77.3.1/24", "fd00:77:3::1/64"),
        Iface("server", "eth0", "10.77.3.2/24", "fd00:77:3::2/64"),
    ),
)

# Routes per host: (destination, gateway).
ROUTES: dict[str, tuple[tuple[str, str], ...]] = {
    "client": (("default", "10.77.1.1"), ("default", "fd00:77:1::1")),
    "firewall": (("10.77.3.0/24", "10.77.2.2"), ("fd00:77:3::/64", "fd00:77:2::2")),
    "proxy": (("10.77.1.0/24", "10.77.2.1"), ("fd00:77:1::/64", "fd00:77:2::1")),
    "server": (("default", "10.77.3.1"), ("default", "fd00:77:3::1")),
}

# Host name -> role in resetlens.toml.
ROLES = {"client": "client", "firewall": "firewall", "proxy": "proxy", "server": "server"}
HOSTS = tuple(ROLES)
ROUTERS = ("firewall", "proxy")

# Well-known addresses used by scenarios.
CLIENT4, CLIENT6 = "10.77.1.2", "fd00:77:1::2"
FW_OUTER4, FW_INNER4 = "10.77.1.1", "10.77.2.1"
PROXY_FRONT4, PROXY_FRONT6 = "10.77.2.2", "fd00:77:2::2"
PROXY_BACK4, PROXY_BACK6 = "10.77.3.1", "fd00:77:3::1"
SERVER4, SERVER6 = "10.77.3.2", "fd00:77:3::2"


def host_addresses(host: str) -> list[str]:
    out: list[str] = []
    for link in LINKS:
        for side in (link.a, link.b):
            if side.host == host:
                out += [side.v4.split("/")[0], side.v6.split("/")[0]]
    return out


def host_of(addr: str) -> str | None:
    for host in HOSTS:
        if addr in host_addresses(host):
            return host
    return None


@dataclass
class Topology:
    """Owns the namespaces of one lab run; `down()` is idempotent and safe after a partial `up()`."""

    owner_pid: int = field(default_factory=os.getpid)
    created: list[str] = field(default_factory=list)

    def ns(self, host: str) -> str:
        return f"{NS_PREFIX}{self.owner_pid}-{host}"

    def up(self) -> None:
        sweep_stale()
        for host in HOSTS:
            run(["ip", "netns", "add", self.ns(host)])
            self.created.append(self.ns(host))
            run(["ip", "link", "set", "lo", "up"], ns=self.ns(host))
            for key in ("net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"):
                run(["sysctl", "-qw", f"{key}=0"], ns=self.ns(host))
        for link in LINKS:
            run(["ip", "link", "add", link.a.name, "netns", self.ns(link.a.host), "type", "veth",
                 "peer", "name", link.b.name, "netns", self.ns(link.b.host)])  # fmt: skip
            for side in (link.a, link.b):
                ns = self.ns(side.host)
                run(["ip", "addr", "add", side.v4, "dev", side.name], ns=ns)
                run(["ip", "-6", "addr", "add", side.v6, "dev", side.name, "nodad"], ns=ns)
                run(["ip", "link", "set", side.name, "up"], ns=ns)
        for host in ROUTERS:
            run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], ns=self.ns(host))
            run(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"], ns=self.ns(host))
        for host, routes in ROUTES.items():
            for dest, gw in routes:
                family = "-6" if ":" in gw else "-4"
                run(["ip", family, "route", "add", dest, "via", gw], ns=self.ns(host))

    def down(self) -> None:
        for name in self.created[::-1]:
            run(["ip", "netns", "del", name], check=False)
        self.created.clear()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Delete lab namespaces left by a run whose owner process is gone (crash, SIGKILL)."""
    removed = []
    for line in run(["ip", "netns", "list"], check=False).splitlines():
        name = line.split()[0] if line.strip() else ""
        m = NS_RE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            run(["ip", "netns", "del", name], check=False)
            removed.append(name)
    return removed


def install_signal_handlers() -> dict[int, object]:
    """Turn SIGINT/SIGTERM/SIGHUP into exceptions so every try/finally teardown runs.

    SIGINT is set explicitly: a shell starts background jobs with SIGINT ignored, and Python then
    leaves it ignored.
    """

    def _exit(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    def _interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {signal.SIGINT: signal.signal(signal.SIGINT, _interrupt)}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, _exit)
    return previous


def restore_signal_handlers(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]
