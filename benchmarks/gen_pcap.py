#!/usr/bin/env python3
"""Deterministic, realistic synthetic capture generator for the speed benchmarks.

    gen_pcap.py -o benchmarks/data/big.pcap --size-mb 1000 --seed 1 [--format pcap|pcap-ns|pcapng] [--gzip]

One vantage (a gateway between clients and servers), Ethernet, about 145 k TCP connections per GB spread
over one hour: handshakes with options, data both ways, FIN closes, about 2 % of connections ending in a
RST of four kinds (a RST answering a SYN, a client abort, a server abort, an injected RST followed by the
real server's data and the client's RSTs), about 10 % IPv6 connections (some with extension headers),
0.2 % of IPv4 connections with an IP option, about 2 % UDP/ARP noise. Packets are written with `struct`
into a buffered file, so 1 GB takes well under a minute.

Beside FILE it writes FILE.truth.json: counts and every RST (frame, 4-tuple, seq, ack, flags, ttl, ip_id,
kind, sender), the reference the fast paths are checked against.
"""

from __future__ import annotations

import argparse
import gzip
import heapq
import io
import ipaddress
import json
import random
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import BinaryIO

# ---- header layouts (network byte order unless noted) ----
ETH = struct.Struct("!6s6sH")  # dst MAC, src MAC, ethertype
IP4 = struct.Struct("!BBHHHBBH4s4s")  # ver/ihl, tos, total len, id, flags/frag, ttl, proto, csum, src, dst
IP6 = struct.Struct("!IHBB16s16s")  # ver/tc/flow, payload len, next header, hop limit, src, dst
TCP = struct.Struct("!HHIIBBHHH")  # sport, dport, seq, ack, data offset, flags, window, csum, urgent
UDP = struct.Struct("!HHHH")  # sport, dport, length, csum
DNS_HEAD = struct.Struct("!HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount
ARP = struct.Struct("!HHBBH6s4s6s4s")  # htype, ptype, hlen, plen, op, sha, spa, tha, tpa
PCAP_GLOBAL = struct.Struct("<IHHiIII")  # magic, major, minor, thiszone, sigfigs, snaplen, linktype
PCAP_RECORD = struct.Struct("<IIII")  # ts_sec, ts_frac, caplen, origlen (little-endian file)
EPB_HEAD = struct.Struct("<IIIIIII")  # type 6, total len, iface, ts high, ts low, caplen, origlen
BLOCK_TAIL = struct.Struct("<I")  # pcapng trailing total length

PCAP_MAGIC_US = 0xA1B2C3D4  # classic pcap, microsecond timestamps
PCAP_MAGIC_NS = 0xA1B23C4D  # classic pcap, nanosecond timestamps
LINKTYPE_ETHERNET = 1  # DLT_EN10MB
SNAPLEN = 262144  # what tcpdump writes by default
ETHERTYPE_IP4 = 0x0800  # IPv4
ETHERTYPE_IP6 = 0x86DD  # IPv6
ETHERTYPE_ARP = 0x0806  # ARP
PROTO_TCP = 6  # IP protocol number of TCP
PROTO_UDP = 17  # IP protocol number of UDP
IP6_HOPOPTS = 0  # IPv6 hop-by-hop options header
IP6_DSTOPTS = 60  # IPv6 destination options header
IP_DF = 0x4000  # IPv4 don't-fragment bit in the flags/fragment field
IPOPT_ROUTER_ALERT = b"\x94\x04\x00\x00"  # RFC 2113 router alert, the 4-byte option that makes IHL=6

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10  # TCP flag bits
CAPTURE_START = 1_767_261_600.0  # 2026-01-01 10:00:00 UTC: the capture's first second
CAPTURE_START_US = int(CAPTURE_START) * 1_000_000  # the same, integer microseconds
CAPTURE_SPAN = 3600.0  # seconds over which the connections start
NOISE_PER_CONN = 0.17  # noise events (2 packets each) per TCP connection: about 2 % of packets
RST_CONN_SHARE = 0.02  # share of connections that end in a RST
IP6_SHARE = 0.10  # share of IPv6 connections
IP6_EXT_SHARE = 0.10  # share of IPv6 connections whose packets carry extension headers
IP4_OPT_SHARE = 0.002  # share of IPv4 connections with an IP option
RST_KINDS = [("rst_syn", 0.29), ("rst_client", 0.26), ("rst_server", 0.24), ("rst_inject", 0.21)]
EXCHANGE_RATE = 0.5  # requests per connection: 1 + floor(Exp(rate)), mean about 2.5
MSS = 1448  # payload of a full segment with the timestamp option (1500 - 20 - 32)

# Client stacks: initial TTL, SYN options, SYN window, window scale, timestamps on, IP ID style.
OS_PROFILES = {
    "linux": (64, b"\x02\x04\x05\xb4\x04\x02", 64240, 7, True, "counter"),  # MSS SACK_OK | TS NOP WS
    "windows": (
        128,
        b"\x02\x04\x05\xb4\x01\x03\x03\x08\x01\x01\x04\x02",
        64240,
        8,
        False,
        "global",
    ),  # ... SACK_OK
    "macos": (
        64,
        b"\x02\x04\x05\xb4\x01\x03\x03\x06\x01\x01",
        65535,
        6,
        True,
        "random",
    ),  # MSS NOP WS NOP NOP | TS SACK_OK EOL
}
CLIENT_OS_WEIGHTS = [("linux", 0.45), ("windows", 0.35), ("macos", 0.20)]
SERVER_PORTS = [(443, 0.70), (80, 0.15), (8443, 0.05), (5432, 0.04), (6379, 0.03), (22, 0.03)]


def _csum_fold(total: int) -> int:
    """Ones'-complement checksum of a value that is a big-endian sum of 16-bit words modulo 0xFFFF."""
    total %= 0xFFFF
    return (~total) & 0xFFFF if total else 0xFFFF


def _words(data: bytes) -> int:
    """The 16-bit-word sum of data, modulo 0xFFFF (2**16 == 1 mod 0xFFFF, so one big-int mod does it)."""
    value = int.from_bytes(data, "big")
    return value * 256 if len(data) & 1 else value


@dataclass
class Host:
    addr: bytes  # 4 or 16 bytes
    mac: bytes
    ttl: int  # TTL as seen at the vantage (initial minus hops)
    ip_id_style: str  # "counter" (per connection), "global", "random"
    ip_id: int = 0  # the global counter for "global" hosts
    os: str = ""  # client stack, a key of OS_PROFILES


@dataclass
class Side:
    """One end of a connection: what it puts in the headers of the packets it sends."""

    host: Host
    port: int
    isn: int
    ip_id: int  # per-connection counter start
    ts_base: int  # TSval clock base, ms
    win: int  # unscaled window in established packets
    nxt: int = 0  # next sequence number to send
    sent: int = 0  # packets sent (drives counter-style IP IDs)


@dataclass
class Truth:
    frames: int = 0
    tcp_packets: int = 0
    ip6_packets: int = 0
    ip6_ext_packets: int = 0
    ip4_opt_packets: int = 0
    udp_packets: int = 0
    arp_packets: int = 0
    connections: int = 0
    ip6_connections: int = 0
    ip6_ext_connections: int = 0
    ip4_opt_connections: int = 0
    data_segments: int = 0
    data_bytes: int = 0
    rst_connections: dict[str, int] = field(default_factory=dict)
    rst_packets: dict[str, int] = field(default_factory=dict)
    packets_in_rst_connections: int = 0
    resets: list[dict] = field(default_factory=list)


class Generator:
    def __init__(self, seed: int, target_bytes: int) -> None:
        self.rng = random.Random(seed)
        self.target = target_bytes
        self.payload = self.rng.randbytes(1 << 22)  # TLS-looking bytes that payloads are sliced from
        self.text = _http_text(self.rng, 1 << 20)  # plain-HTTP bytes for the port-80 connections
        self.heap: list[tuple] = []
        self.counter = 0  # heap tie-breaker, keeps generation order for equal timestamps
        self.generated = 0  # bytes of all packets generated so far (records included)
        self.truth = Truth()
        self.router_mac = bytes.fromhex("02005e0001fe")
        self.resolver = Host(bytes([10, 0, 0, 53]), bytes.fromhex("02005e000035"), 64, "counter")
        self.servers4 = [self._server(4, i) for i in range(48)]
        self.servers6 = [self._server(6, i) for i in range(12)]
        self.clients4: dict[int, Host] = {}
        self.clients6: dict[int, Host] = {}
        self.port_cdf = _cdf(SERVER_PORTS)
        self.os_cdf = _cdf(CLIENT_OS_WEIGHTS)
        self.kind_cdf = _cdf(RST_KINDS)

    # ---- hosts ----
    def _server(self, ver: int, i: int) -> Host:
        rng = self.rng
        addr = (
            bytes([10, 30, i // 200, 10 + i % 200])
            if ver == 4
            else bytes.fromhex("20010db8ffff0001") + i.to_bytes(8, "big")
        )
        initial, style = (128, "global") if i % 8 == 7 else (64, "counter")
        return Host(addr, bytes([2, 0x42, 0, 0, ver, i]), initial - 1, style, rng.getrandbits(16))

    def _client(self, ver: int) -> tuple[Host, str]:
        rng = self.rng
        idx = rng.randrange(20000 if ver == 4 else 3000)
        pool = self.clients4 if ver == 4 else self.clients6
        host = pool.get(idx)
        if host is None:
            os_name = _pick(self.os_cdf, rng.random())
            initial, *_, style = OS_PROFILES[os_name]
            if ver == 4:
                addr = (
                    bytes([100, 64 + idx // 65536 % 64, idx // 256 % 256, idx % 256])
                    if idx % 3
                    else bytes([10, 1 + idx % 200, idx // 200 % 256, 2 + idx % 250])
                )
            else:
                addr = bytes.fromhex("20010db8") + rng.randbytes(12)
            hops = rng.choice((1, 2, 3, 5, 7, 8, 9, 11, 12, 14, 17))
            host = Host(addr, b"", initial - hops, style, rng.getrandbits(16), os_name)
            pool[idx] = host
        return host, host.os

    # ---- packet assembly ----
    def _push(self, ts: float, frame: bytes, rst: dict | None = None) -> None:
        self.counter += 1
        self.generated += len(frame) + 16
        heapq.heappush(self.heap, (ts, self.counter, frame, rst))

    def _ip_id(self, side: Side, no_socket: bool) -> int:
        if no_socket:
            return 0  # Linux: a kernel RST or SYN-ACK for no socket carries IP ID 0 with DF
        host = side.host
        if host.ip_id_style == "global":
            host.ip_id = (host.ip_id + 1 + (self.rng.random() < 0.3)) & 0xFFFF
            return host.ip_id
        if host.ip_id_style == "random":
            return self.rng.getrandbits(16)
        side.sent += 1
        return (side.ip_id + side.sent) & 0xFFFF

    def tcp(
        self,
        c: Conn,
        ts: float,
        from_client: bool,
        flags: int,
        seq: int,
        ack: int,
        win: int,
        plen: int,
        opts: bytes = b"",
        ttl: int | None = None,
        ip_id: int | None = None,
        df: bool = True,
        rst_sender: str = "",
    ) -> None:
        """Build one TCP segment of connection c and queue it."""
        src, dst = (c.client, c.server) if from_client else (c.server, c.client)
        if ip_id is None:
            ip_id = self._ip_id(src, no_socket=False)
        if ttl is None:
            ttl = src.host.ttl
        if plen:
            source = self.text if c.server.port == 80 else self.payload
            off = self.rng.randrange(0, len(source) - plen)
            payload = source[off : off + plen]
            self.truth.data_segments += 1
            self.truth.data_bytes += plen
        else:
            payload = b""
        hlen = 20 + len(opts)
        tcp_hdr = (
            TCP.pack(
                src.port, dst.port, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (hlen // 4) << 4, flags, win, 0, 0
            )
            + opts
        )
        seg_len = hlen + plen
        tsum = c.pseudo + seg_len + _words(tcp_hdr) + (_words(payload) if plen else 0)
        tcp_hdr = tcp_hdr[:16] + _csum_fold(tsum).to_bytes(2, "big") + tcp_hdr[18:]
        if c.ver == 4:
            ip_opts = IPOPT_ROUTER_ALERT if c.ip_opt else b""
            ihl = 5 + len(ip_opts) // 4
            ip_hdr = (
                IP4.pack(
                    0x40 | ihl,
                    0,
                    ihl * 4 + seg_len,
                    ip_id,
                    IP_DF if df else 0,
                    ttl,
                    PROTO_TCP,
                    0,
                    src.host.addr,
                    dst.host.addr,
                )
                + ip_opts
            )
            ip_hdr = ip_hdr[:10] + _csum_fold(_words(ip_hdr)).to_bytes(2, "big") + ip_hdr[12:]
            eth = c.eth_c2s if from_client else c.eth_s2c
        else:
            ext = c.ext
            ip_hdr = (
                IP6.pack(
                    0x60000000 | c.flow,
                    len(ext) + seg_len,
                    c.ext_first if ext else PROTO_TCP,
                    ttl,
                    src.host.addr,
                    dst.host.addr,
                )
                + ext
            )
            eth = c.eth_c2s if from_client else c.eth_s2c
            ip_id = 0
        frame = b"".join((eth, ip_hdr, tcp_hdr, payload))
        rst = None
        if flags & RST:
            rst = {
                "src": c.addr_text(from_client, True),
                "sport": src.port,
                "dst": c.addr_text(from_client, False),
                "dport": dst.port,
                "seq": seq & 0xFFFFFFFF,
                "ack": ack & 0xFFFFFFFF,
                "flags": flags,
                "ttl": ttl,
                "ip_id": ip_id,
                "ipver": c.ver,
                "ip6_ext": bool(c.ver == 6 and c.ext),
                "kind": c.kind,
                "sender": rst_sender,
                "ts": ts,
            }
        c.packets += 1
        self._push(ts, frame, rst)

    # ---- connections ----
    def connection(self, t0: float) -> None:
        rng = self.rng
        truth = self.truth
        ver = 6 if rng.random() < IP6_SHARE else 4
        client, os_name = self._client(ver)
        server = rng.choice(self.servers4 if ver == 4 else self.servers6)
        _, syn_opts_head, syn_win, wscale, ts_on, _ = OS_PROFILES[os_name]
        port_lo = 32768 if os_name == "linux" else 49152
        c = Conn(
            self,
            ver,
            Side(
                client,
                rng.randrange(port_lo, 61000 if os_name == "linux" else 65536),
                rng.getrandbits(32),
                rng.getrandbits(16),
                rng.getrandbits(32),
                rng.choice((501, 502, 1026, 2052, 8212)),
            ),
            Side(
                server,
                _pick(self.port_cdf, rng.random()),
                rng.getrandbits(32),
                rng.getrandbits(16),
                rng.getrandbits(32),
                rng.choice((235, 245, 509, 1031)),
            ),
        )
        truth.connections += 1
        if ver == 6:
            truth.ip6_connections += 1
            if rng.random() < IP6_EXT_SHARE:
                c.set_ext(rng.random() < 0.5)
                truth.ip6_ext_connections += 1
        elif rng.random() < IP4_OPT_SHARE:
            c.ip_opt = True
            truth.ip4_opt_connections += 1
        c.kind = _pick(self.kind_cdf, rng.random()) if rng.random() < RST_CONN_SHARE else ""
        c.ts_on = ts_on
        rtt_c = rng.lognormvariate(-3.6, 0.9)  # vantage -> client -> vantage, median 27 ms
        rtt_s = rng.uniform(0.00008, 0.0008)  # vantage -> server -> vantage
        cl, sv = c.client, c.server
        # handshake
        t = t0
        syn_opts = syn_opts_head + (_ts_opt(cl.ts_base, 0) if ts_on else b"") + _wscale_tail(os_name, wscale)
        self.tcp(c, t, True, SYN, cl.isn, 0, syn_win, 0, syn_opts)
        cl.nxt = cl.isn + 1
        if c.kind == "rst_syn":
            self.tcp(c, t + rtt_s, False, RST | ACK, 0, cl.nxt, 0, 0, ip_id=0, rst_sender="server")
            if rng.random() < 0.15:  # the application retries the same socket a second later: refused again
                self.tcp(c, t + 1.0, True, SYN, cl.isn, 0, syn_win, 0, syn_opts)
                self.tcp(c, t + 1.0 + rtt_s, False, RST | ACK, 0, cl.nxt, 0, 0, ip_id=0, rst_sender="server")
            self._finish(c)
            return
        t += rtt_s
        synack_opts = (
            b"\x02\x04\x05\xb4\x04\x02"
            + (_ts_opt(sv.ts_base, cl.ts_base) if ts_on else b"\x01\x01")
            + b"\x01\x03\x03\x07"
        )
        self.tcp(c, t, False, SYN | ACK, sv.isn, cl.nxt, 65160, 0, synack_opts, ip_id=0)
        sv.nxt = sv.isn + 1
        t += rtt_c
        self.tcp(c, t, True, ACK, cl.nxt, sv.nxt, cl.win, 0, c.opts(True, t))
        exchanges = 1 + min(int(rng.expovariate(EXCHANGE_RATE)), 11)
        abort_at = rng.randrange(exchanges) if c.kind else -1
        for i in range(exchanges):
            t += rng.uniform(0.00002, 0.0005) if i == 0 else rng.expovariate(1.5)
            for _ in range(1 if rng.random() < 0.8 else 2):  # a request: one or two writes
                req = int(min(rng.lognormvariate(5.5, 0.9), 6000)) + 20
                t = self._send_data(c, t, True, req, rtt_c, rtt_s, final_ack=False)
            if i == abort_at and c.kind in ("rst_server", "rst_inject"):
                self._abort(c, t, rtt_c, rtt_s)
                return
            think = rng.lognormvariate(-5.0, 1.2)  # server think time, median 7 ms
            if think > 0.04:  # the delayed-ACK timer fires before the answer is ready
                self.tcp(c, t + 0.04, False, ACK, sv.nxt, cl.nxt, sv.win, 0, c.opts(False, t + 0.04))
            t += think
            if i == abort_at:  # rst_client: the client gives up while the response is flowing
                self._abort(c, t, rtt_c, rtt_s)
                return
            head = int(rng.lognormvariate(5.4, 0.7)) + 20  # response headers or a small API answer
            body = int(min(rng.lognormvariate(7.4, 1.1), 400_000)) if rng.random() < 0.5 else 0
            t = self._send_data(c, t, False, head, rtt_c, rtt_s, final_ack=not body and rng.random() < 0.5)
            if body:
                t = self._send_data(
                    c,
                    t + rng.uniform(0.00002, 0.002),
                    False,
                    body,
                    rtt_c,
                    rtt_s,
                    final_ack=rng.random() < 0.7,
                )
        # orderly close: the client or the server closes first
        t += rng.expovariate(2.0)
        first = rng.random() < 0.6
        a, b = (cl, sv) if first else (sv, cl)
        rtt_ab = rtt_c if first else rtt_s
        self.tcp(c, t, first, FIN | ACK, a.nxt, b.nxt, a.win, 0, c.opts(first, t))
        a.nxt += 1
        t += rtt_s if first else rtt_c
        self.tcp(c, t, not first, FIN | ACK, b.nxt, a.nxt, b.win, 0, c.opts(not first, t))
        b.nxt += 1
        t += rtt_ab
        self.tcp(c, t, first, ACK, a.nxt, b.nxt, a.win, 0, c.opts(first, t))
        self._finish(c)

    def _send_data(
        self, c: Conn, t: float, from_client: bool, total: int, rtt_c: float, rtt_s: float, final_ack: bool
    ) -> float:
        """Send total bytes as MSS-sized segments; the receiver ACKs every second segment (and the tail if asked)."""
        rng = self.rng
        snd, rcv = (c.client, c.server) if from_client else (c.server, c.client)
        mss = MSS if c.ts_on else MSS + 12
        ack_delay = rtt_s if from_client else rtt_c  # the receiver's ACK reaches the vantage after this
        n = 0
        last = t
        while total > 0:
            plen = min(total, mss)
            total -= plen
            flags = ACK | (PSH if total == 0 else 0)
            self.tcp(c, t, from_client, flags, snd.nxt, rcv.nxt, snd.win, plen, c.opts(from_client, t))
            snd.nxt += plen
            n += 1
            last = t
            if (n % 2 == 0 and total > 0) or (total == 0 and (final_ack or n % 2 == 0)):
                self.tcp(
                    c,
                    t + ack_delay,
                    not from_client,
                    ACK,
                    rcv.nxt,
                    snd.nxt,
                    rcv.win,
                    0,
                    c.opts(not from_client, t + ack_delay),
                )
                last = t + ack_delay
            t += rng.uniform(0.00001, 0.00012) if from_client is False else rng.uniform(0.00001, 0.0003)
        return last

    def _abort(self, c: Conn, t: float, rtt_c: float, rtt_s: float) -> None:
        """The RST endings that follow an exchange; see RST_KINDS."""
        rng = self.rng
        cl, sv = c.client, c.server
        if c.kind == "rst_client":
            # the server starts answering, the client aborts (RST+ACK); segments the server sent before the
            # RST reached it arrive at a closed socket and draw kernel RSTs (seq = their ACK, IP ID 0)
            for _ in range(rng.randint(1, 4)):
                self.tcp(c, t, False, ACK, sv.nxt, cl.nxt, sv.win, MSS, c.opts(False, t))
                sv.nxt += MSS
                t += rng.uniform(0.00001, 0.0001)
            closed = t + rtt_c * 0.5 + rng.lognormvariate(-6.0, 1.0)  # client-side close, vantage clock
            self.tcp(c, closed + rtt_c * 0.5, True, RST | ACK, cl.nxt, sv.nxt, 0, 0, rst_sender="client")
            inflight = rng.choice((0, 0, 1, 1, 2, 3))
            for k in range(inflight):
                tk = closed - rtt_c * 0.5 + (k + 1) * rtt_c / (inflight + 1)
                self.tcp(c, tk, False, ACK, sv.nxt, cl.nxt, sv.win, MSS, c.opts(False, tk))
                sv.nxt += MSS
                self.tcp(c, tk + rtt_c, True, RST, cl.nxt, 0, 0, 0, ip_id=0, rst_sender="client")
        elif c.kind == "rst_server":
            # the server aborts (RST+ACK); data the client already sent draws the server kernel's RSTs
            t += rng.lognormvariate(-4.0, 1.0)
            self.tcp(c, t, False, RST | ACK, sv.nxt, cl.nxt, 0, 0, rst_sender="server")
            for k in range(rng.choice((0, 0, 1, 1, 2))):
                tk = t + rtt_c * 0.5 + k * 0.0001
                self.tcp(c, tk, True, ACK | PSH, cl.nxt, sv.nxt, cl.win, 200 + 100 * k, c.opts(True, tk))
                cl.nxt += 200 + 100 * k
                self.tcp(c, tk + rtt_s, False, RST, sv.nxt, 0, 0, 0, ip_id=0, rst_sender="server")
        else:
            # rst_inject: a box forges RSTs both ways with its own TTL and IP ID, then the real server's
            # answer arrives and the client, whose socket is gone, answers each segment with a RST
            inj_ttl = rng.choice((46, 57, 102, 233, sv.host.ttl - rng.choice((3, 4, 6))))
            inj_id = rng.choice((0x3412, 54321, 1, rng.getrandbits(16)))
            t += rng.uniform(0.0001, 0.002)
            flags = rng.choice((RST, RST | ACK))
            self.tcp(
                c,
                t,
                False,
                flags,
                sv.nxt,
                cl.nxt,
                rng.choice((0, 0, 1460, 16384)),
                0,
                ttl=inj_ttl,
                ip_id=inj_id,
                df=False,
                rst_sender="injector",
            )
            if rng.random() < 0.7:
                self.tcp(
                    c,
                    t + 0.00001,
                    True,
                    flags,
                    cl.nxt,
                    sv.nxt,
                    0,
                    0,
                    ttl=inj_ttl,
                    ip_id=(inj_id + 1) & 0xFFFF,
                    df=False,
                    rst_sender="injector",
                )
            t += rng.lognormvariate(-5.0, 0.8)
            for _ in range(rng.randint(1, 2)):
                self.tcp(c, t, False, ACK, sv.nxt, cl.nxt, sv.win, MSS, c.opts(False, t))
                sv.nxt += MSS
                self.tcp(c, t + rtt_c, True, RST, cl.nxt, 0, 0, 0, ip_id=0, rst_sender="client")
                t += 0.00006
        self._finish(c)

    def _finish(self, c: Conn) -> None:
        truth = self.truth
        if c.kind:
            truth.rst_connections[c.kind] = truth.rst_connections.get(c.kind, 0) + 1
            truth.packets_in_rst_connections += c.packets
        truth.tcp_packets += c.packets
        if c.ver == 6:
            truth.ip6_packets += c.packets
            if c.ext:
                truth.ip6_ext_packets += c.packets
        elif c.ip_opt:
            truth.ip4_opt_packets += c.packets

    # ---- noise ----
    def noise(self, t: float) -> None:
        rng = self.rng
        if rng.random() < 0.7:
            client, _ = self._client(4)
            name = (
                b"".join(
                    bytes([len(w)]) + w
                    for w in (rng.choice(DNS_LABELS), rng.choice(DNS_LABELS), b"example", b"com")
                )
                + b"\0"
            )
            question = name + b"\x00\x01\x00\x01"  # type A, class IN
            query = DNS_HEAD.pack(rng.getrandbits(16), 0x0100, 1, 0, 0, 0) + question
            answer = (
                b"\xc0\x0c\x00\x01\x00\x01" + struct.pack("!IH", rng.randint(30, 3600), 4) + rng.randbytes(4)
            )
            reply = DNS_HEAD.pack(DNS_HEAD.unpack_from(query)[0], 0x8180, 1, 1, 0, 0) + question + answer
            sport = rng.randrange(32768, 61000)
            for i, (src, dst, sp, dp, body) in enumerate(
                ((client, self.resolver, sport, 53, query), (self.resolver, client, 53, sport, reply))
            ):
                n = len(body)
                udp = UDP.pack(sp, dp, 8 + n, 0) + body
                ip = IP4.pack(
                    0x45, 0, 28 + n, rng.getrandbits(16), 0, src.ttl, PROTO_UDP, 0, src.addr, dst.addr
                )
                ip = ip[:10] + _csum_fold(_words(ip)).to_bytes(2, "big") + ip[12:]
                self._push(
                    t + i * rng.uniform(0.0005, 0.03),
                    ETH.pack(self.router_mac, self.resolver.mac, ETHERTYPE_IP4) + ip + udp,
                )
            self.truth.udp_packets += 2
        else:
            server = rng.choice(self.servers4)
            req = ETH.pack(b"\xff" * 6, self.router_mac, ETHERTYPE_ARP) + ARP.pack(
                1, ETHERTYPE_IP4, 6, 4, 1, self.router_mac, bytes([10, 30, 0, 1]), b"\0" * 6, server.addr
            )
            rep = ETH.pack(self.router_mac, server.mac, ETHERTYPE_ARP) + ARP.pack(
                1, ETHERTYPE_IP4, 6, 4, 2, server.mac, server.addr, self.router_mac, bytes([10, 30, 0, 1])
            )
            self._push(t, req + b"\0" * 18)  # padded to the 60-byte Ethernet minimum, as on the wire
            self._push(t + rng.uniform(0.00005, 0.0004), rep + b"\0" * 18)
            self.truth.arp_packets += 2

    # ---- the run ----
    def run(self, out: Writer) -> None:
        rng = self.rng
        t_prev = 0.0
        heap = self.heap
        truth = self.truth
        while self.generated < self.target:
            t0 = max(t_prev, CAPTURE_SPAN * self.generated / self.target) + rng.expovariate(2000.0)
            t_prev = t0
            while heap and heap[0][0] <= t0:
                self._emit(out, heapq.heappop(heap))
            self.connection(t0)
            if rng.random() < NOISE_PER_CONN:
                self.noise(t0 + rng.uniform(0, 0.02))
        while heap:
            self._emit(out, heapq.heappop(heap))
        truth.frames = out.frames

    def _emit(self, out: Writer, item: tuple) -> None:
        ts, _, frame, rst = item
        out.write(ts, frame)
        if rst is not None:
            rst["frame"] = out.frames
            rst["ts"] = round(CAPTURE_START + rst["ts"], 9)
            self.truth.resets.append(rst)
            kind = rst["kind"]
            self.truth.rst_packets[kind] = self.truth.rst_packets.get(kind, 0) + 1


class Conn:
    """Per-connection constants: addresses, precomputed Ethernet headers and checksum pseudo-header."""

    def __init__(self, gen: Generator, ver: int, client: Side, server: Side) -> None:
        self.gen = gen
        self.ver = ver
        self.client = client
        self.server = server
        self.kind = ""
        self.ts_on = True
        self.ip_opt = False
        self.ext = b""
        self.ext_first = PROTO_TCP
        self.flow = gen.rng.getrandbits(20)
        self.packets = 0
        ethertype = ETHERTYPE_IP4 if ver == 4 else ETHERTYPE_IP6
        self.eth_c2s = ETH.pack(server.host.mac, gen.router_mac, ethertype)
        self.eth_s2c = ETH.pack(gen.router_mac, server.host.mac, ethertype)
        # pseudo-header sum without the length: addresses (direction-independent) and protocol
        self.pseudo = _words(client.host.addr) + _words(server.host.addr) + PROTO_TCP
        self._text: dict[bool, str] = {}

    def set_ext(self, two: bool) -> None:
        """IPv6 extension headers before TCP: hop-by-hop (PadN), optionally then destination options."""
        if two:
            self.ext = bytes([IP6_DSTOPTS, 0, 1, 4, 0, 0, 0, 0]) + bytes([PROTO_TCP, 0, 1, 4, 0, 0, 0, 0])
        else:
            self.ext = bytes([PROTO_TCP, 0, 1, 4, 0, 0, 0, 0])
        self.ext_first = IP6_HOPOPTS

    def addr_text(self, from_client: bool, source: bool) -> str:
        is_client = from_client == source
        if is_client not in self._text:
            addr = (self.client if is_client else self.server).host.addr
            self._text[is_client] = str(ipaddress.ip_address(addr))
        return self._text[is_client]

    def opts(self, from_client: bool, t: float) -> bytes:
        """Established-segment options: NOP NOP TS when timestamps were negotiated."""
        if not self.ts_on:
            return b""
        a, b = (self.client, self.server) if from_client else (self.server, self.client)
        ms = int(t * 1000)
        return b"\x01\x01" + _ts_opt(a.ts_base + ms, b.ts_base + ms - 1)


DNS_LABELS = [b"api", b"www", b"cdn", b"auth", b"payments", b"static", b"img", b"login", b"eu-west", b"s3"]


def _http_text(rng: random.Random, size: int) -> bytes:
    """Plain HTTP/1.1 requests and responses with HTML bodies, concatenated to size bytes."""
    paths = [b"/", b"/api/v1/orders", b"/static/app.js", b"/login", b"/health", b"/img/logo.png"]
    parts: list[bytes] = []
    total = 0
    while total < size:
        body = (
            b"<html><body>"
            + b"<p>lorem ipsum dolor sit amet</p>" * rng.randint(1, 40)
            + b"</body></html>\r\n"
        )
        msg = (
            b"GET "
            + rng.choice(paths)
            + b" HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: Mozilla/5.0\r\n"
            b"Accept: */*\r\nConnection: keep-alive\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        parts.append(msg)
        total += len(msg)
    return b"".join(parts)[:size]


def _ts_opt(tsval: int, tsecr: int) -> bytes:
    return b"\x08\x0a" + (tsval & 0xFFFFFFFF).to_bytes(4, "big") + (tsecr & 0xFFFFFFFF).to_bytes(4, "big")


def _wscale_tail(os_name: str, wscale: int) -> bytes:
    """The rest of each stack's SYN option list (kept 4-byte aligned)."""
    if os_name == "linux":  # MSS, SACK_OK, TS, NOP, WS
        return b"\x01\x03\x03" + bytes([wscale])
    if os_name == "macos":  # MSS, NOP, WS, NOP, NOP, TS, SACK_OK, EOL
        return b"\x04\x02\x00\x00"  # SACK_OK EOL EOL
    return b""  # windows: MSS, NOP, WS, NOP, NOP, SACK_OK


def _cdf(weights: list[tuple]) -> list[tuple[float, object]]:
    total = sum(w for _, w in weights)
    acc = 0.0
    out = []
    for value, w in weights:
        acc += w / total
        out.append((acc, value))
    return out


def _pick(cdf: list[tuple[float, object]], r: float):
    for edge, value in cdf:
        if r < edge:
            return value
    return cdf[-1][1]


class Writer:
    """Buffered record writer for classic pcap (µs or ns) and pcapng (one Ethernet interface, µs)."""

    def __init__(self, fh: BinaryIO, fmt: str) -> None:
        self.fh = fh
        self.fmt = fmt
        self.frames = 0
        self.bytes = 0
        if fmt == "pcapng":
            appl = b"resetlens benchmarks/gen_pcap.py"  # shb_userappl option (code 4)
            opt = struct.pack("<HH", 4, len(appl)) + appl + b"\0" * (-len(appl) % 4) + b"\0\0\0\0"
            body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opt
            self._raw(
                struct.pack("<II", 0x0A0D0D0A, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
            )
            self._raw(struct.pack("<IIHHI", 1, 20, LINKTYPE_ETHERNET, 0, SNAPLEN) + struct.pack("<I", 20))
        else:
            magic = PCAP_MAGIC_NS if fmt == "pcap-ns" else PCAP_MAGIC_US
            self._raw(PCAP_GLOBAL.pack(magic, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))

    def _raw(self, data: bytes) -> None:
        self.fh.write(data)
        self.bytes += len(data)

    def write(self, ts: float, frame: bytes) -> None:
        """ts: seconds since CAPTURE_START (small, so the float keeps nanoseconds)."""
        self.frames += 1
        n = len(frame)
        if self.fmt == "pcapng":
            ticks = CAPTURE_START_US + round(ts * 1_000_000)
            pad = -n % 4
            total = 32 + n + pad
            rec = (
                EPB_HEAD.pack(6, total, 0, ticks >> 32, ticks & 0xFFFFFFFF, n, n)
                + frame
                + b"\0" * pad
                + BLOCK_TAIL.pack(total)
            )
        elif self.fmt == "pcap-ns":
            ns = CAPTURE_START_US * 1000 + round(ts * 1_000_000_000)
            rec = PCAP_RECORD.pack(ns // 1_000_000_000, ns % 1_000_000_000, n, n) + frame
        else:
            us = CAPTURE_START_US + round(ts * 1_000_000)
            rec = PCAP_RECORD.pack(us // 1_000_000, us % 1_000_000, n, n) + frame
        self.fh.write(rec)
        self.bytes += len(rec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", required=True, help="capture file to write")
    ap.add_argument("--size-mb", type=float, default=100.0, help="approximate size in MiB (before gzip)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--format", choices=("pcap", "pcap-ns", "pcapng"), default="pcap")
    ap.add_argument("--gzip", action="store_true", help="gzip-compress the capture (level 1)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    gen = Generator(args.seed, int(args.size_mb * 1024 * 1024))
    raw = open(args.output, "wb", buffering=1 << 22)
    fh: BinaryIO = raw
    if args.gzip:  # GzipFile compresses per write() call, so buffer records in front of it
        fh = io.BufferedWriter(
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=1, mtime=0), 1 << 22
        )  # type: ignore[arg-type]
    with raw:
        writer = Writer(fh, args.format)
        gen.run(writer)
        if args.gzip:
            fh.close()  # flushes the buffer and writes the gzip trailer; raw stays open
        file_bytes = raw.tell()
    t = gen.truth
    truth = {
        "generator": "benchmarks/gen_pcap.py",
        "args": {"size_mb": args.size_mb, "seed": args.seed, "format": args.format, "gzip": args.gzip},
        "file_bytes": file_bytes,
        "uncompressed_bytes": writer.bytes,
        "frames": t.frames,
        "tcp_packets": t.tcp_packets,
        "ip6_packets": t.ip6_packets,
        "ip6_ext_packets": t.ip6_ext_packets,
        "ip4_opt_packets": t.ip4_opt_packets,
        "udp_packets": t.udp_packets,
        "arp_packets": t.arp_packets,
        "connections": t.connections,
        "ip6_connections": t.ip6_connections,
        "ip6_ext_connections": t.ip6_ext_connections,
        "ip4_opt_connections": t.ip4_opt_connections,
        "data_segments": t.data_segments,
        "mean_data_payload": round(t.data_bytes / max(1, t.data_segments), 1),
        "mean_record_bytes": round(writer.bytes / max(1, t.frames), 1),
        "rst_connections": dict(sorted(t.rst_connections.items())),
        "rst_connections_total": sum(t.rst_connections.values()),
        "rst_packets": dict(sorted(t.rst_packets.items())),
        "rst_packets_total": len(t.resets),
        "rst_packets_ip6": sum(1 for r in t.resets if r["ipver"] == 6),
        "rst_packets_ip6_ext": sum(1 for r in t.resets if r["ip6_ext"]),
        "packets_in_rst_connections": t.packets_in_rst_connections,
        "first_ts": CAPTURE_START,
        "resets": t.resets,
    }
    with open(args.output + ".truth.json", "w") as out:
        json.dump(truth, out, indent=0)
    summary = {k: v for k, v in truth.items() if k != "resets"}
    print(json.dumps(summary), file=sys.stderr)
    print(
        f"wrote {args.output}: {file_bytes:,} B, {t.frames:,} frames in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
