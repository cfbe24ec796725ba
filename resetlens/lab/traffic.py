"""Client-side traffic (runs in the client namespace): one bounded action per invocation.

    python -m resetlens.lab.traffic ACTION '{"json": "kwargs"}'

Every connection is bound before connecting so its local port is known even when the connect
fails; each one prints a JSON line {"flow": {tag, src, sport, dst, dport, result}}. An action that
must wait for the lab (e.g. while it flushes conntrack) prints {"ready": NAME} and reads one line.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import struct
import sys
import time

LINGER_ZERO = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
IO_TIMEOUT = 5.0  # seconds any single read may block
CLIENT4, CLIENT6 = "10.77.1.2", "fd00:77:1::2"  # the lab client's addresses (a failed connect leaves none)


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def wait_for_lab(name: str) -> None:
    emit({"ready": name})
    sys.stdin.readline()


class Flow:
    """One client connection and the JSON line that records it."""

    def __init__(self, tag: str, dst: str, port: int, *, blocking: bool = True) -> None:
        fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", 0))
        self.tag, self.dst, self.port = tag, dst, port
        self.sport = self.sock.getsockname()[1]
        self.src = CLIENT6 if fam == socket.AF_INET6 else CLIENT4
        self.result = "?"
        self.sock.settimeout(IO_TIMEOUT if blocking else 0)

    def connect(self) -> bool:
        try:
            self.sock.connect((self.dst, self.port))
            return True
        except OSError as exc:
            self.result = f"connect: {exc.strerror or exc}"
            return False

    def request(self, data: bytes, read: bool = True) -> bytes:
        try:
            self.sock.sendall(data)
            if not read:
                return b""
            got = b""
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    self.result = self.result if got else "closed before response"
                    break
                got += chunk
                if _http_complete(got) or not got.startswith(b"HTTP/"):
                    break
            if got:
                self.result = got.split(b"\r\n", 1)[0].decode("latin-1")
            return got
        except OSError as exc:
            self.result = f"{type(exc).__name__}: {exc.strerror or exc}"
            return b""

    def abort(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            emit({"flow": {"tag": self.tag, "src": self.src, "sport": self.sport, "dst": self.dst,
                           "dport": self.port, "result": self.result}})  # fmt: skip


def _http_complete(buf: bytes) -> bool:
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip() or 0)
    return True


def get(path: str, host: str = "lab", close: bool = True) -> bytes:
    conn = "close" if close else "keep-alive"
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: resetlens-lab\r\nConnection: {conn}\r\n\r\n".encode()


# --- actions --------------------------------------------------------------------------------


def http(
    tag: str,
    dst: str,
    port: int,
    path: str = "/ok",
    count: int = 1,
    abort_after: float | None = None,
    gap: float = 0.0,
) -> None:
    """`count` sequential requests, one connection each, `gap` s apart; optionally abort (RST) after a delay."""
    for i in range(min(count, 60)):
        if i:
            time.sleep(min(gap, 1.0))
        f = Flow(tag, dst, port)
        if f.connect():
            if abort_after is None:
                f.request(get(path))
            else:
                f.request(get(path, close=False), read=False)
                time.sleep(abort_after)
                f.result = f"client abort after {abort_after}s"
                f.abort()
                continue
        f.close()


def refused(tag: str, dst: str, port: int, count: int = 1) -> None:
    for _ in range(min(count, 20)):
        f = Flow(tag, dst, port)
        if f.connect():
            f.result = "connected"
        f.close()


def partial_header(tag: str, dst: str, port: int, wait: float = 2.0) -> None:
    """Send half a request head and wait: the server's header timeout fires."""
    f = Flow(tag, dst, port)
    if f.connect():
        f.sock.sendall(b"GET /ok HTTP/1.1\r\nHost: lab\r\n")
        f.sock.settimeout(wait)
        try:
            f.result = f"read {len(f.sock.recv(4096))} bytes"
        except OSError as exc:
            f.result = f"{type(exc).__name__}: {exc.strerror or exc}"
    f.close()


def stale_keepalive(tag: str, dst: str, port: int, idle: float = 1.6) -> None:
    """Reuse a pooled keep-alive connection after the server's (shorter) idle timeout closed it."""
    f = Flow(tag, dst, port)
    if f.connect():
        f.request(get("/ok", close=False))
        time.sleep(idle)
        f.result = "first ok"
        f.request(get("/ok", close=False))
    f.close()


def unread(tag: str, dst: str, port: int, side: str = "server") -> None:
    """side=server: send more than the server reads; side=client: close with the echo unread."""
    f = Flow(tag, dst, port)
    if f.connect():
        if side == "server":
            f.request(b"HDR01" + b"p" * 300, read=False)
            try:
                f.result = f.sock.recv(100).decode("latin-1").strip()
                time.sleep(0.3)
                f.sock.sendall(b"more")
                f.sock.recv(100)
            except OSError as exc:
                f.result = f"{type(exc).__name__}: {exc.strerror or exc}"
        else:
            f.sock.sendall(b"e" * 200 + b"\n")
            time.sleep(0.2)  # the echo is now in our receive queue, unread
            f.result = "closed with unread echo"
    f.close()


