"""Pieces of the lab that need no namespaces: the ClientHello SNI parser and the injector's forged RSTs."""

from __future__ import annotations

import socket
import ssl

import dpkt
import pytest

from resetlens.lab.backend import client_hello_sni
from resetlens.lab.injector import forge

pytestmark = pytest.mark.lab


def _client_hello(sni: str | None) -> bytes:
    """A real ClientHello from Python's TLS stack, taken from a memory BIO."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_sni_is_found_or_reported_missing() -> None:
    assert client_hello_sni(_client_hello("lab.resetlens.test")) == "lab.resetlens.test"
    assert client_hello_sni(_client_hello(None)) is None


def test_incomplete_or_non_tls_data_is_not_parsed_yet() -> None:
    hello = _client_hello("lab.resetlens.test")
    assert client_hello_sni(hello[:40]) is False
    assert client_hello_sni(b"GET / HTTP/1.1\r\n\r\n") is False


def test_forged_reset_is_a_valid_rst_ack() -> None:
    src, dst = socket.inet_aton("10.77.3.2"), socket.inet_aton("10.77.1.2")
    raw = forge(src, dst, 9003, 40000, 123456, 654321)
    ip = dpkt.ip.IP(raw)
    tcp = ip.data
    assert (ip.ttl, tcp.sport, tcp.dport, tcp.seq, tcp.ack) == (64, 9003, 40000, 123456, 654321)
    assert tcp.flags == dpkt.tcp.TH_RST | dpkt.tcp.TH_ACK and tcp.win == 0
    # checksums as the receiving stack checks them: recompute and compare
    sums = (ip.sum, tcp.sum)
    ip.sum = tcp.sum = 0
    again = dpkt.ip.IP(bytes(ip))
    assert (again.sum, again.data.sum) == sums
