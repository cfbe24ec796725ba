"""The lab's long-running services: backend (server), nginx + HAProxy + syslog receiver (proxy)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

from resetlens.lab.journal import Journal
from resetlens.lab.procs import LabError, ProcessTable, run
from resetlens.lab.topology import PROXY_FRONT4, SERVER4, Topology

# nginx access log format (also written to resetlens.toml `format`)
NGINX_LOG_FORMAT = (
    '$time_iso8601 $msec $remote_addr:$remote_port $connection $request_id "$request" $status '
    '$body_bytes_sent $request_time ups="$upstream_addr" us="$upstream_status" '
    'uht="$upstream_header_time" urt="$upstream_response_time"'
)
SYSLOG_PORT = 5514  # HAProxy logs to 127.0.0.1:5514 in the proxy namespace
READY_TIMEOUT = 5.0  # seconds for a service to accept connections


def _python() -> list[str]:
    return [sys.executable, "-m"]


def render(name: str, workdir: Path) -> Path:
    text = resources.files("resetlens.lab").joinpath("conf", name).read_text()
    text = text.replace("@WORKDIR@", str(workdir)).replace("@LOG_FORMAT@", NGINX_LOG_FORMAT)
    out = workdir / name
    out.write_text(text)
    return out


def wait_port(topo: Topology, host: str, addr: str, port: int) -> None:
    """Poll until something listens on addr:port inside the host's namespace (ss, no traffic sent)."""
    deadline = time.monotonic() + READY_TIMEOUT
    want = f"{addr}:{port}"
    while time.monotonic() < deadline:
        if want in run(["ss", "-Htln"], ns=topo.ns(host), check=False).replace(
            "[::]", "*"
        ) or f"*:{port}" in run(["ss", "-Htln"], ns=topo.ns(host), check=False):
            return
        time.sleep(0.05)
    raise LabError(f"{host}: nothing listening on {want} after {READY_TIMEOUT}s")


class Services:
    def __init__(self, topo: Topology, procs: ProcessTable, workdir: Path) -> None:
        self.topo, self.procs, self.workdir = topo, procs, workdir
        self.journal = Journal("server")
        self.restarts = 0

    @property
    def logs(self) -> dict[str, Path]:
        return {
            "nginx-access": self.workdir / "nginx-access.log",
            "nginx-error": self.workdir / "nginx-error.log",
            "haproxy": self.workdir / "haproxy.log",
            "app": self.workdir / "backend.log",
        }

    def start(self) -> None:
        w = self.workdir
        (w / "nginx-tmp").mkdir(parents=True, exist_ok=True)
        for p in self.logs.values():
            p.touch()
        cert, key = w / "server.crt", w / "server.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=lab.resetlens.test", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True, timeout=30)  # fmt: skip
        self.start_backend()
        self.procs.spawn("syslogd", [*_python(), "resetlens.lab.syslogd", str(SYSLOG_PORT), str(self.logs["haproxy"]),
                                     "proxy"], ns=self.topo.ns("proxy"), stderr=w / "syslogd.err")  # fmt: skip
        self.procs.spawn("nginx", ["nginx", "-c", str(render("nginx.conf", w))], ns=self.topo.ns("proxy"),
                         stderr=w / "nginx.stderr")  # fmt: skip
        self.procs.spawn("haproxy", ["haproxy", "-db", "-f", str(render("haproxy.cfg", w))], ns=self.topo.ns("proxy"),
                         stderr=w / "haproxy.stderr")  # fmt: skip
        wait_port(self.topo, "proxy", PROXY_FRONT4, 80)
        wait_port(self.topo, "proxy", PROXY_FRONT4, 8000)

    def start_backend(self) -> None:
        self.journal.starting()
        w = self.workdir
        self.procs.spawn("backend", [*_python(), "resetlens.lab.backend", "--cert", str(w / "server.crt"), "--key",
                                     str(w / "server.key")], ns=self.topo.ns("server"), stdout=self.logs["app"],
                         stderr=w / "backend.stderr")  # fmt: skip
        wait_port(self.topo, "server", SERVER4, 8080)
        self.journal.started()

    def kill_backend(self, signo: int = signal.SIGKILL) -> None:
        """The backend crashes (or is killed): PID 1 logs the exit and the failure."""
        if not self.procs.alive("backend"):
            raise LabError("backend is not running")
        self.procs.kill("backend", signo)
        self.journal.killed(signo)

    def restart_backend(self) -> None:
        """Restart=on-failure: systemd schedules a restart and starts a new invocation."""
        self.restarts += 1
        self.journal.restart_scheduled(self.restarts)
        self.start_backend()

    def ensure_backend(self) -> None:
        """After a failed scenario: the backend runs again (journaled like an operator's start)."""
        if not self.procs.alive("backend"):
            self.procs.stop("backend")
            self.journal.new_invocation()
            self.start_backend()

    def stop(self) -> None:
        for name in ("haproxy", "nginx", "syslogd", "backend"):
            self.procs.stop(name)
