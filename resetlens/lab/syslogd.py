"""A tiny UDP syslog receiver (runs in the proxy namespace) writing lines as rsyslog would.

HAProxy sends `<PRI>Mmm dd hh:mm:ss haproxy[PID]: message`; the file gets
`Mmm dd hh:mm:ss HOSTNAME haproxy[PID]: message`, the layout of Debian's /var/log/haproxy.log.

    python -m resetlens.lab.syslogd PORT OUTFILE HOSTNAME
"""

from __future__ import annotations

import re
import socket
import sys

# <PRI> then an RFC 3164 timestamp (16 characters including the trailing space)
PRI_RE = re.compile(rb"^<\d{1,3}>")
MAX_DATAGRAM = 65535  # bytes


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    port, path, hostname = int(argv[0]), argv[1], argv[2].encode()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    with open(path, "ab", buffering=0) as out:
        while True:
            data, _ = sock.recvfrom(MAX_DATAGRAM)
            data = PRI_RE.sub(b"", data).rstrip(b"\n")
            stamp, rest = data[:15], data[16:]
            out.write(stamp + b" " + hostname + b" " + rest + b"\n")


if __name__ == "__main__":
    main()
