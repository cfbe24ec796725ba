"""Host snapshots: the real outputs in fixtures/logs/snapshots/app-1 and the other layouts the tools print."""

from __future__ import annotations

import os

from resetlens.evidence.snapshots import (
    load_host,
    load_snapshots,
    parse_conntrack_count,
    parse_ip_link,
    parse_netstat,
    parse_nft,
    parse_ss,
    rule_matches_port,
)

FIX = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "logs")
HOST = os.path.join(FIX, "snapshots", "app-1")


def test_real_snapshot_bundle():
    hs = load_host(HOST)
    assert hs.host == "app-1" and hs.before and hs.after and not hs.warnings
    assert hs.counter_deltas()["TcpOutRsts"] == 5
    # ss -tanpi: listener with its process, established sockets with -i details
    listener = hs.owner("10.99.0.9", 22400)
    assert listener.state == "LISTEN" and listener.processes[0][0] == "python3" and "cwnd" in listener.info
    est = [s for s in hs.after.sockets if s.state == "ESTAB"]
    assert len(est) == 4 and any(s.processes for s in est)
    client_side = next(s for s in est if s.processes)
    assert hs.owner(client_side.local, client_side.lport, client_side.peer, client_side.pport) is client_side
    # nft list ruleset: the three reject rules with their counters, limits and ports
    rules = hs.after.rejects
    assert [r["dports"] for r in rules] == [[9999], [7000, 7001], [[8000, 8100]]]
    assert rules[0]["limit"] == "limit rate over 5/second" and rules[0]["packets"] == 7
    assert rules[0]["key"] == "tcp dport 9999 limit rate over 5/second  reject with tcp reset"
    assert {r["key"] for r in hs.before.rejects} == {r["key"] for r in rules}
    assert (rules[0]["table"], rules[0]["chain"]) == ("inet rl", "input")
    assert rule_matches_port(rules[2], 8080) and not rule_matches_port(rules[2], 9999)
    # conntrack: count and max, summed per-CPU stats
    assert hs.after.conntrack["max"] == 262144 and hs.after.conntrack["count"] > 0
    assert "insert_failed" in hs.after.conntrack
    # ip -s link and sysctls
    assert {"lo", "d0", "d1"} <= set(hs.after.links) and "rx_dropped" in hs.after.links["d0"]
    assert hs.after.sysctl["net.ipv4.tcp_abort_on_overflow"] == "0"
    assert hs.after.sysctl["net.ipv4.ip_local_port_range"].split() == ["32768", "60999"]
    # netstat -s maps onto nstat names
    netstat = open(os.path.join(HOST, "netstat-after.txt")).read()
    assert parse_netstat(netstat)["TcpOutRsts"] == hs.after.counters["TcpOutRsts"]
    facts = {f.event: f for f in hs.facts()}
    assert facts["rst_counters"].fields["TcpOutRsts"] == 5
    assert "nft_reject_rule" in facts and "abort_on_overflow" not in facts
    assert set(load_snapshots(FIX)) == {"app-1"}


