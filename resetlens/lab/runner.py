"""Run scenarios: build the lab once, then per scenario capture, drive traffic, collect, label, verify."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from resetlens.lab import verify
from resetlens.lab.bundle import write_manifest
from resetlens.lab.capture import Captures
from resetlens.lab.procs import LabError, ProcessTable, run, stop_proc
from resetlens.lab.services import NGINX_LOG_FORMAT, Services
from resetlens.lab.snapshots import snapshot
from resetlens.lab.topology import Topology, install_signal_handlers, restore_signal_handlers

CLIENT_TIMEOUT = 20.0  # seconds any client action may take
SETTLE = 0.4  # seconds between scenarios for stray segments (FIN retransmissions, TIME_WAIT acks) to die down

# log kind -> (bundle path, host, nginx format)
LOG_FILES = {
    "nginx-access": ("logs/nginx-access.log", "proxy"),
    "nginx-error": ("logs/nginx-error.log", "proxy"),
    "haproxy": ("logs/haproxy.log", "proxy"),
    "app": ("logs/backend.log", "server"),
    "syslog": ("logs/firewall-dpi.log", "firewall"),
}


def require_root() -> None:
    import os

    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, nftables, tcpdump)")
    for tool in ("ip", "nft", "tcpdump", "tshark", "nginx", "haproxy", "conntrack", "openssl"):
        if shutil.which(tool) is None:
            raise LabError(f"the lab needs {tool} on PATH")


class ClientRun:
    """A client action running in the client namespace; may pause for the lab at named steps."""

    def __init__(self, lab: Lab, action: str, kwargs: dict) -> None:
        self.lab, self.action = lab, action
        cmd = ["ip", "netns", "exec", lab.topo.ns("client"), sys.executable, "-m", "resetlens.lab.traffic", action,
               json.dumps(kwargs)]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        self.flows: list[dict] = []
        self.started = time.monotonic()
        lab.clients.append(self.proc)

    def _line(self) -> dict | None:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            return None
        obj = json.loads(line)
        if "flow" in obj:
            self.flows.append(obj["flow"])
            self.lab.ctx.flows.append(obj["flow"])
        return obj

    def wait_ready(self, name: str) -> None:
        while (obj := self._line()) is not None:
            if obj.get("ready") == name:
                return
        raise LabError(f"client action ended before step {name!r}")

    def go(self) -> None:
        self.proc.stdin.write("go\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def finish(self) -> list[dict]:
        while self._line() is not None:
            pass
        try:
            self.proc.wait(timeout=max(1.0, CLIENT_TIMEOUT - (time.monotonic() - self.started)))
        except subprocess.TimeoutExpired:
            stop_proc(self.proc)
            raise LabError("client action timed out") from None
        if self.proc.returncode != 0:
            raise LabError(f"client action {self.action} failed (exit {self.proc.returncode})")
        return self.flows


@dataclass
class Lab:
    workdir: Path
    topo: Topology = field(default_factory=Topology)
    procs: ProcessTable = field(default_factory=ProcessTable)
    ctx: verify.Ctx = field(default_factory=verify.Ctx)
    services: Services | None = None
    clients: list[subprocess.Popen] = field(
        default_factory=list
    )  # client actions, stopped by PID on teardown

    # --- helpers scenarios use --------------------------------------------------------------

    def client(self, action: str, **kwargs) -> list[dict]:
        return ClientRun(self, action, kwargs).finish()

    def client_start(self, action: str, **kwargs) -> ClientRun:
        return ClientRun(self, action, kwargs)

    def sh(self, host: str, *cmd: str, check: bool = True) -> str:
        return run(list(cmd), ns=self.topo.ns(host), check=check)

    def nft(self, host: str, script: str) -> None:
        run(["nft", "-f", "-"], ns=self.topo.ns(host), input=script)

    def nft_drop_table(self, host: str, table: str) -> None:
        run(["nft", "delete", "table", *table.split()], ns=self.topo.ns(host), check=False)

    def sysctl(self, host: str, key: str, value: str) -> None:
        self.sh(host, "sysctl", "-qw", f"{key}={value}")

    def mark(self, name: str) -> None:
        self.ctx.marks[name] = time.time()

    def spawn(self, name: str, host: str, module: str, *args: str) -> None:
        self.procs.spawn(name, [sys.executable, "-m", module, *args], ns=self.topo.ns(host),
                         stderr=self.workdir / f"{name}.stderr")  # fmt: skip

    @property
    def svc(self) -> Services:
        assert self.services is not None
        return self.services


@contextmanager
def lab_up(workdir: Path | None = None) -> Iterator[Lab]:
    """Build topology and services; tear everything down on exit, failure, Ctrl-C or SIGTERM."""
    require_root()
    own_tmp = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="resetlens-lab-")) if workdir is None else workdir
    previous = install_signal_handlers()
    lab = Lab(workdir=wd)
    try:
        lab.topo.up()
        for host in ("firewall",):
            lab.sysctl(host, "net.netfilter.nf_conntrack_acct", "1")
        lab.nft("firewall", BASELINE_NFT)
        lab.services = Services(lab.topo, lab.procs, wd)
        lab.services.start()
        yield lab
    finally:
        try:
            for proc in lab.clients:
                if proc.poll() is None:
                    stop_proc(proc)
            lab.procs.stop_all()
        finally:
            lab.topo.down()
            restore_signal_handlers(previous)
            if own_tmp:
                shutil.rmtree(wd, ignore_errors=True)


# The firewall's standing ruleset: count forwarded TCP, accept everything (scenarios add their own tables).
BASELINE_NFT = """
table inet lab {
    chain forward {
        type filter hook forward priority 10; policy accept;
        meta l4proto tcp counter
    }
}
"""


@dataclass
class Result:
    scenario: str
    bundle: Path
    resets: int
    problems: list[str]
    per_expectation: dict[str, int]


def run_scenario(lab: Lab, scenario, out: Path) -> Result:
    """One scenario -> one bundle in out/<name>, verified; raises nothing for a failed check (see problems)."""
    bundle = out / scenario.name
    if bundle.exists():
        shutil.rmtree(bundle)
    (bundle / "logs").mkdir(parents=True)
    lab.ctx = verify.Ctx()
    svc = lab.svc
    offsets = {kind: p.stat().st_size for kind, p in svc.logs.items()}
    dpi_log = lab.workdir / "firewall-dpi.log"
    dpi_log.touch()
    offsets["syslog"] = dpi_log.stat().st_size
    journal_start = len(svc.journal.entries)
    scenario.setup(lab)
    try:
        snapshot(lab.topo, bundle, "before")
        caps = Captures(lab.topo, lab.procs, bundle)
        caps.start()
        try:
            lab.mark("start")
            scenario.drive(lab)
            lab.mark("end")
        finally:
            caps.stop()
        snapshot(lab.topo, bundle, "after")
    finally:
        scenario.cleanup(lab)
    time.sleep(SETTLE)

    # logs: the slice this scenario wrote
    sources = {**svc.logs, "syslog": dpi_log}
    manifest_logs: list[dict] = []
    log_lines: dict[str, tuple[str, list[str]]] = {}
    for kind, (rel, host) in LOG_FILES.items():
        with open(sources[kind], "rb") as f:
            f.seek(offsets[kind])
            data = f.read()
        if not data:
            continue  # nothing logged during this scenario: no file, no [[log]] entry
        (bundle / rel).write_bytes(data)
        entry = {"path": rel, "kind": kind, "host": host}
        if kind == "nginx-access":
            entry["format"] = NGINX_LOG_FORMAT
        manifest_logs.append(entry)
        log_lines[kind] = (rel, data.decode("utf-8", "replace").splitlines())
    if svc.journal.write_json(bundle / "logs/journal.json", journal_start):
        svc.journal.write_binary(bundle / "logs/server.journal.gz", journal_start)
        manifest_logs.append({"path": "logs/journal.json", "kind": "journald-json", "host": "server"})
        log_lines["journald-json"] = (
            "logs/journal.json",
            (bundle / "logs/journal.json").read_text().splitlines(),
        )
    write_manifest(bundle, f"resetlens lab: {scenario.name}", manifest_logs)

    # truth, checked against the wire
    lab.ctx.logs = log_lines
    resets = verify.group(verify.read_sightings(bundle), lab.ctx.nat)
    problems = verify.label(resets, scenario.expects(), lab.ctx)
    truth = {
        "scenario": scenario.name,
        "description": scenario.description,
        "verified": not problems,
        "problems": problems,
        "flows": lab.ctx.flows,
        "resets": verify.truth_entries(resets, log_lines),
    }
    (bundle / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    counts: dict[str, int] = {}
    for r in resets:
        name = r.label.name if r.label else "(unlabelled)"
        counts[name] = counts.get(name, 0) + 1
    return Result(scenario.name, bundle, len(resets), problems, counts)
