"""Every log parser against the fixtures composed from the reference's exact formats."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess

import pytest

from resetlens.errors import ResetlensError
from resetlens.evidence import EVENTS, parse_bytes, parse_log
from resetlens.evidence.base import Options
from resetlens.evidence.haproxy import termination

FIX = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "logs")
# 2025-12-31 01:58:12 UTC, the time of the reference's sample lines.
T0 = dt.datetime(2025, 12, 31, 1, 58, 12, tzinfo=dt.UTC).timestamp()


def fx(name: str) -> str:
    return os.path.join(FIX, name)


def by_line(log):
    return {r.line: r for r in log.records}


def test_every_event_code_has_a_meaning():
    assert len(EVENTS) > 40
    for code, e in EVENTS.items():
        assert e.code == code and e.meaning and e.signal and e.side


# -- nginx -------------------------------------------------------------------------------------


def test_nginx_error_log_messages_from_the_reference_table():
    log = parse_log(fx("nginx-error.log"), "nginx-error")
    r = by_line(log)
    assert log.lines_total == 20 and log.unparsed == 2
    assert [e.line for e in log.examples] == [19, 20]
    assert "impossible date" in log.examples[1].reason
    first = r[1]
    assert first.ts == T0 and first.event == "upstream_reset"
    f = first.fields
    assert (f["connection"], f["level"], f["pid"], f["errno"]) == (884, "error", 1192, 104)
    assert (f["client"], f["server"], f["host"]) == ("203.0.113.7", "api.example.com", "api.example.com")
    assert f["request"] == "POST /v1/orders HTTP/1.1"
    assert (f["upstream_addr"], f["upstream_port"], f["upstream_uri"]) == ("10.0.0.9", 8080, "/v1/orders")
    assert f["action"] == "reading response header from upstream"
    expected = {
        2: "client_reset",  # client prematurely closed ... (104)
        3: "upstream_fin",
        4: "upstream_fin",
        5: "upstream_timeout",
        6: "upstream_timeout",
        7: "upstream_refused",
        8: "no_live_upstreams",
        9: "policy_reject",
        10: "policy_reject",
        11: "client_closed_idle",
        12: "client_timeout",
        13: "client_abort",  # writev() failed (32: Broken pipe) while sending to client
        14: "client_reset",
        15: "tls_handshake_failed",
        16: "tls_handshake_failed",
        17: "client_abort",
    }
    assert {n: r[n].event for n in expected} == expected
    assert (r[7].fields["upstream_addr"], r[7].fields["upstream_port"]) == ("2001:db8::9", 8080)
    assert r[8].fields["upstream_group"] == "backend"
    assert 18 not in r and log.ignored == 1  # [notice] signal process started


def test_nginx_error_log_time_is_local_in_the_manifest_zone():
    log = parse_log(fx("nginx-error.log"), "nginx-error", tz="Europe/Berlin")
    assert log.records[0].ts == T0 - 3600


def test_nginx_access_combined():
    log = parse_log(fx("nginx-access-combined.log"), "nginx-access")
    r = by_line(log)
    assert log.unparsed == 1 and log.examples[0].line == 5
    assert r[1].ts == T0 and r[1].event == "upstream_error" and r[1].fields["status"] == 502
    assert r[2].event == "client_abort" and r[2].fields["http_user_agent"].startswith("Mozilla/5.0 (X11")
    assert r[3].ts == T0 + 5 and r[3].fields["remote_user"] == "alice"  # +0100 offset honoured
    assert r[4].event == "request"


def test_nginx_access_custom_format_with_upstream_lists():
    fmt = open(fx("nginx-access-rl.format")).read()
    log = parse_log(fx("nginx-access-rl.log"), "nginx-access", fmt=fmt)
    assert log.unparsed == 0 and log.resolution == 0.001
    r = by_line(log)
    assert r[1].ts == pytest.approx(T0 + 0.021)
    f = r[1].fields
    assert (f["client"], f["connection"], f["request_id"]) == (
        "203.0.113.7:51514",
        884,
        "9b2f1c3a0d2a4c7e9b1f00aa12cd34ee",
    )
    assert f["synthesized_502"] is True and f["upstream_addr"] == "10.0.0.9"
    tries = r[3].fields["upstreams"]
    assert [(t["ip"], t["port"], t["group"], t["status"]) for t in tries] == [
        ("2001:db8::9", 8080, 0, 502),
        ("10.0.0.10", 8080, 0, 502),
        ("10.1.0.1", 80, 1, 502),
    ]
    assert tries[0]["header_time"] is None and tries[2]["response_time"] == 0.002
    assert r[2].event == "client_abort" and r[2].fields["request_time"] == 4.012


def test_nginx_access_named_formats_are_the_same():
    data = open(fx("nginx-access-rl.log"), "rb").read()
    a = parse_bytes(data, "nginx-access", opts=Options(fmt="rl"))
    b = parse_bytes(data, "nginx-access", opts=Options(fmt=open(fx("nginx-access-rl.format")).read()))
    assert [x.fields for x in a.records] == [x.fields for x in b.records]


# -- HAProxy -----------------------------------------------------------------------------------


def test_haproxy_tcplog_and_httplog_with_rfc3164_header():
    log = parse_log(fx("haproxy-rfc3164.log"), "haproxy", year=2025)
    r = by_line(log)
    assert log.unparsed == 1 and log.examples[0].text == "random junk line"
    tcp = r[1]
    assert tcp.host == "lb1" and tcp.event == "upstream_reset"
    f = tcp.fields
    assert (f["mode"], f["client"], f["frontend"], f["backend"], f["server"]) == (
        "tcp",
        "203.0.113.7:51514",
        "fe_pg",
        "be_pg",
        "pg1",
    )
    assert (f["Tw"], f["Tc"], f["Tt"], f["bytes"], f["termination"]) == (0, 1, 3002, 8123, "SD")
    assert tcp.ts == pytest.approx(T0 - 2.88 + 3.002)  # accept date + Tt
    assert "RST or ICMP" in f["termination_meaning"]
    http = r[2].fields
    assert (http["status"], http["termination"], http["ssl"], http["Tr"], http["request"]) == (
        502,
        "SH--",
        True,
        -1,
        "POST /v1/orders HTTP/1.1",
    )
    assert r[2].event == "upstream_abort"
    assert r[3].event == "client_abort" and r[3].fields["status"] == -1
    assert (
        r[4].event == "upstream_refused"
        and r[4].fields["server"] == "<NOSRV>"
        and r[4].fields["retries"] == 3
    )
    assert r[5].event == "upstream_timeout"
    assert r[6].event == "request" and r[6].fields["request"] == "GET / HTTP/1.1"  # after {captures}
    assert r[7].event == "policy_reject"
    assert r[8].event == "tls_handshake_failed" and r[8].fields["bind"] == "1"
    assert r[9].event == "upstream_down" and r[9].fields["server"] == "api2"
    assert r[11].event == "client_timeout"
    assert 10 not in r and 12 not in r  # "Proxy started" ignored; the cut line kept as ignored syslog


def test_haproxy_headers_local_rfc5424_short_raw():
    log = parse_log(fx("haproxy-headers.log"), "haproxy", year=2025)
    assert log.unparsed == 0 and len(log.records) == 4
    hosts = [r.host for r in log.records]
    assert hosts == [None, "lb1", None, None]
    assert [r.fields["termination"] for r in log.records] == ["SD", "SH--", "CH--", "SH--"]


def test_haproxy_custom_format_server_leg_4_tuple():
    log = parse_log(fx("haproxy-custom.log"), "haproxy", year=2025)
    a, b = log.records
    assert a.tuple4 == ("10.0.0.2", 41830, "10.0.0.9", 8080) and a.event == "upstream_reset"
    assert a.fields["request_id"] == "3f6c1b8e0d2a4c7e9b1f00aa12cd34ef"
    assert b.tuple4 == ("10.0.0.2", 41831, "10.0.0.9", 5432)


def test_haproxy_termination_states():
    assert termination("SD")[0] == "upstream_reset"
    assert termination("SC--")[0] == "upstream_refused"
    assert termination("cD")[0] == "client_timeout"
    assert termination("PR--")[0] == "policy_reject"
    assert termination("RC")[0] == "proxy_resource"
    assert termination("K-")[1].startswith("killed by an administrator")


# -- Envoy -------------------------------------------------------------------------------------


def test_envoy_default_format_flags_details_and_json():
    log = parse_log(fx("envoy.log"), "envoy")
    r = by_line(log)
    assert log.unparsed == 2
    first = r[1]
    assert first.event == "upstream_abort" and first.fields["response_flags"] == ["UC"]
    assert first.fields["request_id"] == "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2"
    assert first.fields["start_ts"] == pytest.approx(T0 + 0.004) and first.ts == pytest.approx(T0 + 0.015)
    assert (first.fields["upstream_addr"], first.fields["upstream_port"]) == ("10.0.0.9", 8080)
    assert r[2].event == "client_abort" and r[2].fields["status"] == 0
    assert r[3].fields["response_flags"] == ["UF", "URX"] and r[3].event == "upstream_connect_failed"
    assert r[4].event == "upstream_timeout"
    assert r[5].event == "request"
    assert r[6].event == "policy_reject"
    assert r[7].event == "upstream_reset" and r[7].tuple4 == ("10.0.0.2", 41830, "10.0.0.9", 8080)
    assert r[7].fields["upstream_detected_close_type"] == "RemoteReset"
    assert r[8].event == "upstream_refused"
    assert r[9].event == "client_reset" and r[9].fields["client"] == "203.0.113.7:51516"
    assert r[10].event == "upstream_reset" and r[10].tuple4 == ("10.0.0.2", 41832, "10.0.0.9", 8080)


def test_envoy_custom_format():
    fmt = "[%START_TIME%] %RESPONSE_CODE% %RESPONSE_FLAGS% %DOWNSTREAM_REMOTE_ADDRESS% %UPSTREAM_LOCAL_ADDRESS% %UPSTREAM_HOST% %RESPONSE_CODE_DETAILS%"
    line = b"[2025-12-31T01:58:12.000Z] 503 UR 203.0.113.7:51514 10.0.0.2:41830 10.0.0.9:8080 upstream_reset_before_response_started{remote_reset}\n"
    log = parse_bytes(line, "envoy", opts=Options(fmt=fmt))
    (rec,) = log.records
    assert rec.event == "upstream_reset" and rec.tuple4 == ("10.0.0.2", 41830, "10.0.0.9", 8080)
    assert rec.fields["client"] == "203.0.113.7:51514"


# -- journald ----------------------------------------------------------------------------------


def test_journald_json_lifecycle_kernel_and_app():
    log = parse_log(fx("journald.json"), "journald-json")
    r = by_line(log)
    assert log.unparsed == 2 and log.resolution == 1e-6
    assert any("null" in w for w in log.warnings)
    assert r[2].event == "unit_stopping" and r[2].fields["unit"] == "api.service"  # UNIT=, not _SYSTEMD_UNIT
    exited = r[3]
    assert exited.ts == pytest.approx(T0 + 0.345678)
    assert (exited.fields["exit_code"], exited.fields["exit_status"], exited.fields["exit_status_name"]) == (
        "killed",
        9,
        "KILL",
    )
    assert exited.fields["signal"] == "SIGKILL"
    assert r[4].event == "unit_failed" and r[4].fields["result"] == "oom-kill"
    assert r[5].event == "unit_restart_scheduled" and r[5].fields["n_restarts"] == 3
    assert r[6].event == "unit_started"
    assert r[7].event == "unit_oom" and r[7].fields["unit"] == "worker.service"  # USER_UNIT=
    assert r[8].event == "oom_kill" and r[8].fields["comm"] == "java" and r[8].fields["anon_rss"] == 3987654
    assert r[9].event == "syn_flood" and r[9].fields["port"] == 443
    fw = r[10]
    assert fw.event == "firewall_log" and fw.tuple4 == ("203.0.113.7", 51514, "10.0.0.9", 8080)
    assert fw.fields["flags"] == ["SYN"] and fw.fields["prefix"] == "rl-reject:"
    app = r[11]  # MESSAGE as a byte array with ANSI colours, _SOURCE_REALTIME_TIMESTAMP preferred
    assert app.event == "app_rst_received" and app.tuple4 == ("10.0.0.5", 36828, "10.0.0.9", 22400)
    assert app.ts == pytest.approx(T0 + 0.352178) and app.fields["received_ts"] == pytest.approx(
        T0 + 0.352678
    )
    assert r[13].event == "app_broken_pipe"  # SYSLOG_IDENTIFIER repeated as an array
    assert log.meta["unit_pids"]["api.service"] == [4242, 4300]


def test_journald_export_text_and_binary_fields():
    log = parse_log(fx("journald.export"), "journald-export")
    assert log.unparsed == 0 and log.lines_total == 12
    events = [r.event for r in log.records]
    assert events.count("app_rst_received") == 2
    java = log.records[-1]
    assert "NioSocketImpl" in java.text  # binary field with a newline inside
    exported = parse_log(fx("journald.json"), "journald-json")
    assert [r.event for r in exported.records][:10] == events[:10]


def test_journald_export_broken_length_resyncs():
    log = parse_log(fx("journald-broken.export"), "journald-export")
    assert [r.event for r in log.records] == ["unit_exited", "unit_failed"]
    assert log.unparsed == 2 and "bad length" in log.examples[0].reason


@pytest.mark.parametrize(
    ("name", "first_ts"),
    [
        ("journald-short-iso.log", T0 - 1),
        ("journald-short-iso-precise.log", T0 + 0.345678),
        ("journald-short-precise.log", T0 + 0.345678),
        ("journald-short.log", T0),
    ],
)
def test_journald_text_outputs(name, first_ts):
    log = parse_log(fx(name), "journald-text", year=2025)
    assert log.records[0].ts == pytest.approx(first_ts)
    assert all(r.host for r in log.records)


def test_journald_short_iso_events():
    log = parse_log(fx("journald-short-iso.log"), "journald-text")
    assert [r.event for r in log.records] == [
        "oom_kill", "unit_exited", "unit_failed", "unit_restart_scheduled", "unit_stopped", "unit_starting",
        "unit_started", "syn_flood", "firewall_log", "conntrack_full", "orphan_sockets", "tcp_mem_pressure",
        "app_rst_received",
    ]  # fmt: skip
    assert log.unparsed == 1 and log.records[4].fields["unit"] == "Orders API"
    precise = parse_log(fx("journald-short-iso-precise.log"), "journald-text")
    flood = precise.records[2]
    assert flood.fields == {**flood.fields, "addr": "2001:db8::1", "port": 443, "action": "Dropping request"}
    assert flood.ts == pytest.approx(T0 + 0.347)  # +01:00 honoured


def test_syslog_mixes_sources():
    log = parse_log(fx("syslog.log"), "syslog", year=2025)
    r = by_line(log)
    assert (
        r[1].event == "firewall_log"
        and r[1].fields["flags"] == ["ACK", "RST"]
        and r[1].fields["out"] == "eth1"
    )
    assert r[2].event == "upstream_abort" and r[2].fields["termination"] == "SH--"
    assert r[3].event == "unit_restart_scheduled" and r[3].fields["n_restarts"] == 4
    assert 4 not in r
    assert r[5].tuple4 == ("10.0.0.5", 51514, "10.0.0.9", 8200) and r[5].fields["tool"] == "vault"
    assert (
        r[6].event == "upstream_reset"
        and r[6].fields["connection"] == 884
        and r[6].fields["upstream_port"] == 8080
    )


def test_syslog_year_rolls_back_for_a_december_line_read_in_january():
    line = b"Dec 31 23:59:59 h systemd[1]: x.service: Failed with result 'timeout'.\n"
    opts = Options(mtime=dt.datetime(2026, 1, 2, tzinfo=dt.UTC).timestamp())
    (rec,) = parse_bytes(line, "syslog", opts=opts).records
    assert dt.datetime.fromtimestamp(rec.ts, dt.UTC).year == 2025


def test_binary_journal_through_journalctl(tmp_path):
    remote = shutil.which("systemd-journal-remote") or "/lib/systemd/systemd-journal-remote"
    if not os.path.exists(remote) or shutil.which("journalctl") is None:
        pytest.skip("needs systemd-journal-remote and journalctl")
    out = tmp_path / "fixture.journal"
    p = subprocess.run([remote, "-o", str(out), fx("journald.export")], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    log = parse_log(out, "journal-binary")
    assert log.lines_total == 12
    assert [r.event for r in log.records] == [
        r.event for r in parse_log(fx("journald.export"), "journald-export").records
    ]


def test_binary_journal_unreadable_is_a_warning(tmp_path):
    bad = tmp_path / "bad.journal"
    bad.write_bytes(b"LPKSHHRH" + b"\x00" * 100)
    log = parse_log(bad, "journal-binary")
    assert log.records == [] and log.warnings


# -- applications ------------------------------------------------------------------------------


def test_app_lines_classified():
    log = parse_log(fx("app.log"), "app")
    r = by_line(log)
    classes = {n: rec.fields.get("class") for n, rec in r.items()}
    assert classes == {
        1: "rst_received", 2: "broken_pipe", 3: "refused", 4: "fin_received", 5: "tls_reset", 6: "rst_received",
        7: "rst_received", 8: "broken_pipe", 9: "fin_received", 10: "rst_received", 11: "rst_received",
        12: "broken_pipe", 13: "rst_received", 14: "conn_lost", 15: "refused", 16: "rst_received",
        17: "broken_pipe", 18: "fin_received", 19: "refused", 20: "tls_reset", 21: "rst_received",
        22: "rst_received", 23: "fin_received", 24: None, 25: "conn_lost", 26: "conn_lost", 27: "rst_received",
        28: "rst_received", 29: "fin_received",
        31: "reset_sent", 32: "idle_close", 33: "reset_sent", 34: "reset_sent", 35: "fin_received",
    }  # fmt: skip
    assert 30 not in r and log.ignored == 1
    # what a program says it did itself, with key=value and arrow endpoints
    assert (r[31].event, r[31].tuple4) == ("app_reset_sent", ("10.0.0.9", 8080, "10.0.0.5", 51514))
    assert (r[32].event, r[32].fields["remote"]) == ("app_idle_close", "[2001:db8::5]:51515")
    assert r[33].event == "app_reset_sent" and r[33].fields["remote"] == "10.0.0.5:51516"
    assert (r[34].event, r[34].tuple4, r[34].host) == (
        "app_reset_sent",
        ("10.0.0.5", 51517, "10.0.0.9", 9003),
        "fw-1",
    )
    assert r[35].event == "app_fin_received"
    assert r[1].tuple4 == ("10.0.0.5", 36828, "10.0.0.9", 22400) and r[1].ts == T0
    assert r[2].ts == pytest.approx(T0 + 0.123456) and r[2].tuple4 == ("10.0.0.9", 8080, "10.0.0.5", 51514)
    assert r[3].fields["remote"] == "10.0.0.9:8080" and r[3].host is None
    assert r[6].fields["tool"] == "vault" and r[6].ts is None
    assert r[11].ts == pytest.approx(T0 + 4.001)
    assert r[15].fields["remote"] == "10.0.0.9:8080"
    assert r[20].fields["remote"] == "api.example.com:443"
    assert r[22].ts == pytest.approx(T0 + 0.345)
    assert r[24].fields["client"] == "10.0.0.5:51514"
    assert r[25].fields["client_host"] == "10.0.0.5"
    assert r[27].ts == pytest.approx(T0 + 7.123)


# -- dispatch ----------------------------------------------------------------------------------


def test_unknown_kind_and_missing_file_are_user_errors(tmp_path):
    with pytest.raises(ResetlensError, match="unknown log kind"):
        parse_log(fx("app.log"), "apache")
    with pytest.raises(ResetlensError, match="cannot read"):
        parse_log(tmp_path / "nope.log", "app")
    with pytest.raises(ResetlensError, match="unknown timezone"):
        parse_log(fx("app.log"), "app", tz="Mars/Olympus")


def test_gzip_and_crlf_logs(tmp_path):
    import gzip

    data = open(fx("nginx-error.log"), "rb").read().replace(b"\n", b"\r\n")
    p = tmp_path / "e.log.gz"
    p.write_bytes(gzip.compress(data))
    log = parse_log(p, "nginx-error")
    assert len(log.records) == 17 and log.unparsed == 2
    assert not log.records[0].text.endswith("\r")


# -- lines real nginx 1.22 and HAProxy 2.6 wrote (tests/test_evidence_real_proxies.py) ---------


def test_real_nginx_and_haproxy_lines():
    err = parse_log(fx("real/nginx-error.log"), "nginx-error")
    assert err.unparsed == 0
    events = {r.event for r in err.records}
    assert {"upstream_reset", "upstream_fin", "client_abort", "client_closed_idle"} <= events
    rl = parse_log(fx("real/nginx-access-rl.log"), "nginx-access", fmt="rl")
    comb = parse_log(fx("real/nginx-access.log"), "nginx-access")
    assert rl.unparsed == comb.unparsed == 0
    assert (
        [r.fields["status"] for r in rl.records]
        == [r.fields["status"] for r in comb.records]
        == [502, 502, 200, 499]
    )
    conns = {r.fields["connection"] for r in err.records if r.event == "upstream_reset"}
    assert conns <= {r.fields["connection"] for r in rl.records}
    ha = parse_log(fx("real/haproxy.log"), "haproxy", year=2026)
    assert ha.unparsed == 0 and len(ha.records) == 7
    assert [r.fields["termination"] for r in ha.records] == [
        "CR--",
        "CR--",
        "--",
        "SH--",
        "SH--",
        "----",
        "SD",
    ]
    assert ha.records[4].tuple4 is not None and ha.records[1].tuple4 is None  # "-:- -:-" without a server
    assert ha.records[6].event == "upstream_reset"


def test_real_client_lines():
    log = parse_log(fx("real/apps.log"), "app")
    assert (
        log.ignored == 0 and log.unparsed == 0
    )  # every stored line is one a real client printed on a reset/close
    classes = [r.fields["class"] for r in log.records]
    assert classes[:4] == ["rst_received", "fin_received", "refused", "tls_reset"]  # curl 56, 52, 7, 35
    assert "conn_lost" in classes  # psql: libpq says the same for FIN and RST


def test_binary_journal_without_journalctl_says_how_to_export(tmp_path):
    """Where neither journalctl nor systemd-python exists (macOS, Windows), a clear warning, no crash."""
    import json
    import sys

    j = tmp_path / "x.journal"
    j.write_bytes(b"LPKSHHRH" + b"\x00" * 64)
    code = (
        "import json, sys; from resetlens.evidence import parse_log;"
        f"log = parse_log({str(j)!r}, 'journal-binary'); print(json.dumps(log.warnings))"
    )
    env = {
        "PATH": str(tmp_path),
        "PYTHONPATH": os.path.dirname(os.path.dirname(FIX)),
    }  # no journalctl on PATH
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    (warning,) = json.loads(p.stdout)
    assert "journalctl" in warning and "-o json" in warning


def test_lab_bundles_parse_cleanly():
    """Every log the reset lab (resetlens/lab) wrote into fixtures/lab parses without a bad line."""
    import glob
    import tomllib

    manifests = sorted(glob.glob(os.path.join(os.path.dirname(FIX), "lab", "*", "resetlens.toml")))
    if not manifests:
        pytest.skip("no lab fixtures")
    events = set()
    for m in manifests:
        man = tomllib.load(open(m, "rb"))
        for spec in man.get("log", []):
            path = os.path.join(os.path.dirname(m), spec["path"])
            log = parse_log(
                path,
                spec["kind"],
                tz=man.get("timezone", "UTC"),
                host=spec.get("host"),
                fmt=spec.get("format"),
            )
            assert log.unparsed == 0, (path, log.examples)
            events |= {r.event for r in log.records}
    assert {
        "upstream_reset",
        "client_abort",
        "app_rst_received",
        "app_reset_sent",
        "app_idle_close",
    } <= events


def test_truncated_gzip_and_overlong_lines_keep_what_is_valid(tmp_path):
    import gzip

    data = open(fx("nginx-error.log"), "rb").read()
    p = tmp_path / "cut.log.gz"
    p.write_bytes(gzip.compress(data)[:-60])  # the last block is missing
    log = parse_log(p, "nginx-error")
    assert log.records and any("stopped reading" in w for w in log.warnings)
    long = tmp_path / "long.log"
    long.write_bytes(b"x" * 200_000 + b"\n" + data)
    log = parse_log(long, "nginx-error")
    assert log.unparsed == 3 and log.examples[0].line == 1 and len(log.examples[0].text) <= 160
    assert len(log.records) == 17 and any("cut" in w for w in log.warnings)


def test_journald_unit_success_message_id():
    entry = (
        b'{"__REALTIME_TIMESTAMP":"1767146292000000","_PID":"1","UNIT":"api.service",'
        b'"MESSAGE_ID":"7ad2d189f7e94e70a38c781354912448","MESSAGE":"api.service: Deactivated successfully."}\n'
    )
    (rec,) = parse_bytes(entry, "journald-json").records
    assert (rec.event, rec.fields["unit"], rec.ts) == ("unit_stopped", "api.service", T0)


def test_haproxy_fully_custom_format_read_leniently():
    log = parse_log(fx("haproxy-custom-format.log"), "haproxy", year=2025)
    a, b = log.records
    assert (a.event, a.tuple4, a.fields["client"]) == (
        "upstream_reset",
        ("10.0.0.2", 41830, "10.0.0.9", 8080),
        "203.0.113.7:51514",
    )
    assert a.ts == T0 and a.host == "lb1"
    assert (b.event, b.tuple4, b.fields["tuple_guess"]) == (
        "client_timeout",
        ("10.0.0.2", 41831, "10.0.0.9", 5432),
        True,
    )
    assert log.ignored == 1 and log.unparsed == 0  # "Connect from" has no termination state