def test_abort_on_overflow_listen_overflows_and_conntrack_pressure(tmp_path):
    d = tmp_path / "snapshots" / "lb"
    d.mkdir(parents=True)
    (d / "nstat-before.txt").write_text(
        "#kernel\nTcpExtListenOverflows 10 0.0\nTcpExtListenDrops 10 0.0\nTcpExtTCPAbortOnData 1 0.0\n"
    )
    (d / "nstat-after.txt").write_text(
        "#kernel\nTcpExtListenOverflows 25 0.0\nTcpExtListenDrops 25 0.0\nTcpExtTCPAbortOnData 4 0.0\n"
    )
    (d / "sysctl-after.txt").write_text(
        "net.ipv4.tcp_abort_on_overflow = 1\nnet.netfilter.nf_conntrack_max = 100\n"
    )
    (d / "conntrack-count-after.txt").write_text("95\n")
    (d / "conntrack-stats-before.txt").write_text(
        "cpu=0 found=0 drop=1 insert_failed=0\ncpu=1 found=0 drop=0 insert_failed=0\n"
    )
    (d / "conntrack-stats-after.txt").write_text(
        "cpu=0 found=0 drop=3 insert_failed=1\ncpu=1 found=0 drop=2 insert_failed=0\n"
    )
    (d / "ip-link-before.txt").write_text(
        "2: eth0: <UP> mtu 1500\n    RX:  bytes packets errors dropped  missed   mcast\n    100 1 0 0 0 0\n    TX:  bytes packets errors dropped carrier collsns\n    100 1 0 0 0 0\n"
    )
    (d / "ip-link-after.txt").write_text(
        "2: eth0: <UP> mtu 1500\n    RX:  bytes packets errors dropped  missed   mcast\n    900 9 0 7 0 0\n    TX:  bytes packets errors dropped carrier collsns\n    900 9 0 0 0 0\n"
    )
    (d / "bogus-after.txt").write_text("x")
    hs = load_snapshots(str(tmp_path))["lb"]
    assert any("bogus" in w for w in hs.warnings)
    facts = {f.event: f for f in hs.facts()}
    assert facts["listen_overflow"].fields == {
        "TcpExtListenOverflows": 15,
        "TcpExtListenDrops": 15,
        "path": str(d / "nstat-after.txt"),
    }
    assert facts["abort_counters"].fields["TcpExtTCPAbortOnData"] == 3
    assert "abort_on_overflow" in facts
    ct = facts["conntrack_pressure"].fields
    assert (ct["count"], ct["max"], ct["drop"], ct["insert_failed"]) == (95, 100, 4, 1)
    assert facts["link_drops"].fields["rx_dropped"] == 7


def test_ss_forms_and_iptables_and_counts():
    ss = (
        "State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
        'ESTAB  0 0 [::ffff:10.0.0.9]:8080 [::ffff:10.0.0.5]:51514 users:(("nginx",pid=10,fd=7),("nginx",pid=11,fd=7))\n'
        "LISTEN 0 511 *:443 *:*\n"
        "ESTAB  0 0 [2001:db8::1]:443 [2001:db8::2]:50000\n"
        "garbage line\n"
    )
    socks = parse_ss(ss)
    assert [(s.local, s.lport, s.peer, s.pport) for s in socks] == [
        ("10.0.0.9", 8080, "10.0.0.5", 51514),
        ("*", 443, "*", 0),
        ("2001:db8::1", 443, "2001:db8::2", 50000),
    ]
    assert socks[0].processes == [("nginx", 10, 7), ("nginx", 11, 7)]
    ipt = parse_nft(
        "-A INPUT -p tcp -m tcp --dport 8000:8100 -j REJECT --reject-with tcp-reset\n-A INPUT -j ACCEPT\n"
    )
    assert ipt == [
        {
            "table": "",
            "chain": "INPUT",
            "rule": ipt[0]["rule"],
            "key": ipt[0]["rule"],
            "line": 1,
            "dports": [[8000, 8100]],
        }
    ]
    assert parse_conntrack_count("42\n262144\n") == {"count": 42, "max": 262144}
    assert parse_ip_link("garbage") == {}


def test_combined_conntrack_and_link_files(tmp_path):
    """`conntrack-*.txt` holding both `conntrack -S` and `-C` (with `$ cmd` headers), `link-*.txt` for ip -s link."""
    d = tmp_path / "snapshots" / "fw"
    d.mkdir(parents=True)
    stats = "$ conntrack -S\ncpu=0   \tfound=0 invalid={} insert=0 insert_failed=0 drop=0\ncpu=1   \tfound=0 invalid=0 insert=0 insert_failed=0 drop=0\n$ conntrack -C\n{}\n"
    (d / "conntrack-before.txt").write_text(stats.format(0, 3))
    (d / "conntrack-after.txt").write_text(stats.format(4, 49))
    link = "$ ip -s link\n2: eth0@if3: <UP> mtu 1500\n    RX:  bytes packets errors dropped  missed   mcast\n    10 1 0 {} 0 0\n"
    (d / "link-before.txt").write_text(link.format(0))
    (d / "link-after.txt").write_text(link.format(2))
    hs = load_snapshots(str(tmp_path))["fw"]
    assert not hs.warnings
    assert hs.after.conntrack["count"] == 49 and hs.after.conntrack["invalid"] == 4
    assert hs.after.links["eth0"]["rx_dropped"] == 2
    assert {f.event for f in hs.facts()} == {"link_drops"}
