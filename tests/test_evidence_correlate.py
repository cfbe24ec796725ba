"""Correlation of parsed logs and host snapshots with resets (resets as the pipeline's model fills them)."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from resetlens import model
from resetlens.evidence import parse_bytes, parse_log
from resetlens.evidence.base import Options
from resetlens.evidence.correlate import correlate
from resetlens.evidence.snapshots import HostSnapshots, Snapshot, load_snapshots, parse_ss

FIX = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "logs")
T0 = dt.datetime(2025, 12, 31, 1, 58, 12, tzinfo=dt.UTC).timestamp()


def fx(name: str) -> str:
    return os.path.join(FIX, name)


def reset(
    rid: str, ts: float, src: str, sport: int, dst: str, dport: int, *extra: tuple[str, int, str, int, float]
) -> model.Reset:
    """A reset with one sighting as written, plus sightings of the same RST elsewhere (NAT)."""
    seen = [model.Sighting("v0", ts, 1, 64, 0, src=src, sport=sport, dst=dst, dport=dport)]
    for i, (s, sp, d, dp, t) in enumerate(extra, 1):
        seen.append(model.Sighting(f"v{i}", t, 1, 63, 0, src=s, sport=sp, dst=d, dport=dp))
    return model.Reset(id=rid, ts=ts, src=src, sport=sport, dst=dst, dport=dport, seen_at=seen)


def lines_of(result, rid):
    return {(x.path.rsplit("/", 1)[-1], x.line): x for x in result.by_reset[rid]}


def test_proxy_logs_by_upstream_client_port_and_nginx_connection():
    r1 = reset("r1", T0 + 0.010, "10.0.0.9", 8080, "10.0.0.2", 41830)  # upstream RST to nginx
    r2 = reset("r2", T0 + 2.050, "203.0.113.7", 51520, "203.0.113.1", 443)  # client RST
    err = parse_log(fx("nginx-error.log"), "nginx-error", host="proxy")
    acc = parse_log(fx("nginx-access-rl.log"), "nginx-access", fmt="rl", host="proxy")
    res = correlate([r1, r2], [err, acc])
    l1 = lines_of(res, "r1")
    assert l1[("nginx-error.log", 1)].match == "upstream+time"
    assert l1[("nginx-error.log", 1)].event == "upstream_reset"
    assert l1[("nginx-access-rl.log", 1)].match == "upstream+time"
    l2 = lines_of(res, "r2")
    assert l2[("nginx-access-rl.log", 2)].match == "client-port"
    assert l2[("nginx-error.log", 2)].match in ("client+time", "nginx-connection")
    assert r1.logs and r1.logs[0].ts <= r1.logs[-1].ts  # attached to the model, in time order
    # unmatched lines are context, never dropped
    ctx = {(x.path.rsplit("/", 1)[-1], x.line) for x in res.context}
    assert ("nginx-error.log", 8) in ctx and all(x.match == "" for x in res.context)
    src = {s["path"].rsplit("/", 1)[-1]: s for s in res.sources}
    assert src["nginx-error.log"]["matched"] >= 2 and src["nginx-error.log"]["unparsed"] == 2
    assert src["nginx-access-rl.log"]["clock_offset_pairs"] == 1
    assert src["nginx-access-rl.log"]["clock_offset_applied"] is False


def test_nginx_connection_number_joins_error_and_access_lines():
    fmt = "$msec $remote_addr:$remote_port $server_addr:$server_port $connection $status"
    access = parse_bytes(
        b"1767146330.500 198.51.100.4:40000 203.0.113.1:443 950 499\n",
        "nginx-access",
        path="a.log",
        opts=Options(fmt=fmt, host="px"),
    )
    error = parse_bytes(
        b'2025/12/31 01:58:20 [info] 7#7: *950 client prematurely closed connection while reading upstream, client: 198.51.100.4, '
        b'server: x, request: "GET /a HTTP/1.1", upstream: "http://10.0.0.77:80/a", host: "x"\n',
        "nginx-error", path="e.log", opts=Options(host="px"),
    )  # fmt: skip
    r = reset("r", T0 + 38.6, "198.51.100.4", 40000, "203.0.113.1", 443)
    res = correlate([r], [error, access])
    got = lines_of(res, "r")
    assert got[("a.log", 1)].match == "4-tuple"  # $remote_addr:$remote_port $server_addr:$server_port
    assert got[("e.log", 1)].match == "nginx-connection"  # 18 s earlier: only *950 ties it


def test_haproxy_4_tuple_through_nat_and_clock_offset():
    skew = 5.0  # the HAProxy host's clock is 5 s behind the captures
    r5 = reset(
        "r5",
        T0 + 0.007 + skew,
        "192.0.2.9",
        80,
        "198.51.100.2",
        61000,
        ("10.0.0.9", 8080, "10.0.0.2", 41830, T0 + 0.0071 + skew),
    )
    r6 = reset("r6", T0 + 4.006 + skew, "10.0.0.9", 5432, "10.0.0.2", 41831)
    log = parse_log(fx("haproxy-custom.log"), "haproxy", year=2025)
    res = correlate([r5, r6], [log])
    (a,) = res.by_reset["r5"]
    assert a.match == "4-tuple" and a.event == "upstream_reset"
    assert a.ts == pytest.approx(r5.ts, abs=0.01)  # the estimated offset was applied
    (src,) = res.sources
    assert src["clock_offset"] == pytest.approx(skew, abs=0.01) and src["clock_offset_pairs"] == 2
    assert src["clock_offset_applied"] is True and src["matched"] == 2


def test_journald_lifecycle_before_a_reset_on_the_units_port():
    exited = T0 + 0.345678
    r7 = reset(
        "r7", exited + 0.040, "10.0.0.9", 22400, "10.0.0.5", 36828
    )  # 40 ms after the main process died
    far = reset("far", T0 + 600, "10.0.0.9", 22400, "10.0.0.5", 36900)
    log = parse_log(fx("journald.json"), "journald-json")
    ss = 'State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\nLISTEN 0 4096 10.0.0.9:22400 0.0.0.0:* users:(("api",pid=4242,fd=3))\n'
    snaps = {
        "app-1": HostSnapshots(
            "app-1", after=Snapshot(sockets=parse_ss(ss), files={"ss": "snapshots/app-1/ss-after.txt"})
        )
    }
    hosts = [model.Host("app-1", "server", ["10.0.0.9"])]
    res = correlate([r7, far], [log], hosts=hosts, snapshots=snaps)
    got = {x.event: x for x in res.by_reset["r7"] if x.kind == "journald-json"}
    assert got["unit_exited"].match == "unit+port+time" and got["unit_exited"].fields["unit"] == "api.service"
    assert got["unit_stopping"].match == "unit+port+time"
    assert got["app_rst_received"].match == "4-tuple"
    assert got["oom_kill"].match == "host+time"
    owner = [x for x in res.by_reset["r7"] if x.event == "socket_owner"]
    assert owner and owner[0].match == "ss-socket" and "api pid 4242" in owner[0].text
    assert not [x for x in res.by_reset["far"] if x.kind == "journald-json"]  # 10 minutes later: unrelated
    ctx = {x.event for x in res.context}
    assert {"syn_flood", "firewall_log"} <= ctx


def test_kernel_lines_without_hosts_match_by_time_and_port():
    r = reset("r", T0 + 0.5, "10.0.0.9", 443, "203.0.113.7", 50000)
    log = parse_log(fx("journald-short-iso.log"), "journald-text")
    res = correlate([r], [log])
    got = {x.event: x.match for x in res.by_reset["r"]}
    assert got["syn_flood"] == "port+time"
    assert got["unit_exited"] == "time"


def test_snapshot_facts_reject_rule_and_counters():
    snaps = load_snapshots(FIX)
    hosts = [model.Host("app-1", "server", ["10.99.0.9"])]
    r = reset("r", T0, "10.99.0.9", 9999, "10.99.0.1", 40000)
    other = reset("o", T0, "10.0.0.9", 9999, "10.0.0.1", 40000)  # not on that host
    res = correlate([r, other], [], hosts=hosts, snapshots=snaps)
    got = res.by_reset["r"]
    rules = [x for x in got if x.event == "nft_reject_rule"]
    assert len(rules) == 1  # only the rule whose dports include 9999
    assert rules[0].match == "nft-rule" and rules[0].line == 5  # its line in nft-after.txt
    assert any("dport 9999" in x.text and x.fields["packets_delta"] == 7 for x in rules)
    assert not any("7000" in x.text for x in rules)
    assert any(x.event == "rst_counters" and x.match == "host-counters" for x in got)
    assert res.by_reset["o"] == []
    (src,) = res.sources
    assert src["kind"] == "host" and src["summary"]["counter_deltas"]["TcpOutRsts"] == 5


def test_no_resets_everything_is_context():
    log = parse_log(fx("envoy.log"), "envoy")
    res = correlate([], [log])
    assert len(res.context) == sum(1 for r in log.records if r.event != "request")
    assert res.sources[0]["matched"] == 0


def test_manifest_host_names_the_journal_when_hostname_differs():
    """_HOSTNAME says app-1, the manifest calls the machine "api": the file's manifest host maps the addresses."""
    r = reset("r", T0 + 0.385678, "10.0.0.9", 22400, "10.0.0.5", 36828)
    elsewhere = reset("e", T0 + 0.385678, "10.9.9.9", 22400, "10.0.0.5", 36829)
    log = parse_log(fx("journald.json"), "journald-json", host="api")
    res = correlate([r, elsewhere], [log], hosts=[model.Host("api", "server", ["10.0.0.9"])])
    got = {x.event: x.match for x in res.by_reset["r"]}
    assert got["unit_exited"] == "host+time"
    assert not [x for x in res.by_reset["e"] if x.event == "unit_exited"]


