"""Real clients against loopback servers that reset (SO_LINGER 0) or close: parse what they printed.

curl, openssl s_client, Node, psql (libpq), Python and Java each run when installed. With
RESETLENS_WRITE_FIXTURES=1 their lines are written to fixtures/logs/real/apps.log.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import threading

import pytest

from resetlens.evidence import parse_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Server:
    """Accepts, reads once, then resets (mode "rst") or closes (mode "fin")."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            c.settimeout(2)
            try:
                c.recv(4096)
            except OSError:
                pass
            if self.mode == "rst":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def ports():
    rst, fin = Server("rst"), Server("fin")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed = s.getsockname()[1]
    s.close()
    try:
        yield rst.port, fin.port, closed
    finally:
        rst.close()
        fin.close()


def run(argv: list[str], stdin: bytes = b"") -> str:
    if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
        return ""
    p = subprocess.run(argv, input=stdin, capture_output=True, timeout=60)
    return (p.stdout + p.stderr).decode("utf-8", "replace")


def test_real_client_error_lines(ports, tmp_path):
    rst, fin, closed = ports
    out: dict[str, str] = {}
    out["curl-rst"] = run(["curl", "-sS", f"http://127.0.0.1:{rst}/"])
    out["curl-fin"] = run(["curl", "-sS", f"http://127.0.0.1:{fin}/"])
    out["curl-refused"] = run(["curl", "-sS", f"http://127.0.0.1:{closed}/"])
    out["curl-tls-rst"] = run(["curl", "-sS", f"https://127.0.0.1:{rst}/"])
    out["openssl-rst"] = run(["openssl", "s_client", "-connect", f"127.0.0.1:{rst}"], b"")
    out["openssl-fin"] = run(["openssl", "s_client", "-connect", f"127.0.0.1:{fin}"], b"")
    node = (
        "require('http').get('http://127.0.0.1:{}/').on('error', e => console.error(e.stack.split('\\n')[0]))"
    )
    out["node-rst"] = run(["node", "-e", node.format(rst)])
    out["node-fin"] = run(["node", "-e", node.format(fin)])
    out["node-refused"] = run(["node", "-e", node.format(closed)])
    out["psql-rst"] = run(["psql", "-h", "127.0.0.1", "-p", str(rst), "-U", "x", "-d", "x", "-w"])
    py = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{}/')"
    out["python-rst"] = run([sys.executable, "-c", py.format(rst)])
    out["python-fin"] = run([sys.executable, "-c", py.format(fin)])
    out["python-refused"] = run([sys.executable, "-c", py.format(closed)])
    if shutil.which("java"):
        src = tmp_path / "J.java"
        src.write_text(
            "public class J { public static void main(String[] a) throws Exception {"
            f' var s = new java.net.Socket("127.0.0.1", {rst});'
            ' s.getOutputStream().write("GET / HTTP/1.0\\r\\n\\r\\n".getBytes()); Thread.sleep(300);'
            " try { s.getInputStream().read(); } catch (Exception e) { System.err.println(e); } } }"
        )
        out["java-rst"] = run(["java", str(src)])
    expected = {
        "curl-rst": "app_rst_received",
        "curl-fin": "app_fin_received",
        "curl-refused": "app_refused",
        "curl-tls-rst": "app_tls_reset",
        "openssl-rst": "app_rst_received",
        "openssl-fin": "app_fin_received",
        "node-rst": "app_rst_received",
        "node-fin": "app_conn_lost",
        "node-refused": "app_refused",
        "psql-rst": "app_conn_lost",
        "python-rst": "app_rst_received",
        "python-fin": "app_fin_received",
        "python-refused": "app_refused",
        "java-rst": "app_rst_received",
    }
    seen = {}
    for name, text in out.items():
        if not text:
            continue  # the tool is not installed
        log = parse_bytes(text.encode(), "app")
        seen[name] = [r.event for r in log.records if r.event]
        assert expected[name] in seen[name], (name, text)
    assert len(seen) >= 5  # curl, openssl and Python at least
    if os.environ.get("RESETLENS_WRITE_FIXTURES") == "1":
        lines = []
        for text in out.values():
            lines += [ln for ln in text.splitlines() if parse_bytes(ln.encode(), "app").records]
        path = os.path.join(ROOT, "fixtures", "logs", "real", "apps.log")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
