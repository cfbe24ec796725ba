"""The committed lab bundles (fixtures/lab): complete, contract-shaped, and truth.json true to the captures.

The captures are re-read here with dpkt, independently of both resetlens' reader and the lab's own
tshark-based verification.
"""

from __future__ import annotations

import json
import socket
import tomllib
from pathlib import Path

import dpkt
import pytest

from resetlens.blame.catalog import CAUSES

pytestmark = pytest.mark.lab

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "lab"
BUNDLES = (
    sorted(p for p in FIXTURES.iterdir() if (p / "resetlens.toml").exists()) if FIXTURES.exists() else []
)
ROLES = {"client", "proxy", "server", "firewall", "other"}
SENDER_ROLES = {"client", "proxy", "server", "middlebox"}
KINDS = {"kernel", "application", "injected"}
LOG_KINDS = {"nginx-error", "nginx-access", "haproxy", "envoy", "journald-json", "syslog", "app"}
DLT_EN10MB, DLT_LINUX_SLL2 = 1, 276
NANO_MAGIC = 0xA1B23C4D  # pcap magic of nanosecond captures
JOURNAL_FIELDS = ("__CURSOR", "__REALTIME_TIMESTAMP", "__MONOTONIC_TIMESTAMP", "_BOOT_ID", "_HOSTNAME", "_PID",
                  "_SYSTEMD_UNIT", "UNIT", "MESSAGE_ID", "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "_TRANSPORT")  # fmt: skip


def _addr(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)


def rst_frames(path: Path) -> tuple[int, dict[int, tuple]]:
    """(link type, {1-based frame: (src, sport, dst, dport, seq, ack)}) for every top-level TCP RST."""
    out = {}
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        link = reader.datalink()
        for n, (_, buf) in enumerate(reader, start=1):
            l2 = dpkt.sll2.SLL2(buf) if link == DLT_LINUX_SLL2 else dpkt.ethernet.Ethernet(buf)
            ip = l2.data
            if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            if tcp.flags & dpkt.tcp.TH_RST:
                out[n] = (_addr(ip.src), tcp.sport, _addr(ip.dst), tcp.dport, tcp.seq, tcp.ack)
    return link, out


def test_fixtures_cover_every_scenario() -> None:
    from resetlens.lab.scenarios import SCENARIOS

    assert {b.name for b in BUNDLES} == set(SCENARIOS)


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_manifest_is_contract_shaped(bundle: Path) -> None:
    m = tomllib.loads((bundle / "resetlens.toml").read_text())
    assert m["timezone"] == "UTC"
    hosts = {h["name"]: h for h in m["host"]}
    assert {h["role"] for h in m["host"]} <= ROLES
    assert len({c["vantage"] for c in m["capture"]}) == len(m["capture"]) == 5
    for c in m["capture"]:
        assert c["host"] in hosts and (bundle / c["path"]).stat().st_size > 24
    for log in m.get("log", []):
        assert log["kind"] in LOG_KINDS and (bundle / log["path"]).exists()
        if log["kind"] == "nginx-access":
            assert "$remote_addr:$remote_port" in log["format"] and "$upstream_status" in log["format"]
    for host in hosts:
        for name in ("ss", "nstat", "nft", "conntrack", "link", "sysctl"):
            for when in ("before", "after"):
                assert (bundle / "snapshots" / host / f"{name}-{when}.txt").exists()


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_truth_matches_the_captures(bundle: Path) -> None:
    truth = json.loads((bundle / "truth.json").read_text())
    m = tomllib.loads((bundle / "resetlens.toml").read_text())
    assert truth["scenario"] == bundle.name and truth["verified"] is True and truth["resets"]
    wire: dict[tuple[str, int], tuple] = {}
    for c in m["capture"]:
        link, frames = rst_frames(bundle / c["path"])
        assert link in (DLT_EN10MB, DLT_LINUX_SLL2)
        wire.update({(c["vantage"], n): pkt for n, pkt in frames.items()})
    claimed = [(s["vantage"], s["frame"]) for r in truth["resets"] for s in r["seen_at"]]
    assert len(claimed) == len(set(claimed)), "one sighting claimed by two resets"
    assert set(claimed) == set(wire), "every RST on the wire is labelled, every labelled RST is on the wire"
    for r in truth["resets"]:
        for s in r["seen_at"]:
            src, sport, dst, dport, seq, ack = wire[(s["vantage"], s["frame"])]
            assert (sport, dport, seq, ack) == (r["sport"], r["dport"], r["seq"], r["ack"])
            assert (src, dst) == (r["src"], r["dst"])


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_truth_labels_use_the_contract_vocabulary(bundle: Path) -> None:
    truth = json.loads((bundle / "truth.json").read_text())
    for r in truth["resets"]:
        sender = r["sender"]
        assert sender["role"] in SENDER_ROLES and sender["kind"] in KINDS and r["cause"] in CAUSES
        if sender["kind"] == "injected":
            assert (sender["role"], sender["host"]) == ("middlebox", "firewall")
        else:
            assert sender["role"] == sender["host"]  # lab host names equal their roles
        for hit in r["logs"]:
            lines = (bundle / hit["path"]).read_text().splitlines()
            assert 1 <= hit["line"] <= len(lines)


def test_link_types_and_precisions_are_mixed() -> None:
    magics, links = set(), set()
    for c in tomllib.loads((BUNDLES[0] / "resetlens.toml").read_text())["capture"]:
        with open(BUNDLES[0] / c["path"], "rb") as f:
            head = f.read(24)
        magics.add(int.from_bytes(head[:4], "little"))
        links.add(int.from_bytes(head[20:24], "little"))
    assert NANO_MAGIC in magics and len(magics) == 2
    assert links == {DLT_EN10MB, DLT_LINUX_SLL2}


def test_any_capture_shows_forwarded_resets_twice() -> None:
    truth = json.loads((FIXTURES / "app_abort" / "truth.json").read_text())
    twice = [r for r in truth["resets"] if sum(s["vantage"] == "firewall" for s in r["seen_at"]) == 2]
    assert twice, "a forwarded RST appears on both firewall interfaces in the -i any capture"
    for r in twice:  # ingress and egress copies: the TTL drops by one inside the router
        ttls = sorted(s["ttl"] for s in r["seen_at"] if s["vantage"] == "firewall")
        assert ttls[1] - ttls[0] == 1


@pytest.mark.parametrize("name", ["no_listener", "half_open_restart"])
def test_journal_lines_are_journalctl_json(name: str) -> None:
    lines = (FIXTURES / name / "logs" / "journal.json").read_text().splitlines()
    assert lines
    for line in lines:
        entry = json.loads(line)
        assert all(isinstance(v, str) for v in entry.values())
        assert all(k in entry for k in JOURNAL_FIELDS)
        assert (
            entry["_PID"] == "1"
            and entry["_SYSTEMD_UNIT"] == "init.scope"
            and entry["_TRANSPORT"] == "journal"
        )
        assert entry["SYSLOG_IDENTIFIER"] == "systemd" and entry["__REALTIME_TIMESTAMP"].isdigit()
        assert entry["UNIT"] == "resetlens-backend.service"
    exits = [json.loads(x) for x in lines if '"EXIT_CODE"' in x]
    assert exits and exits[0]["EXIT_CODE"] == "killed" and exits[0]["EXIT_STATUS"] == "9"