def test_access_line_matches_any_upstream_nginx_tried():
    fmt = open(fx("nginx-access-rl.format")).read()
    log = parse_log(fx("nginx-access-rl.log"), "nginx-access", fmt=fmt)
    r = reset("r", T0 + 7.249, "10.0.0.10", 8080, "10.0.0.2", 45000)  # the second of three peers tried
    res = correlate([r], [log])
    (line,) = [x for x in res.by_reset["r"]]
    assert line.line == 3 and line.match == "upstream+time"


def test_nginx_error_log_clock_offset_from_upstream_resets():
    """No 4-tuple in the nginx error log: its skew comes from the upstream RSTs its 502 lines describe."""
    skew = 30.0  # the proxy's clock is 30 s behind
    lines, resets = [], []
    for i in range(5):
        t = T0 + 100 * i
        stamp = dt.datetime.fromtimestamp(t - skew, dt.UTC).strftime("%Y/%m/%d %H:%M:%S")
        lines.append(
            f"{stamp} [error] 7#7: *{i + 1} recv() failed (104: Connection reset by peer) while reading response header "
            f'from upstream, client: 203.0.113.7, server: x, request: "GET / HTTP/1.1", upstream: "http://10.0.0.9:8080/", host: "x"'
        )
        resets.append(reset(f"r{i}", t + 0.3, "10.0.0.9", 8080, "10.0.0.2", 41000 + i))
    log = parse_bytes(("\n".join(lines) + "\n").encode(), "nginx-error", path="e.log")
    res = correlate(resets, [log])
    (src,) = res.sources
    assert src["clock_offset"] == pytest.approx(skew + 0.3) and src["clock_offset_pairs"] == 5
    assert src["clock_offset_applied"] is True and src["clock_offset_basis"].startswith("upstream")
    for i in range(5):
        (line,) = res.by_reset[f"r{i}"]
        assert line.match == "upstream+time" and line.line == i + 1
