#!/usr/bin/env python3
"""The textbook dpkt loop, as a baseline: find every TCP RST in a capture and print one TSV line each.

    dpkt_rst.py FILE            (pcap or pcapng, optionally gzip-compressed; Ethernet only)

Columns: frame, ts, src, sport, dst, dport, ttl/hlim, ip_id, seq, ack, flags (hex). The count goes to stderr.
"""

from __future__ import annotations

import gzip
import socket
import sys

import dpkt

GZIP_MAGIC = b"\x1f\x8b"  # first two bytes of a gzip stream


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    raw = open(argv[1], "rb")
    fh = gzip.open(raw) if raw.peek(2)[:2] == GZIP_MAGIC else raw
    out = sys.stdout
    found = 0
    for frame, (ts, buf) in enumerate(dpkt.pcap.UniversalReader(fh), 1):
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data
        if isinstance(ip, dpkt.ip.IP):
            family, ttl, ip_id = socket.AF_INET, ip.ttl, ip.id
        elif isinstance(ip, dpkt.ip6.IP6):
            family, ttl, ip_id = socket.AF_INET6, ip.hlim, 0
        else:
            continue
        tcp = ip.data
        if not isinstance(tcp, dpkt.tcp.TCP) or not tcp.flags & dpkt.tcp.TH_RST:
            continue
        found += 1
        src = socket.inet_ntop(family, ip.src)
        dst = socket.inet_ntop(family, ip.dst)
        out.write(
            f"{frame}\t{ts:.6f}\t{src}\t{tcp.sport}\t{dst}\t{tcp.dport}\t{ttl}\t{ip_id}\t{tcp.seq}\t{tcp.ack}\t{tcp.flags:#x}\n"
        )
    print(f"{found} RSTs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
