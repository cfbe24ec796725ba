"""Hop stitching checked against the proxies' own words: in the lab's app_abort bundle, every upstream
reset is paired with the client connection the proxy logged for that request."""

from __future__ import annotations

import re

from resetlens.bundle import load_bundle
from resetlens.pipeline import analyze
from tests.conftest import LAB_FIXTURES

BUNDLE = LAB_FIXTURES / "app_abort"


def test_upstream_resets_pair_with_the_logged_client_connection() -> None:
    logs = BUNDLE / "logs"
    nginx_ports = {
        int(m) for m in re.findall(r"10\.77\.1\.2:(\d+) ", (logs / "nginx-access.log").read_text())
    }
    # HAProxy's log names both legs: client ip:port ... backend-side %bi:%bp.
    haproxy = {
        int(b): int(c)
        for c, b in re.findall(
            r"10\.77\.1\.2:(\d+) \[.*\] .* 10\.77\.3\.1:(\d+) 10\.77\.3\.2:8080",
            (logs / "haproxy.log").read_text(),
        )
    }
    assert nginx_ports and haproxy
    analysis = analyze(load_bundle(BUNDLE))
    upstream = [r for r in analysis.resets if r.dst == "10.77.3.1"]
    assert len(upstream) == 3
    for r in upstream:
        (leg,) = [e for e in r.evidence if e.code == "other_leg"]
        client_port = int(re.search(r"10\.77\.1\.2:(\d+) >", leg.text).group(1))
        if r.dport in haproxy:
            assert client_port == haproxy[r.dport]  # the exact pair HAProxy logged
        else:
            assert client_port in nginx_ports
        assert r.flow  # the reset carries the stitched flow id


def test_proxy_logs_reach_the_reset_through_its_legs() -> None:
    """nginx's error log has no upstream port, so time alone cannot place its 'upstream timed out' line.
    Through the legs it can: access-log client port -> front leg -> back leg's reset, and the error line
    shares the access line's connection number (*N)."""
    analysis = analyze(load_bundle(LAB_FIXTURES / "proxy_timeout"))
    nginx_reset = next(r for r in analysis.resets if r.sender.kind == "kernel")
    kinds = {x.kind: x for x in nginx_reset.logs if x.match.startswith("proxy leg")}
    assert {"nginx-access", "nginx-error"} <= kinds.keys()
    assert "upstream timed out" in kinds["nginx-error"].text
    assert nginx_reset.cause == "timeout"
    assert any(e.code == "log_line" and "upstream timed out" in e.text for e in nginx_reset.evidence)
