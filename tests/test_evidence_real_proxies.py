"""Real nginx and HAProxy on loopback in front of an upstream that resets: parse what they really wrote.

The upstream records each reset it sends (its own 4-tuple and time), so the test can check both the
parsers and the correlation against resets that really happened. With RESETLENS_WRITE_FIXTURES=1 the
logs are copied to fixtures/logs/real/.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

from resetlens import model
from resetlens.evidence import parse_bytes, parse_log
from resetlens.evidence.base import Options
from resetlens.evidence.correlate import correlate

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RL_FORMAT = (
    '$time_iso8601 $msec $remote_addr:$remote_port $connection $request_id "$request" $status $body_bytes_sent '
    '$request_time ups="$upstream_addr" us="$upstream_status" uht="$upstream_header_time" urt="$upstream_response_time"'
)
CUSTOM_HTTPLOG = "%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r %bi:%bp %si:%sp"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstream:
    """Reads a request, then per path: /reset -> RST (SO_LINGER 0), /fin -> close, /slow -> 200 after 2 s, else 200."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.resets: list[
            tuple[float, str, int, str, int]
        ] = []  # (time, src, sport, dst, dport) of RSTs sent
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            data = conn.recv(4096)
        except OSError:
            conn.close()
            return
        first = data.split(b"\r\n", 1)[0]
        if b" /reset" in first or (data and not first.startswith((b"GET", b"POST"))):
            local, peer = conn.getsockname(), conn.getpeername()
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.resets.append((time.time(), local[0], local[1], peer[0], peer[1]))
            conn.close()
            return
        if b" /fin" in first:
            conn.close()
            return
        if b" /slow" in first:
            self.stop.wait(2.0)
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except OSError:
            pass
        conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def wait_port(port: int, proc: subprocess.Popen) -> None:
    for _ in range(100):  # bounded: 10 s
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"port {port} never opened")


def request(port: int, path: str, abort_after: float | None = None) -> int | None:
    if abort_after is not None:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        time.sleep(abort_after)
        s.close()
        return None
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        return c.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        c.close()


@pytest.fixture
def lab(tmp_path):
    if shutil.which("nginx") is None or shutil.which("haproxy") is None:
        pytest.skip("needs nginx and haproxy")
    up = Upstream()
    procs: list[subprocess.Popen] = []
    syslog = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    syslog.bind(("127.0.0.1", 0))
    syslog.settimeout(0.2)
    try:
        yield tmp_path, up, procs, syslog
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
        up.close()
        syslog.close()


