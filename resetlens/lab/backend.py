"""The lab's backend service (runs in the server namespace): HTTP, raw TCP and TLS endpoints.

Each endpoint behaves the way a scenario needs: abort with SO_LINGER 0, close with unread data,
idle-close keep-alive connections, never accept (backlog overflow), reset a TLS ClientHello without
SNI. One log line per decision goes to stdout (the bundle's `app` log).

    python -m resetlens.lab.backend --cert CERT --key KEY
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import ssl
import struct
import sys
import threading
import time
from datetime import UTC, datetime

HTTP_PORT = 8080  # HTTP/1.1 keep-alive, idle timeout HTTP_IDLE
HTTP_IDLE = 1.0  # seconds an idle keep-alive connection lives (shorter than the client pool's)
ECHO_PORT = 9000  # line echo, idle close after RAW_IDLE
UNREAD_PORT = 9001  # reads a 5-byte header, answers, closes with the rest unread
SINK_PORT = 9002  # reads and discards, idle close after RAW_IDLE
SLOW_ECHO_PORT = 9003  # echoes each line after SLOW_ECHO_DELAY
BACKLOG_PORT = 9100  # listen(1), never accepts
STUCK_BACKLOG = 4  # accept queue full at 5 established; SYN queue capped at 4 requests
TLS_PORT = 9443  # TLS; a ClientHello without SNI is answered with a reset
RAW_IDLE = 1.0  # seconds
SLOW_ECHO_DELAY = 0.3  # seconds
LINGER_ZERO = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
IDENT = "resetlens-backend"

_log_lock = threading.Lock()


def log(msg: str) -> None:
    ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with _log_lock:
        sys.stdout.write(f"{ts} {IDENT}[{os.getpid()}]: {msg}\n")
        sys.stdout.flush()


def peer(conn: socket.socket) -> str:
    try:
        host, port = conn.getpeername()[:2]
    except OSError:
        return "?"
    return fmt_addr(host, port)


def fmt_addr(host: str, port: int) -> str:
    host = host.removeprefix("::ffff:")  # an IPv4 peer on the dual-stack socket
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def local(conn: socket.socket) -> str:
    host, port = conn.getsockname()[:2]
    return fmt_addr(host, port)


def abort(conn: socket.socket, why: str) -> None:
    log(f"abort (SO_LINGER 0) {why} local={local(conn)} peer={peer(conn)}")
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
    conn.close()


def listener(port: int, backlog: int = 64) -> socket.socket:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(backlog)
    return s


def serve(sock: socket.socket, handler, tls: ssl.SSLContext | None = None) -> None:
    def loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=_guard, args=(handler, conn, tls), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def _guard(handler, conn: socket.socket, tls: ssl.SSLContext | None) -> None:
    who = peer(conn)
    try:
        if tls is None:
            handler(conn)
        else:
            handler(conn, tls)
    except (ConnectionResetError, BrokenPipeError) as exc:
        log(f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror} peer={who}")
    except (OSError, ssl.SSLError) as exc:
        log(f"error {exc!r} peer={who}")
    finally:
        with contextlib.suppress(OSError):
            conn.close()


# --- HTTP -----------------------------------------------------------------------------------


def read_request(conn: socket.socket, buf: bytearray) -> tuple[str, bytes] | None:
    """One request head from a keep-alive connection; None on idle timeout or peer close."""
    while b"\r\n\r\n" not in buf:
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            return None
        if not chunk:
            return None
        buf += chunk
        if buf[:1] == b"\x16":
            return ("TLS", bytes(buf))
        if len(buf) > 16384:
            return None
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    buf[:] = rest
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    return line, head


def respond(conn: socket.socket, status: str, body: bytes, keep: bool = True) -> None:
    hdr = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nContent-Type: text/plain\r\n"
    hdr += "Connection: keep-alive\r\n" if keep else "Connection: close\r\n"
    conn.sendall(hdr.encode() + b"\r\n" + body)


def http_handler(conn: socket.socket) -> None:
    conn.settimeout(HTTP_IDLE)
    buf = bytearray()
    served = 0
    while True:
        req = read_request(conn, buf)
        if req is None:
            log(f"http idle close after {served} request(s) (timeout {HTTP_IDLE}s) peer={peer(conn)}")
            return
        line, head = req
        if line == "TLS":
            log(f"http got TLS ClientHello on plain port, answering 400 peer={peer(conn)}")
            respond(conn, "400 Bad Request", b"plain HTTP port\n", keep=False)
            return
        served += 1
        parts = line.split(" ")
        path = parts[1] if len(parts) > 1 else "/"
        route, _, query = path.partition("?")
        args = dict(kv.split("=", 1) for kv in query.split("&") if "=" in kv)
        log(f'http "{line}" peer={peer(conn)}')
        close = b"connection: close" in head.lower()
        if route == "/abort":
            abort(conn, f'after reading "{line}"')
            return
        if route == "/abort-mid":
            body = b"x" * 2000
            hdr = b"HTTP/1.1 200 OK\r\nContent-Length: 8000\r\nContent-Type: text/plain\r\n\r\n"
            conn.sendall(hdr + body)
            time.sleep(0.05)
            abort(conn, f'mid-response (2000 of 8000 bytes) "{line}"')
            return
        if route == "/slow":
            delay = min(float(args.get("ms", "500")), 5000.0) / 1000.0
            conn.settimeout(None)
            time.sleep(delay)
            conn.settimeout(HTTP_IDLE)
        size = min(int(args.get("n", "64")), 65536) if route == "/big" else 16
        respond(conn, "200 OK", b"y" * (size - 1) + b"\n", keep=not close)
        if close:
            return


# --- raw TCP --------------------------------------------------------------------------------


def echo_handler(conn: socket.socket, idle: float = RAW_IDLE, delay: float = 0.0) -> None:
    conn.settimeout(idle)
    while True:
        try:
            data = conn.recv(4096)
        except TimeoutError:
            log(f"echo idle close (timeout {idle}s) local={local(conn)} peer={peer(conn)}")
            return
        if not data:
            return
        if delay:
            time.sleep(delay)
        conn.sendall(data)


def unread_handler(conn: socket.socket) -> None:
    conn.settimeout(RAW_IDLE)
    head = conn.recv(5)
    conn.sendall(b"OK " + head + b"\n")
    time.sleep(0.1)  # the rest of the client's message is in the receive queue by now
    log(f"unread: closing with unread data after {len(head)}-byte header peer={peer(conn)}")
    conn.close()


def sink_handler(conn: socket.socket) -> None:
    conn.settimeout(RAW_IDLE)
    total = 0
    while True:
        try:
            data = conn.recv(65536)
        except TimeoutError:
            log(f"sink idle close after {total} bytes peer={peer(conn)}")
            return
        if not data:
            log(f"sink peer closed after {total} bytes peer={peer(conn)}")
            return
        total += len(data)


# --- TLS ------------------------------------------------------------------------------------


def client_hello_sni(data: bytes) -> str | bool | None:
    """SNI host name of a complete ClientHello record, None if absent, False if not parseable yet."""
    if len(data) < 5 or data[0] != 0x16:
        return False
    rec_len = struct.unpack(">H", data[3:5])[0]
    if len(data) < 5 + rec_len:
        return False
    p = 5 + 4 + 2 + 32  # record header, handshake header, client_version, random
    p += 1 + data[p]  # session id
    p += 2 + struct.unpack(">H", data[p : p + 2])[0]  # cipher suites
    p += 1 + data[p]  # compression methods
    if p + 2 > len(data):
        return None
    end = p + 2 + struct.unpack(">H", data[p : p + 2])[0]
    p += 2
    while p + 4 <= end:
        etype, elen = struct.unpack(">HH", data[p : p + 4])
        if etype == 0:  # server_name: list length, type, name length, name
            name_len = struct.unpack(">H", data[p + 7 : p + 9])[0]
            return data[p + 9 : p + 9 + name_len].decode("ascii", "replace")
        p += 4 + elen
    return None


def tls_handler(conn: socket.socket, ctx: ssl.SSLContext) -> None:
    conn.settimeout(RAW_IDLE)
    sni: str | bool | None = False
    for _ in range(50):
        data = conn.recv(4096, socket.MSG_PEEK)
        if not data:
            return
        sni = client_hello_sni(data)
        if sni is not False:
            break
        time.sleep(0.01)
    if not sni:
        abort(conn, "TLS ClientHello without SNI")
        return
    who = peer(conn)
    log(f"tls ClientHello sni={sni} peer={who}")
    tls = ctx.wrap_socket(conn, server_side=True)
    req = tls.recv(4096)
    line = req.split(b"\r\n", 1)[0].decode("latin-1")
    log(f'tls http "{line}" peer={who}')
    respond(tls, "200 OK", b"tls ok\n", keep=False)  # type: ignore[arg-type]
    tls.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="resetlens.lab.backend")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument(
        "--stuck", action="store_true", help=f"only a listen(1) socket on {BACKLOG_PORT}, never accepted"
    )
    args = ap.parse_args(argv)
    if args.stuck:
        stuck = listener(BACKLOG_PORT, backlog=STUCK_BACKLOG)
        log(
            f"stuck listener on {BACKLOG_PORT} (listen backlog {STUCK_BACKLOG}, never accepts, fd {stuck.fileno()})"
        )
        time.sleep(120)
        return
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    serve(listener(HTTP_PORT), http_handler)
    serve(listener(ECHO_PORT), echo_handler)
    serve(listener(UNREAD_PORT), unread_handler)
    serve(listener(SINK_PORT), sink_handler)
    serve(listener(SLOW_ECHO_PORT), lambda c: echo_handler(c, delay=SLOW_ECHO_DELAY))
    serve(listener(TLS_PORT), tls_handler, tls=ctx)
    log("listening on 8080 9000 9001 9002 9003 9443")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
