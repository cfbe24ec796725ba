"""The incident-report checklist, ticked from evidence codes, log events and host snapshots."""

from __future__ import annotations

from resetlens.evidence import events
from resetlens.model import Analysis, CaptureSummary, Evidence, LogLine
from resetlens.report import view
from resetlens.report.sample import sample_analysis


def items(a: Analysis) -> dict[str, view.CheckItem]:
    return {i.key: i for i in view.checklist(a)}


def test_sample_checklist() -> None:
    got = items(sample_analysis())
    assert [i.status for i in got.values()] == [
        "present",
        "present",
        "present",
        "present",
        "missing",
        "present",
    ]
    assert any("journal.json:77" in d for d in got["restart"].details)
    assert any("keepalive_timeout" in d for d in got["knobs"].details)
    assert any("10.30.0.1:30211" in d for d in got["tuples"].details)  # the NAT mapping at proxy-front


def test_single_capture_no_logs_says_what_is_missing() -> None:
    a = sample_analysis()
    a.captures = a.captures[:1]
    for r in a.resets:
        r.seen_at = r.seen_at[:1]
        r.seen_at[0].src = ""  # addresses as at the first sighting only
        r.logs = []
        r.evidence = [e for e in r.evidence if e.code not in ("nat_mapping", "restart")]
    a.context_logs, a.log_sources = [], []
    got = items(a)
    assert got["two_vantages"].status == "missing" and "Only one capture" in got["two_vantages"].summary
    assert got["tuples"].status == "missing"
    assert (
        got["proxy_logs"].status == "missing"
        and "add the proxy's error and access logs" in got["proxy_logs"].summary
    )
    assert got["restart"].status == "missing"
    assert got["conntrack"].status == "missing"


def test_host_snapshot_and_events_tick_state_and_knobs() -> None:
    a = sample_analysis()
    for r in a.resets:
        r.evidence = [e for e in r.evidence if e.code not in ("knob", "restart")]
        r.logs = []
    a.log_sources = [
        {"kind": "host", "path": "snapshots/fw", "host": "fw", "lines": 3, "unparsed": 0,
         "summary": {"sysctl": {"net.ipv4.ip_local_port_range": "32768\t60999", "net.ipv4.tcp_abort_on_overflow": "1"}}},
        {"kind": "journald-json", "path": "logs/j.json", "lines": 10, "unparsed": 0},
    ]  # fmt: skip
    a.context_logs = [
        LogLine(
            "host",
            "snapshots/fw",
            1,
            None,
            "conntrack count 65000 of max 65536",
            "fw",
            events.CONNTRACK_PRESSURE,
        ),
        LogLine(
            "host", "snapshots/app", 1, None, "TcpExtListenOverflows +120", "app", events.LISTEN_OVERFLOW
        ),
    ]
    got = items(a)
    assert got["conntrack"].status == "present"
    assert "fw: net.ipv4.ip_local_port_range = 32768\t60999" in got["conntrack"].details
    assert any("conntrack count 65000" in d for d in got["conntrack"].details)
    assert got["restart"].status == "present" and any("ListenOverflows" in d for d in got["restart"].details)
    assert (
        got["knobs"].status == "present" and "fw: net.ipv4.tcp_abort_on_overflow = 1" in got["knobs"].details
    )


def test_host_logs_read_nothing_found_is_said() -> None:
    a = sample_analysis()
    for r in a.resets:
        r.logs = [x for x in r.logs if x.kind != "journald-json"]
        r.evidence = [e for e in r.evidence if e.code != "restart"]
    got = items(a)
    assert got["restart"].status == "none found"


def test_no_false_nat_or_knob_from_ordinary_words() -> None:
    a = Analysis(captures=[CaptureSummary("a", "a.pcap", None, 1, 1, 0.0, 1.0)] * 2)
    a.resets = sample_analysis().resets[4:]  # the undecided one, one vantage
    a.resets[0].evidence = [
        Evidence("x", "the destination alternative was not natively a signature of timeouts")
    ]
    got = items(a)
    assert got["tuples"].details and not any("destination" in d for d in got["tuples"].details)
    assert got["knobs"].status != "present"
