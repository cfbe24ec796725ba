"""`resetlens collect` for real: a namespace pair, a server that resets (SO_LINGER 0), a bounded client."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import tomllib
import uuid

import dpkt
import pytest

from resetlens.evidence.snapshots import load_snapshots

pytestmark = pytest.mark.lab

PY = sys.executable
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SERVER = textwrap.dedent(
    """
    import socket, struct, sys
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("10.99.0.2", 8080)); s.listen(16)
    for _ in range(200):  # bounded
        c, _ = s.accept()
        c.settimeout(2)
        try:
            c.recv(100)
        except OSError:
            pass
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # SO_LINGER 0: RST
    """
)
CLIENT = textwrap.dedent(
    """
    import socket, time
    for _ in range(300):  # bounded: about 60 s at most
        try:
            c = socket.create_connection(("10.99.0.2", 8080), timeout=1)
            c.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
            try:
                c.recv(100)
            except OSError:
                pass
            c.close()
        except OSError:
            pass
        time.sleep(0.2)
    """
)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def netns_pair():
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tcpdump") is None:
        pytest.skip("needs root, iproute2 and tcpdump")
    tag = uuid.uuid4().hex[:6]
    a, b = f"rlev{tag}a", f"rlev{tag}b"
    procs: list[subprocess.Popen] = []
    try:
        _ip("netns", "add", a)
        _ip("netns", "add", b)
        _ip("link", "add", f"v{tag}a", "type", "veth", "peer", "name", f"v{tag}b")
        _ip("link", "set", f"v{tag}a", "netns", a)
        _ip("link", "set", f"v{tag}b", "netns", b)
        _ip("-n", a, "addr", "add", "10.99.0.1/24", "dev", f"v{tag}a")
        _ip("-n", b, "addr", "add", "10.99.0.2/24", "dev", f"v{tag}b")
        for ns, dev in ((a, f"v{tag}a"), (b, f"v{tag}b")):
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield a, b, f"v{tag}b", procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(10)
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_collect_builds_a_bundle_with_resets(netns_pair, tmp_path):
    a, b, dev_b, procs = netns_pair
    server = subprocess.Popen(["ip", "netns", "exec", b, PY, "-c", SERVER])
    procs.append(server)
    out = tmp_path / "bundle"
    env = dict(os.environ, PYTHONPATH=ROOT)
    collector = subprocess.Popen(
        ["ip", "netns", "exec", b, PY, "-m", "resetlens.evidence.collect", "--out", str(out),
         "--duration", "60", "--until-resets", "3", "--iface", dev_b, "--host", "srv", "--ring-mb", "1", "--ring-files", "3"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    procs.append(collector)
    # start the client once tcpdump listens: the ring directory appears just before tcpdump starts
    client = subprocess.Popen(["ip", "netns", "exec", a, PY, "-c", CLIENT])
    procs.append(client)
    stdout, stderr = collector.communicate(timeout=120)
    assert collector.returncode == 0, stderr.decode()
    assert b"RST seen" in stdout

    manifest = tomllib.loads((out / "resetlens.toml").read_text())
    assert manifest["captures" if "captures" in manifest else "capture"][0]["host"] == "srv"
    cap = manifest["capture"][0]
    assert cap["vantage"] == f"srv-{dev_b}"
    assert manifest["host"][0]["name"] == "srv"
    assert "10.99.0.2" in manifest["host"][0]["addresses"]
    assert "timezone" in manifest

    # the merged capture holds the server's RSTs
    rsts = 0
    with open(out / cap["path"], "rb") as f:
        for _ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            if isinstance(eth.data, dpkt.ip.IP) and isinstance(eth.data.data, dpkt.tcp.TCP):
                tcp = eth.data.data
                if tcp.flags & dpkt.tcp.TH_RST and tcp.sport == 8080:
                    rsts += 1
    assert rsts >= 3

    # snapshots before and after, and the namespace's own counters saw the resets
    assert not (out / "captures" / ".ring").exists()
    hosts = load_snapshots(str(out))
    assert set(hosts) == {"srv"}
    hs = hosts["srv"]
    assert hs.before is not None and hs.after is not None
    assert hs.counter_deltas().get("TcpOutRsts", 0) >= 3
    assert any(s.state == "LISTEN" and s.lport == 8080 for s in hs.after.sockets)
    owner = hs.owner("10.99.0.2", 8080)
    assert owner is not None and owner.processes and owner.processes[0][0].startswith("python")
    assert "net.ipv4.tcp_abort_on_overflow" in hs.after.sysctl
    assert dev_b in hs.after.links
    facts = {f.event for f in hs.facts()}
    assert "rst_counters" in facts
    notes = (out / "collect-notes.txt").read_text()
    if not (out / "logs" / "journal.json").exists():
        assert "journal skipped" in notes


def test_collect_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "x").write_text("x")
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run(
        [PY, "-m", "resetlens.evidence.collect", "--out", str(tmp_path), "--duration", "1"],
        env=env, capture_output=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 2
    assert b"not empty" in p.stderr
    assert b"Traceback" not in p.stderr
