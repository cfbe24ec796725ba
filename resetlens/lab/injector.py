"""An out-of-band DPI box (runs in the firewall namespace): on a keyword, forge RSTs towards both ends.

It sniffs the client-facing interface with an AF_PACKET socket and, like the censors in the
literature, does not drop the offending segment: it races it with two forged RST|ACKs, one to the
server (claiming the client's address, seq = end of the offending segment) and one to the client
(claiming the server's address, seq = the client's ACK, i.e. the server's next sequence number).

    python -m resetlens.lab.injector IFACE KEYWORD PORT[,PORT...] LOGFILE
"""

from __future__ import annotations

import os
import random
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003  # every protocol
PACKET_OUTGOING = 4  # sll_pkttype of frames this host sends
IPV4 = 0x0800
ETH_HLEN = 14
TCP_RST_ACK = 0x14
FORGED_TTL = 64  # a fresh TTL: at the client it is one hop higher than anything the server sends
MAX_INJECTIONS = 50  # bounded, like every loop in the lab

IP_HDR = struct.Struct("!BBHHHBBH4s4s")  # ver/ihl, tos, total length, id, frag, ttl, proto, csum, src, dst
TCP_HDR = struct.Struct("!HHIIBBHHH")  # sport, dport, seq, ack, offset, flags, window, csum, urg


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def forge(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int) -> bytes:
    tcp = TCP_HDR.pack(sport, dport, seq, ack, 5 << 4, TCP_RST_ACK, 0, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = IP_HDR.pack(
        0x45, 0, 20 + len(tcp), random.randrange(1, 0xFFFF), 0, FORGED_TTL, socket.IPPROTO_TCP, 0, src, dst
    )
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def log(out, msg: str) -> None:
    stamp = time.strftime("%b %d %H:%M:%S", time.gmtime())
    out.write(f"{stamp} firewall dpi[{os.getpid()}]: {msg}\n")
    out.flush()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    iface, keyword, ports, logfile = argv[0], argv[1].encode(), {int(p) for p in argv[2].split(",")}, argv[3]
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sniff.bind((iface, 0))
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    seen: set[tuple] = set()
    with open(logfile, "a") as out:
        log(out, f"watching {iface} tcp ports {sorted(ports)} for {keyword.decode()!r}")
        while len(seen) < MAX_INJECTIONS:
            frame, addr = sniff.recvfrom(65535)
            if addr[2] == PACKET_OUTGOING or struct.unpack("!H", frame[12:14])[0] != IPV4:
                continue
            ip = frame[ETH_HLEN:]
            ihl = (ip[0] & 0x0F) * 4
            if ip[9] != socket.IPPROTO_TCP:
                continue
            total = struct.unpack("!H", ip[2:4])[0]
            src, dst = ip[12:16], ip[16:20]
            sport, dport, seq, ack, off = struct.unpack("!HHIIB", ip[ihl : ihl + 13])
            payload = ip[ihl + (off >> 4) * 4 : total]
            key = (src, sport, dst, dport)
            if dport not in ports or keyword not in payload or key in seen:
                continue
            seen.add(key)
            end = (seq + len(payload)) & 0xFFFFFFFF
            raw.sendto(forge(src, dst, sport, dport, end, ack), (socket.inet_ntoa(dst), 0))
            raw.sendto(forge(dst, src, dport, sport, ack, end), (socket.inet_ntoa(src), 0))
            log(out, f"keyword {keyword.decode()!r} in {socket.inet_ntoa(src)}:{sport} -> {socket.inet_ntoa(dst)}:{dport} "
                     f"seq={seq}: reset both ends")  # fmt: skip


if __name__ == "__main__":
    main()