def start_nginx(tmp, upstream_port: int, procs) -> int:
    port = free_port()
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / "ngx" / d).mkdir(parents=True, exist_ok=True)
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""
        user root;
        worker_processes 1;
        pid {tmp}/nginx.pid;
        error_log {tmp}/nginx-error.log info;
        events {{ worker_connections 64; }}
        http {{
            log_format rl '{RL_FORMAT}';
            access_log {tmp}/nginx-access.log combined;
            access_log {tmp}/nginx-access-rl.log rl;
            client_body_temp_path {tmp}/ngx/body; proxy_temp_path {tmp}/ngx/proxy;
            fastcgi_temp_path {tmp}/ngx/fastcgi; uwsgi_temp_path {tmp}/ngx/uwsgi; scgi_temp_path {tmp}/ngx/scgi;
            upstream backend {{ server 127.0.0.1:{upstream_port}; }}
            server {{
                listen 127.0.0.1:{port};
                location / {{ proxy_pass http://backend; proxy_next_upstream off; }}
            }}
        }}
        """
    )
    p = subprocess.Popen(
        ["nginx", "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"], stderr=subprocess.DEVNULL
    )
    procs.append(p)
    wait_port(port, p)
    return port


def start_haproxy(tmp, upstream_port: int, log_port: int, procs) -> tuple[int, int, int]:
    http_port, tcp_port, custom_port = free_port(), free_port(), free_port()
    conf = tmp / "haproxy.cfg"
    conf.write_text(
        f"""
global
    log 127.0.0.1:{log_port} local0 info
defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe_http
    bind 127.0.0.1:{http_port}
    default_backend be_api
frontend fe_custom
    bind 127.0.0.1:{custom_port}
    log-format "{CUSTOM_HTTPLOG}"
    default_backend be_api
backend be_api
    server api1 127.0.0.1:{upstream_port}
frontend fe_tcp
    mode tcp
    option tcplog
    bind 127.0.0.1:{tcp_port}
    default_backend be_tcp
backend be_tcp
    mode tcp
    server s1 127.0.0.1:{upstream_port}
"""
    )
    p = subprocess.Popen(
        ["haproxy", "-f", str(conf), "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    procs.append(p)
    for port in (http_port, tcp_port, custom_port):
        wait_port(port, p)
    return http_port, tcp_port, custom_port


def drain(sock: socket.socket, want: int) -> list[bytes]:
    got: list[bytes] = []
    for _ in range(50):  # bounded: 10 s
        try:
            got.append(sock.recv(65536))
        except OSError:
            if len([g for g in got if b"[" in g]) >= want:
                break
    return got


def test_real_nginx_logs(lab):
    tmp, up, procs, _ = lab
    port = start_nginx(tmp, up.port, procs)
    assert request(port, "/reset") == 502
    assert request(port, "/fin") == 502
    assert request(port, "/ok") == 200
    request(port, "/slow", abort_after=0.5)
    time.sleep(2.5)  # let nginx notice the client abort when the upstream answers (bounded)

    err = parse_log(tmp / "nginx-error.log", "nginx-error", host="proxy")
    events = [r.event for r in err.records]
    assert "upstream_reset" in events and "upstream_fin" in events and "client_abort" in events
    rst = next(r for r in err.records if r.event == "upstream_reset")
    assert (
        rst.fields["errno"] == 104 and rst.fields["upstream_port"] == up.port and rst.fields["connection"] > 0
    )
    assert err.unparsed == 0

    acc = parse_log(tmp / "nginx-access.log", "nginx-access")
    assert acc.unparsed == 0 and [r.fields["status"] for r in acc.records][:3] == [502, 502, 200]
    assert acc.records[3].fields["status"] == 499 and acc.records[3].event == "client_abort"
    rl = parse_log(tmp / "nginx-access-rl.log", "nginx-access", fmt=RL_FORMAT, host="proxy")
    assert rl.unparsed == 0 and len(rl.records) == 4
    first = rl.records[0]
    assert first.fields["connection"] == rst.fields["connection"]  # the join key really matches
    assert first.fields["upstreams"][0]["port"] == up.port and first.fields["synthesized_502"] is True

    # correlate against the RST the upstream really sent
    (t, src, sport, dst, dport) = up.resets[0]
    r = model.Reset(id="up", ts=t, src=src, sport=sport, dst=dst, dport=dport)
    res = correlate([r], [err, rl])
    got = {(x.kind, x.event): x.match for x in res.by_reset["up"]}
    assert got[("nginx-error", "upstream_reset")] == "upstream+time"
    assert got[("nginx-access", "upstream_error")] == "upstream+time"
    save(tmp, "nginx-error.log", "nginx-access.log", "nginx-access-rl.log")


def test_real_haproxy_logs_over_udp_syslog(lab):
    tmp, up, procs, syslog = lab
    http_port, tcp_port, custom_port = start_haproxy(tmp, up.port, syslog.getsockname()[1], procs)
    assert request(http_port, "/reset") == 502
    assert request(custom_port, "/reset") == 502
    assert request(http_port, "/ok") == 200
    with socket.create_connection(("127.0.0.1", tcp_port), timeout=5) as s:
        s.sendall(b"HELLO\r\n")  # not HTTP: the upstream resets it
        try:
            s.recv(100)
        except OSError:
            pass
    datagrams = drain(syslog, 7)
    text = b"\n".join(d.rstrip(b"\n") for d in datagrams if b"[" in d) + b"\n"
    (tmp / "haproxy.log").write_bytes(text)
    log = parse_bytes(text, "haproxy", path=str(tmp / "haproxy.log"), opts=Options(host="lb"))
    assert log.unparsed == 0, log.examples
    by_req = {(r.fields.get("frontend"), r.fields.get("request")): r for r in log.records}
    http_rst = by_req[("fe_http", "GET /reset HTTP/1.1")]
    assert http_rst.fields["status"] == 502 and http_rst.fields["termination"][:2] == "SH"
    assert http_rst.event == "upstream_abort" and http_rst.fields["server"] == "api1"
    ok = by_req[("fe_http", "GET /ok HTTP/1.1")]
    assert ok.event == "request" and ok.fields["status"] == 200
    probes = [r for r in log.records if r.fields.get("request") == "<BADREQ>"]
    assert probes and all(r.fields["termination"] == "CR--" and r.event == "client_abort" for r in probes)
    custom = by_req[("fe_custom", "GET /reset HTTP/1.1")]
    assert custom.tuple4 is not None and custom.tuple4[3] == up.port  # %bi:%bp %si:%sp
    tcp = [
        r for r in log.records if r.fields.get("frontend") == "fe_tcp" and r.fields["termination"][0] == "S"
    ]
    assert tcp and tcp[0].fields["mode"] == "tcp" and tcp[0].event in ("upstream_reset", "upstream_abort")

    # the custom line's 4-tuple is the very connection the upstream reset
    resets = [
        model.Reset(id=f"r{i}", ts=t, src=s, sport=sp, dst=d, dport=dp)
        for i, (t, s, sp, d, dp) in enumerate(up.resets)
    ]
    res = correlate(resets, [log])
    matches = [(x.fields.get("frontend"), x.match) for xs in res.by_reset.values() for x in xs]
    assert ("fe_custom", "4-tuple") in matches
    save(tmp, "haproxy.log")


def save(tmp, *names: str) -> None:
    if os.environ.get("RESETLENS_WRITE_FIXTURES") != "1":
        return
    out = os.path.join(ROOT, "fixtures", "logs", "real")
    os.makedirs(out, exist_ok=True)
    for name in names:
        shutil.copy(tmp / name, os.path.join(out, name))
