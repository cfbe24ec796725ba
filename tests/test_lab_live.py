"""The lab, live: build the namespaces, run scenarios into a tmp dir, check the self-verified bundles."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

TOOLS = ("ip", "nft", "tcpdump", "tshark", "nginx", "haproxy", "conntrack", "openssl")


def _lab_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, nftables, tcpdump)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"the lab needs {', '.join(missing)}"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`ip netns` unavailable: {probe.stderr.strip()}"
    return None


REASON = _lab_unavailable()
skip_no_lab = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def _our_namespaces(pid: int) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"rlab{pid}-")]


@skip_no_lab
def test_scenarios_run_verify_and_tear_down(tmp_path: Path) -> None:
    from resetlens.lab.runner import lab_up, run_scenario
    from resetlens.lab.scenarios import SCENARIOS
    from resetlens.lab.verify import check_truth_file

    names = ["app_abort", "dpi_injection", "half_open_restart"]
    with lab_up() as lab:
        assert len(_our_namespaces(os.getpid())) == 4
        assert {"backend", "syslogd", "nginx", "haproxy"} <= set(lab.procs.procs)
        results = [run_scenario(lab, SCENARIOS[name], tmp_path) for name in names]
    assert _our_namespaces(os.getpid()) == [], "namespaces left behind"
    pids = lab.procs.spawned + [p.pid for p in lab.clients]
    assert len(pids) > 4 + 5 * len(names)  # services, five tcpdumps per scenario, injector, client actions
    for pid in pids:  # every process the lab started is gone (reaped, so its PID no longer exists)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

    for res in results:
        assert res.problems == [], res.problems
        bundle = res.bundle
        manifest = tomllib.loads((bundle / "resetlens.toml").read_text())
        assert {c["vantage"] for c in manifest["capture"]} == {
            "client",
            "firewall",
            "proxy-front",
            "proxy-back",
            "server",
        }
        for entry in manifest["capture"] + manifest["log"]:
            assert (bundle / entry["path"]).stat().st_size > 0, entry
        for host in ("client", "firewall", "proxy", "server"):
            assert (bundle / "snapshots" / host / "nstat-before.txt").exists()
            assert (bundle / "snapshots" / host / "ss-after.txt").exists()
        truth = json.loads((bundle / "truth.json").read_text())
        assert truth["verified"] is True and truth["resets"]
        assert check_truth_file(bundle, truth) == []

    dpi = json.loads((tmp_path / "dpi_injection/truth.json").read_text())
    injected = [r for r in dpi["resets"] if r["sender"]["kind"] == "injected"]
    assert len(injected) == 4
    for r in injected:  # a forged reset never appears at the host whose address it claims
        claimed = "server" if r["src"] == "10.77.3.2" else "client"
        assert claimed not in {s["vantage"] for s in r["seen_at"]}

    half = tmp_path / "half_open_restart"
    journal = [json.loads(line) for line in (half / "logs/journal.json").read_text().splitlines()]
    assert [e["MESSAGE_ID"] for e in journal][:1] == ["98e322203f7a4ed290d09fe03c09fe15"]
    assert all(isinstance(v, str) for e in journal for v in e.values())
    assert (half / "logs/server.journal.gz").exists()


@skip_no_lab
def test_sweep_removes_stale_lab_namespaces() -> None:
    from resetlens.lab.topology import sweep_stale

    # a PID that cannot be alive: above the kernel's pid_max
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    stale = f"rlab{pid_max + 1}-client"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        assert stale in sweep_stale()
        assert stale not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True)


@skip_no_lab
def test_unknown_scenario_is_a_usage_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from resetlens.lab.cli import lab_app

    res = CliRunner().invoke(lab_app, ["run", "no_such_scenario", "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "unknown scenario" in res.output
