"""A realistic example analysis, built from the model, for reporter tests and demos.

Five vantages on one path (client, firewall, proxy-front, proxy-back, server) with a firewall that
NATs and forges resets, an nginx proxy and an application server that gets restarted.  With
`hostile=True` a vantage name, an SNI, a Host header and log text carry HTML/JS injection strings.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from resetlens.model import (
    Analysis,
    CaptureSummary,
    Connection,
    Evidence,
    Host,
    LogLine,
    Reset,
    Sender,
    Sighting,
)

# Strings a reporter must show as text and never execute.
HOSTILE_IMG = "<img src=x onerror=window.__pwned=1>"
HOSTILE_SCRIPT = "</script><script>window.__pwned=1</script>"
# Reference time of the example: 2026-11-21 14:03:20 UTC.
T0 = 1795269800.0

CLIENT, FW_IN, FW_OUT, PROXY_FRONT, PROXY_BACK, SERVER = (
    "10.20.4.7",
    "10.20.4.1",
    "10.30.0.1",
    "10.30.1.1",
    "10.40.0.1",
    "10.40.0.20",
)


def _pkt(
    frame: int,
    ts: float,
    src: str,
    sport: int,
    dst: str,
    dport: int,
    flags: str,
    seq: int,
    ack: int,
    length: int = 0,
    ttl: int = 64,
    ip_id: int | None = 0,
    window: int = 502,
) -> dict[str, Any]:
    return {
        "frame": frame,
        "ts": ts,
        "src": src,
        "sport": sport,
        "dst": dst,
        "dport": dport,
        "flags": flags,
        "seq": seq,
        "ack": ack,
        "len": length,
        "ttl": ttl,
        "ip_id": ip_id,
        "window": window,
    }


def _handshake_ladder(
    first_frame: int, t: float, c: str, cp: int, s: str, sp: int, c_ttl: int, s_ttl: int
) -> list[dict[str, Any]]:
    return [
        _pkt(first_frame, t, c, cp, s, sp, "S", 1000, 0, ttl=c_ttl, ip_id=4411),
        _pkt(first_frame + 1, t + 0.0004, s, sp, c, cp, "SA", 9000, 1001, ttl=s_ttl, ip_id=0),
        _pkt(first_frame + 2, t + 0.0005, c, cp, s, sp, "A", 1001, 9001, ttl=c_ttl, ip_id=4412),
        _pkt(first_frame + 3, t + 0.0010, c, cp, s, sp, "PA", 1001, 9001, 517, ttl=c_ttl, ip_id=4413),
    ]


def sample_analysis(*, hostile: bool = False) -> Analysis:
    """The five-vantage example; `hostile` plants injection strings in data fields."""
    server_vantage = f'server"{HOSTILE_IMG}' if hostile else "server"
    sni = f"pay.example{HOSTILE_IMG}" if hostile else "pay.example.com"
    host_header = f"pay{HOSTILE_SCRIPT}" if hostile else "pay.example.com"
    log_extra = f" {HOSTILE_SCRIPT} {HOSTILE_IMG}" if hostile else ""

    captures = [
        CaptureSummary(
            "client",
            "captures/client.pcapng",
            "client",
            48211,
            3,
            T0 - 5,
            T0 + 130,
            0.0,
            None,
            [],
            "pcapng",
            ["EN10MB"],
            47002,
            9_102_311,
            "reference",
        ),
        CaptureSummary(
            "firewall",
            "captures/firewall.pcap.gz",
            "fw",
            96001,
            3,
            T0 - 4,
            T0 + 131,
            -0.0123,
            0.00004,
            ["-i any capture: forwarded packets appear twice"],
            "pcap+gzip",
            ["LINUX_SLL2"],
            95000,
            4_400_120,
            "matched packets",
        ),
        CaptureSummary(
            "proxy-front",
            "captures/proxy-front.pcap",
            "proxy",
            51002,
            1,
            T0 - 5,
            T0 + 129,
            0.4521,
            0.00011,
            [],
            "pcap",
            ["EN10MB"],
            50880,
            8_811_002,
            "matched packets",
        ),
        CaptureSummary(
            "proxy-back",
            "captures/proxy-back.pcap",
            "proxy",
            40330,
            2,
            T0 - 5,
            T0 + 129,
            0.4521,
            0.00011,
            ["truncated: last record cut at byte 3311200 (snapshot ended)"],
            "pcap",
            ["EN10MB"],
            40300,
            3_311_200,
            "matched packets",
        ),
        CaptureSummary(
            server_vantage,
            "captures/server.pcap",
            "app",
            38002,
            2,
            T0 - 6,
            T0 + 128,
            -1.2034,
            0.0002,
            [],
            "pcap-ns",
            ["EN10MB"],
            38000,
            6_020_441,
            "matched packets",
        ),
    ]
    hosts = [
        Host("client", "client", [CLIENT]),
        Host("fw", "firewall", [FW_IN, FW_OUT]),
        Host("proxy", "proxy", [PROXY_FRONT, PROXY_BACK]),
        Host("app", "server", [SERVER], source="inferred", reason="listens on 8080, answers SYNs"),
    ]

    # R1: forged by the firewall: seen at the client (and the firewall's inside leg), absent at proxy-front.
    r1_t = T0 + 12.25
    r1 = Reset(
        id="R1",
        ts=r1_t,
        src=PROXY_FRONT,
        sport=443,
        dst=CLIENT,
        dport=51514,
        seen_at=[
            Sighting(
                "firewall",
                r1_t,
                20411,
                64,
                0,
                PROXY_FRONT,
                443,
                CLIENT,
                51514,
                77001,
                0,
                "R",
                0,
                r1_t + 0.0123,
                "C12-firewall",
                {},
                [],
                [20001, 20002, 20003, 20004, 20411],
            ),
            Sighting(
                "client",
                r1_t + 0.00021,
                9312,
                63,
                0,
                PROXY_FRONT,
                443,
                CLIENT,
                51514,
                77001,
                0,
                "R",
                0,
                r1_t + 0.00021,
                "C7-client",
                {"sni": sni},
                [
                    *_handshake_ladder(9300, r1_t - 0.003, CLIENT, 51514, PROXY_FRONT, 443, 64, 62),
                    _pkt(
                        9312, r1_t + 0.00021, PROXY_FRONT, 443, CLIENT, 51514, "R", 9001, 0, ttl=63, window=0
                    ),
                ],
                [9300, 9301, 9302, 9303, 9312],
            ),
        ],
        sender=Sender("middlebox", "fw", "injected"),
        cause="policy_reject",
        confidence=0.93,
        evidence=[
            Evidence(
                "ttl_off",
                "TTL 63 at the client; proxy-front's own packets arrive with TTL 62 (one hop off)",
                "client",
                9312,
                0.4,
            ),
            Evidence(
                "absent_at_sender",
                "Not in proxy-front's capture, which holds the rest of this flow "
                "(claimed sender never sent it)",
                "proxy-front",
                None,
                0.5,
            ),
            Evidence("tls_sni", f"Reset 0.2 ms after the ClientHello with SNI {sni}", "client", 9303, 0.1),
        ],
        logs=[
            LogLine(
                "syslog",
                "logs/fw-syslog.log",
                4411,
                r1_t - 0.0001,
                f"Nov 21 14:03:32 fw kernel: DPI-REJECT IN=eth0 OUT=eth1 SRC={CLIENT} DST={PROXY_FRONT} "
                f"PROTO=TCP SPT=51514 DPT=443 sni={sni}",
                "fw",
                "firewall_reject",
                {},
                "4-tuple+time",
            ),
        ],
        decision="Review the DPI/SNI policy on the firewall fw: pay.example.com is rejected with a forged reset.",
        flow="F1",
        explanation="The firewall fw forged a reset in the proxy's name right after the TLS ClientHello.",
    )

    # R2: the server's kernel answers a request on a pooled connection it already closed (stale keep-alive).
    r2_t = T0 + 61.5
    r2_ladder = [
        *_handshake_ladder(30100, T0 + 1.0, PROXY_BACK, 40112, SERVER, 8080, 64, 64)[:3],
        _pkt(30140, T0 + 1.2, SERVER, 8080, PROXY_BACK, 40112, "FA", 9500, 1400, ttl=64, ip_id=0),
        _pkt(30141, T0 + 1.2002, PROXY_BACK, 40112, SERVER, 8080, "A", 1400, 9501, ttl=64, ip_id=7001),
        _pkt(
            30912, r2_t - 0.0003, PROXY_BACK, 40112, SERVER, 8080, "PA", 1400, 9501, 312, ttl=64, ip_id=7002
        ),
        _pkt(30913, r2_t, SERVER, 8080, PROXY_BACK, 40112, "R", 9501, 0, ttl=64, ip_id=0, window=0),
    ]
    r2 = Reset(
        id="R2",
        ts=r2_t,
        src=SERVER,
        sport=8080,
        dst=PROXY_BACK,
        dport=40112,
        seen_at=[
            Sighting(
                "proxy-back",
                r2_t,
                30913,
                64,
                0,
                SERVER,
                8080,
                PROXY_BACK,
                40112,
                9501,
                0,
                "R",
                0,
                r2_t - 0.4521,
                "C40-proxy-back",
                {},
                r2_ladder,
                [30100, 30101, 30102, 30140, 30141, 30912, 30913],
            ),
            Sighting(
                server_vantage,
                r2_t - 0.00008,
                18004,
                64,
                0,
                SERVER,
                8080,
                PROXY_BACK,
                40112,
                9501,
                0,
                "R",
                0,
                r2_t + 1.2033,
                "C21-server",
                {},
                [],
                [17001, 17002, 17003, 17050, 17051, 18003, 18004],
            ),
        ],
        sender=Sender("server", "app", "kernel"),
        cause="stale_reuse",
        confidence=0.88,
        evidence=[
            Evidence(
                "fin_before",
                "app closed the pooled connection with FIN 60.3 s earlier (idle)",
                "proxy-back",
                30140,
                0.4,
            ),
            Evidence(
                "ipid_zero",
                "IP ID 0, window 0: a kernel reset for a closed socket",
                server_vantage,
                18004,
                0.2,
            ),
            Evidence(
                "knob", "nginx upstream keepalive_timeout 75s exceeds app's idle timeout 60s", None, None, 0.3
            ),
        ],
        logs=[
            LogLine(
                "nginx-error",
                "logs/nginx-error.log",
                812,
                r2_t + 0.0002,
                "2026/11/21 14:04:21 [error] 311#311: *9120 recv() failed (104: Connection reset by peer) "
                f"while reading response header from upstream, client: {CLIENT}, server: _, request: "
                f'"POST /pay HTTP/1.1", upstream: "http://{SERVER}:8080/pay", host: "{host_header}"{log_extra}',
                "proxy",
                "upstream_reset",
                {"status": 502},
                "upstream+time",
            ),
            LogLine(
                "nginx-access",
                "logs/nginx-access.log",
                40211,
                r2_t + 0.0003,
                f'{CLIENT} - - [21/Nov/2026:14:04:21 +0000] "POST /pay HTTP/1.1" 502 157 "-" "curl/8.5"{log_extra}',
                "proxy",
                "status_502",
                {"status": 502},
                "client+time",
            ),
        ],
        decision="Make nginx's upstream keepalive_timeout shorter than app's idle timeout (60 s).",
        flow="F2",
    )

    # R3: the app was killed and restarted; a SYN during the restart got the kernel's reset (no listener).
    r3_t = T0 + 95.0
    r3 = Reset(
        id="R3",
        ts=r3_t,
        src=SERVER,
        sport=8080,
        dst=PROXY_BACK,
        dport=40990,
        seen_at=[
            Sighting(
                "proxy-back",
                r3_t,
                35001,
                64,
                0,
                SERVER,
                8080,
                PROXY_BACK,
                40990,
                0,
                5001,
                "RA",
                0,
                r3_t - 0.4521,
                "C77-proxy-back",
                {},
                [
                    _pkt(35000, r3_t - 0.0002, PROXY_BACK, 40990, SERVER, 8080, "S", 5000, 0, ip_id=7100),
                    _pkt(35001, r3_t, SERVER, 8080, PROXY_BACK, 40990, "RA", 0, 5001, ip_id=0, window=0),
                ],
                [35000, 35001],
            ),
            Sighting(
                server_vantage,
                r3_t - 0.00009,
                21001,
                64,
                0,
                SERVER,
                8080,
                PROXY_BACK,
                40990,
                0,
                5001,
                "RA",
                0,
                r3_t + 1.2033,
                "C90-server",
                {},
                [],
                [21000, 21001],
            ),
        ],
        sender=Sender("server", "app", "kernel"),
        cause="no_listener",
        confidence=0.97,
        evidence=[
            Evidence(
                "syn_rst",
                "SYN answered by RST+ACK with IP ID 0: nothing listened on 8080",
                "proxy-back",
                35001,
                0.5,
            ),
            Evidence(
                "restart", "app.service was killed 1.8 s before and restarted 2.4 s after", None, None, 0.4
            ),
        ],
        logs=[
            LogLine(
                "journald-json",
                "logs/app-journal.json",
                77,
                r3_t - 1.8,
                "app.service: Main process exited, code=killed, status=9/KILL",
                "app",
                "unit_killed",
                {"UNIT": "app.service", "_SYSTEMD_UNIT": "init.scope"},
                "unit+port+time",
            ),
            LogLine(
                "journald-json",
                "logs/app-journal.json",
                79,
                r3_t + 2.4,
                "app.service: Scheduled restart job, restart counter is at 1.",
                "app",
                "unit_restart",
                {"UNIT": "app.service"},
                "unit+port+time",
            ),
        ],
        decision="Drain connections before restarting app.service and gate traffic on a readiness check.",
        flow="F3",
    )

    # R4: through the firewall's NAT: the client aborts (SO_LINGER 0); seen at client, firewall, proxy-front.
    r4_t = T0 + 110.0
    r4 = Reset(
        id="R4",
        ts=r4_t,
        src=CLIENT,
        sport=51600,
        dst=PROXY_FRONT,
        dport=443,
        seen_at=[
            Sighting(
                "client",
                r4_t,
                44001,
                64,
                31002,
                CLIENT,
                51600,
                PROXY_FRONT,
                443,
                88001,
                99001,
                "RA",
                0,
                r4_t,
                "C30-client",
                {},
                [
                    _pkt(
                        44000,
                        r4_t - 0.01,
                        PROXY_FRONT,
                        443,
                        CLIENT,
                        51600,
                        "PA",
                        99000,
                        88001,
                        1,
                        ttl=62,
                        ip_id=0,
                    ),
                    _pkt(44001, r4_t, CLIENT, 51600, PROXY_FRONT, 443, "RA", 88001, 99001, ip_id=31002),
                ],
                [44000, 44001],
            ),
            Sighting(
                "firewall",
                r4_t + 0.0001,
                90001,
                64,
                31002,
                CLIENT,
                51600,
                PROXY_FRONT,
                443,
                88001,
                99001,
                "RA",
                0,
                r4_t + 0.0124,
                "C66-firewall",
                {},
                [],
                [90000, 90001],
            ),
            Sighting(
                "proxy-front",
                r4_t + 0.0003,
                48001,
                63,
                31002,
                FW_OUT,
                30211,
                PROXY_FRONT,
                443,
                88001,
                99001,
                "RA",
                0,
                r4_t - 0.4518,
                "C51-proxy-front",
                {},
                [],
                [48000, 48001],
            ),
        ],
        sender=Sender("client", "client", "application"),
        cause="abortive_close",
        confidence=0.81,
        evidence=[
            Evidence(
                "nat_mapping",
                f"NAT: {CLIENT}:51600 appears as {FW_OUT}:30211 at proxy-front (same IP ID, seq)",
                "proxy-front",
                48001,
                0.1,
            ),
            Evidence(
                "ipid_nonzero",
                "IP ID 31002 follows the client's own counter: the client's stack sent it",
                "client",
                44001,
                0.4,
            ),
        ],
        decision="Fix the client: close gracefully instead of SO_LINGER 0.",
        flow="F4",
    )

    # R5: seen at one vantage only; the evidence does not decide.
    r5_t = T0 + 120.0
    r5 = Reset(
        id="R5",
        ts=r5_t,
        src=PROXY_FRONT,
        sport=443,
        dst=CLIENT,
        dport=51702,
        seen_at=[
            Sighting(
                "client",
                r5_t,
                46001,
                62,
                0,
                PROXY_FRONT,
                443,
                CLIENT,
                51702,
                5,
                0,
                "R",
                0,
                r5_t,
                "C33-client",
                {},
                [],
                [46000, 46001],
            ),
        ],
        sender=Sender("unknown", None, "unknown"),
        cause="unknown",
        confidence=0.2,
        evidence=[
            Evidence(
                "capture_gap",
                "proxy-front's capture has a gap at this time (snapshot drops)",
                "proxy-front",
                None,
                0.0,
                missing=True,
            ),
            Evidence("no_proxy_log", "no proxy log line near this time", None, None, 0.0, missing=True),
        ],
        decision="Collect what is missing (proxy-front capture without drops) and re-run the analysis before acting.",
        flow="F5",
        effective=False,
    )
    resets = [r1, r2, r3, r4, r5]
    connections = [
        Connection(
            "client",
            r1_t - 0.003,
            CLIENT,
            51514,
            PROXY_FRONT,
            443,
            "RSTR",
            "ShADr",
            0.0032,
            517,
            0,
            "C7-client",
            4,
            1,
            9300,
            9312,
        ),
        Connection(
            "proxy-back",
            T0 + 1.0,
            PROXY_BACK,
            40112,
            SERVER,
            8080,
            "RSTR",
            "ShAfDr",
            60.5,
            312,
            0,
            "C40-proxy-back",
            4,
            3,
            30100,
            30913,
        ),
        Connection(
            "proxy-back",
            r3_t - 0.0002,
            PROXY_BACK,
            40990,
            SERVER,
            8080,
            "REJ",
            "Sr",
            0.0002,
            0,
            0,
            "C77-proxy-back",
            1,
            1,
            35000,
            35001,
        ),
        Connection(
            "client",
            r4_t - 2.0,
            CLIENT,
            51600,
            PROXY_FRONT,
            443,
            "RSTO",
            "ShADdR",
            2.0,
            600,
            1,
            "C30-client",
            5,
            4,
            43990,
            44001,
        ),
    ]
    context_logs = [
        LogLine(
            "haproxy",
            "logs/haproxy.log",
            9,
            T0 + 30.0,
            f"Nov 21 14:03:50 proxy haproxy[77]: {CLIENT}:51555 [21/Nov/2026:14:03:50.000] fe be/app 0/0/1/2/3 "
            f'200 120 - - ---- 1/1/0/0/0 0/0 "GET /health HTTP/1.1"{log_extra}',
            "proxy",
            "ok",
            {},
            "",
        ),
    ]
    log_sources = [
        {
            "kind": "nginx-error",
            "path": "logs/nginx-error.log",
            "lines": 912,
            "unparsed": 0,
            "clock_offset": 0.0,
        },
        {
            "kind": "nginx-access",
            "path": "logs/nginx-access.log",
            "lines": 40311,
            "unparsed": 2,
            "clock_offset": 0.0,
            "warnings": [f"line 17: unparsable{log_extra}"],
        },
        {
            "kind": "journald-json",
            "path": "logs/app-journal.json",
            "lines": 120,
            "unparsed": 0,
            "clock_offset": 0.0,
        },
        {"kind": "syslog", "path": "logs/fw-syslog.log", "lines": 5000, "unparsed": 0, "clock_offset": 0.0},
        {"kind": "haproxy", "path": "logs/haproxy.log", "lines": 10, "unparsed": 0, "clock_offset": 0.0},
    ]
    summary = {
        "by_role": {"middlebox": 1, "server": 2, "client": 1, "unknown": 1},
        "by_cause": {
            "policy_reject": 1,
            "stale_reuse": 1,
            "no_listener": 1,
            "abortive_close": 1,
            "unknown": 1,
        },
        "by_kind": {"injected": 1, "kernel": 2, "application": 1, "unknown": 1},
    }
    return Analysis(
        resetlens_version="0.1.0",
        captures=captures,
        connections=connections,
        resets=resets,
        summary=summary,
        title=f"payments 502s{log_extra}",
        bundle="bundles/payments-502",
        reference_vantage="client",
        hosts=hosts,
        context_logs=context_logs,
        log_sources=log_sources,
        warnings=["firewall: -i any capture, duplicate copies of forwarded packets were folded"],
    )


def many_resets(n: int, *, hostile: bool = False) -> Analysis:
    """The example with its resets repeated to n resets, 7 s apart (stress test of report size)."""
    base = sample_analysis(hostile=hostile)
    out: list[Reset] = []
    for i in range(n):
        template = base.resets[i % len(base.resets)]
        shift = (i // len(base.resets)) * 7.0
        r = dataclasses.replace(
            template,
            id=f"R{i + 1}",
            ts=template.ts + shift,
            sport=template.sport if template.sender.role != "client" else 30000 + i % 30000,
            dport=template.dport if template.sender.role == "client" else 30000 + i % 30000,
            seen_at=[dataclasses.replace(s, ts=s.ts + shift) for s in template.seen_at],
            logs=[dataclasses.replace(x, ts=None if x.ts is None else x.ts + shift) for x in template.logs],
        )
        out.append(r)
    base.resets = out
    return base