def echo_session(
    tag: str, dst: str, port: int, lines: list[str], pause: str | None = None, gap: float = 0.05
) -> None:
    """Line exchange; `pause` names a lab step to wait for before the last line."""
    f = Flow(tag, dst, port)
    if f.connect():
        for i, line in enumerate(lines[:20]):
            if pause and i == len(lines) - 1:
                wait_for_lab(pause)
            try:
                f.sock.sendall(line.encode() + b"\n")
                got = f.sock.recv(4096)
                f.result = f"echo {len(got)} bytes" if got else "closed"
                if not got:
                    break
            except OSError as exc:
                f.result = f"{type(exc).__name__}: {exc.strerror or exc}"
                break
            time.sleep(gap)
    f.close()


def burst(tag: str, dst: str, port: int, count: int = 8, gap: float = 0.0) -> None:
    """`count` short echo connections, `gap` s apart (rate-limit scenario: back to back)."""
    for _ in range(min(count, 30)):
        echo_session(tag, dst, port, ["hi"], gap=0)
        time.sleep(min(gap, 1.0))


def stream(tag: str, dst: str, port: int, chunks: int = 80, size: int = 200) -> None:
    """Send a bounded stream until the connection dies (byte-limit scenario)."""
    f = Flow(tag, dst, port)
    if f.connect():
        sent = 0
        f.result = "stream done"
        for _ in range(min(chunks, 500)):
            try:
                f.sock.sendall(b"s" * size)
                sent += size
            except OSError as exc:
                f.result = f"{type(exc).__name__}: {exc.strerror or exc} after {sent} bytes"
                break
            time.sleep(0.005)
    f.close()


def backlog(tag: str, dst4: str, dst6: str, port: int, pending: int = 3, fill: int = 5) -> None:
    """Backlog overflow in three steps (the lab holds the IPv6 SYN-ACKs at the firewall meanwhile):
    `pending` IPv6 SYNs wait in the SYN queue, `fill` IPv4 connections fill the accept queue, then the
    lab lets the SYN-ACKs through and the IPv6 handshakes complete into a full accept queue."""
    late = [Flow(tag, dst6, port, blocking=False) for _ in range(min(pending, 8))]
    for f in late:
        try:
            f.sock.connect((dst6, port))
        except BlockingIOError:
            pass
    time.sleep(0.1)
    early = [Flow(f"{tag}-fill", dst4, port) for _ in range(min(fill, 8))]
    for f in early:
        f.result = "connected, queued, never accepted" if f.connect() else f.result
    wait_for_lab("accept-queue-full")
    deadline = time.monotonic() + IO_TIMEOUT
    pending_socks = [f.sock for f in late]
    while pending_socks and time.monotonic() < deadline:
        _, writable, _ = select.select([], pending_socks, [], 0.1)
        pending_socks = [s for s in pending_socks if s not in writable]
    time.sleep(0.2)
    for f in late:
        err = f.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        f.result = (
            f"connect errno {err}" if err else ("connect timeout" if f.sock in pending_socks else "connected")
        )
        if f.result == "connected":
            f.sock.settimeout(0.5)
            try:
                f.sock.sendall(b"x")
                f.sock.recv(10)
                f.result = "connected, no answer"
            except TimeoutError:
                f.result = "connected, no answer"
            except OSError as exc:
                f.result = f"{type(exc).__name__}: {exc.strerror or exc}"
        f.close()
    for f in early:
        f.close()


def tls(tag: str, dst: str, port: int, sni: str | None = None, count: int = 1, gap: float = 0.0) -> None:
    """TLS handshakes with or without SNI (certificate checks off: the lab's cert is self-signed)."""
    for i in range(min(count, 20)):
        if i:
            time.sleep(min(gap, 1.0))
        _tls_once(tag, dst, port, sni)


def _tls_once(tag: str, dst: str, port: int, sni: str | None) -> None:
    f = Flow(tag, dst, port)
    if f.connect():
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            t = ctx.wrap_socket(f.sock, server_hostname=sni)
            t.sendall(get("/tls"))
            f.result = t.recv(100).split(b"\r\n", 1)[0].decode("latin-1")
            f.sock = t
        except (OSError, ssl.SSLError) as exc:
            f.result = f"{type(exc).__name__}: {exc}"
    f.close()


def dpi(tag: str, dst: str, port: int, keyword: str = "FORBIDDEN") -> None:
    echo_session(tag, dst, port, ["hello", f"GET /{keyword}/page"], gap=0.1)


ACTIONS = {f.__name__: f for f in (http, refused, partial_header, stale_keepalive, unread, echo_session, burst,
                                   stream, backlog, tls, dpi)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    action, kwargs = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    ACTIONS[action](**kwargs)


if __name__ == "__main__":
    main()
