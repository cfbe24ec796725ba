"""Shared helpers for the batch tests (no tests here): small archives built from corpus captures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
from conftest import CORPUS_PCAPS, ROOT

from resetlens.bundle import Bundle

PYTHON = sys.executable
# Bound for every wait on a process or a file in these tests (seconds).
WAIT_S = 120.0


def corpus(name: str) -> Path:
    path = CORPUS_PCAPS / name
    if not path.is_file():
        import pytest

        pytest.skip(f"corpus capture {name} not found")
    return path


def put(path: Path, src: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, path)
    return path


def good_archive(root: Path) -> dict[str, str]:
    """A few healthy bundles of every discovery shape; returns bundle name -> shape."""
    put(root / "inc-a" / "client.pcap", corpus("zeek_tcp_rst-inject-rae.pcap"))
    put(root / "inc-a" / "server.pcap", corpus("zeek_tcp_single-rst.pcap"))
    b = root / "site" / "inc-b"
    put(b / "captures" / "edge.pcap", corpus("sv_bug-6244-tcp-rst-with-data.pcap"))
    (b / "resetlens.toml").write_text(
        'title = "inc-b edge"\n[[capture]]\nvantage = "edge"\npath = "captures/edge.pcap"\n', encoding="utf-8"
    )
    put(root / "rotated" / "dump.pcap", corpus("zeek_tcp_syn-then-rst.pcap"))
    put(root / "rotated" / "dump.pcap1", corpus("zeek_tcp_syn-then-ack-then-rst.pcap"))
    put(root / "web01_eth0_20240501T120000Z.pcap", corpus("zeek_tcp_syn-then-stuff-then-rst.pcap"))
    put(root / "lb01_front_20240501T120010Z.pcapng", corpus("zeek_ldap_gap-data-missing.pcapng"))
    return {"inc-a": "captures", "site/inc-b": "manifest", "rotated": "captures", ".": "captures"}


def corrupt_archive(root: Path) -> dict[str, str]:
    """Bundles that cannot be analysed; returns bundle name -> the file the reason must name."""
    (root / "garbage").mkdir(parents=True)
    (root / "garbage" / "x.pcap").write_bytes(b"this is not a capture at all, just text\n" * 10)
    data = corpus("sv_bug-2646-02.pcap").read_bytes()
    (root / "truncated").mkdir(parents=True)
    (root / "truncated" / "cut.pcap").write_bytes(data[:12])  # cut inside the global header
    return {"garbage": "x.pcap", "truncated": "cut.pcap"}


def explode_on_marker(bundle: Bundle):
    """The real pipeline, except for bundles holding a file named EXPLODE (a bug in the analysis)."""
    from resetlens import pipeline

    if bundle.root is not None and (Path(bundle.root) / "EXPLODE").exists():
        raise RuntimeError("simulated analysis bug")
    return pipeline.analyze(bundle)


def crash_on_marker(bundle: Bundle):
    """The real pipeline, except that a bundle holding a file named CRASH kills its worker process."""
    from resetlens import pipeline

    if bundle.root is not None and (Path(bundle.root) / "CRASH").exists():
        os._exit(3)  # what a segfault or the OOM killer looks like to the pool
    return pipeline.analyze(bundle)


def stall_on_marker(bundle: Bundle):
    """The real pipeline, except that a bundle holding a file named STALL never finishes (a hang)."""
    from resetlens import pipeline

    if bundle.root is not None and (Path(bundle.root) / "STALL").exists():
        deadline = time.monotonic() + WAIT_S  # bounded: the batch's timeout must end it long before
        while time.monotonic() < deadline:
            time.sleep(0.05)
    return pipeline.analyze(bundle)


def odd_values_analyze(bundle: Bundle):
    """The real pipeline's analysis with values no column expects (a port beyond 32 bits, an id that is a list)."""
    from resetlens import pipeline

    analysis = pipeline.analyze(bundle)
    for r in analysis.resets:
        r.sport = 2**40
        r.id = [r.id, "odd"]
    return analysis


def rows(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = connect_ro(db)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def connect_ro(db: Path, wait_s: float = WAIT_S) -> duckdb.DuckDBPyConnection:
    """A read-only connection, retried while the batch holds the write lock (bounded)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return duckdb.connect(str(db), read_only=True)
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def assert_consistent(db: Path, reports: bool = True) -> dict[str, str]:
    """Every ok bundle has its reports complete (when `reports`) and exactly its resets/connections rows."""
    con = connect_ro(db)
    try:
        bundles = con.execute(
            "SELECT bundle, status, error, resets, connections, json_report, html_report FROM bundles"
        ).fetchall()
        orphans = con.execute(
            "SELECT count(*) FROM resets WHERE bundle NOT IN (SELECT bundle FROM bundles WHERE status = 'ok')"
        ).fetchone()[0]
        assert orphans == 0, "reset rows without an ok bundle row"
        for name, status, error, n_resets, n_conns, json_report, html_report in bundles:
            got_resets = con.execute("SELECT count(*) FROM resets WHERE bundle = ?", [name]).fetchone()[0]
            got_conns = con.execute("SELECT count(*) FROM connections WHERE bundle = ?", [name]).fetchone()[0]
            if status == "ok":
                assert error is None
                assert n_resets == got_resets and n_conns == got_conns, name
                if not reports:
                    continue
                data = json.loads(Path(json_report).read_text(encoding="utf-8"))  # complete, parseable JSON
                assert len(data["resets"]) == n_resets, name
                assert len(data["connections"]) == n_conns, name
                ids = {r[0] for r in con.execute("SELECT id FROM resets WHERE bundle = ?", [name]).fetchall()}
                assert ids == {r["id"] for r in data["resets"]}, name
                html = Path(html_report).read_text(encoding="utf-8")
                assert html.rstrip().endswith("</html>"), name
            else:
                assert status == "failed" and error, name
                assert got_resets == got_conns == 0, name
        return {b[0]: b[1] for b in bundles}
    finally:
        con.close()


def leftover_temp_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def batch_cmd(*args: str | os.PathLike, standalone: bool = False) -> list[str]:
    """`resetlens batch ...` through the main CLI (or the batch package's own entry point)."""
    entry = ["resetlens.batch"] if standalone else ["resetlens", "batch"]
    return [PYTHON, "-m", *entry, *map(str, args)]


def run_cli(*args: str | os.PathLike, standalone: bool = False) -> subprocess.CompletedProcess:
    cmd = batch_cmd(*args, standalone=standalone)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=WAIT_S)
