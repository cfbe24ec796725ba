"""`resetlens analyze` end to end through the real console script: contract shape, exit codes, bad input."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPUS_PCAPS, ROOT

RESETLENS = [str(Path(sys.executable).with_name("resetlens"))]

CONTRACT_TOP = {"format", "resetlens_version", "captures", "connections", "resets", "summary"}
CONTRACT_CAPTURE = {
    "vantage",
    "path",
    "host",
    "packets",
    "resets",
    "first_ts",
    "last_ts",
    "clock_offset",
    "clock_offset_error",
    "warnings",
}
CONTRACT_CONN = {
    "vantage",
    "ts",
    "orig_h",
    "orig_p",
    "resp_h",
    "resp_p",
    "conn_state",
    "history",
    "duration",
    "orig_bytes",
    "resp_bytes",
}
CONTRACT_RESET = {
    "id",
    "ts",
    "src",
    "sport",
    "dst",
    "dport",
    "seen_at",
    "sender",
    "cause",
    "confidence",
    "evidence",
    "logs",
    "decision",
}
CAUSES = {
    "no_listener",
    "abortive_close",
    "stale_reuse",
    "state_lost",
    "timeout",
    "policy_reject",
    "tls_handshake",
    "backlog_overflow",
    "unknown",
}


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RESETLENS, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_json_to_stdout_follows_the_contract() -> None:
    p = run("analyze", "--capture", f"client={CORPUS_PCAPS / 'zeek_pop3_pop3.pcap'}", "--json", "-")
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert CONTRACT_TOP <= data.keys()
    assert data["format"] == 1
    assert CONTRACT_CAPTURE <= data["captures"][0].keys()
    assert data["connections"] and all(CONTRACT_CONN <= c.keys() for c in data["connections"])
    assert len(data["resets"]) == 6  # six SYNs rejected with RST+ACK
    for r in data["resets"]:
        assert CONTRACT_RESET <= r.keys()
        assert {"role", "host", "kind"} <= r["sender"].keys()
        assert r["cause"] in CAUSES
        assert 0 <= r["confidence"] <= 1
        assert r["seen_at"] and {"vantage", "ts", "frame", "ttl", "ip_id"} <= r["seen_at"][0].keys()
        assert r["evidence"] and {"code", "text", "vantage", "frame"} <= r["evidence"][0].keys()
    # A RST+ACK answering a SYN is the server's kernel saying nothing listens.
    assert {r["cause"] for r in data["resets"]} == {"no_listener"}
    assert {r["sender"]["kind"] for r in data["resets"]} == {"kernel"}
    assert {"by_role", "by_cause", "by_kind", "verdict"} <= data["summary"].keys()


def test_terminal_summary_and_fail_on(tmp_path: Path) -> None:
    cap = f"x={CORPUS_PCAPS / 'zeek_pop3_pop3.pcap'}"
    p = run("analyze", "--capture", cap)
    assert p.returncode == 0, p.stderr
    assert "no_listener" in p.stdout or "No listener" in p.stdout
    assert run("analyze", "--capture", cap, "--quiet", "--fail-on", "cause=no_listener").returncode == 1
    assert run("analyze", "--capture", cap, "--quiet", "--fail-on", "injected").returncode == 0
    bad = run("analyze", "--capture", cap, "--fail-on", "cause=bogus")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_bundle_folder_without_manifest(tmp_path: Path) -> None:
    for name in ("zeek_http_http-to-ssh.pcap", "zeek_tcp_fin_retransmission.pcap"):
        shutil.copy(CORPUS_PCAPS / name, tmp_path / name)
    with gzip.open(tmp_path / "third.pcap.gz", "wb") as f:
        f.write((CORPUS_PCAPS / "zeek_tcp_syn-then-rst.pcap").read_bytes())
    out = tmp_path / "a.json"
    p = run("analyze", str(tmp_path), "--json", str(out), "--quiet")
    assert p.returncode == 0, p.stderr
    data = json.loads(out.read_text())
    assert {c["vantage"] for c in data["captures"]} == {
        "zeek_http_http-to-ssh",
        "zeek_tcp_fin_retransmission",
        "third",
    }


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"", "empty"),
        (b"this is not a capture file at all, just text\n" * 3, "magic"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated"),
    ],
)
def test_unusable_capture_is_one_line_exit_2(tmp_path: Path, content: bytes, expect: str) -> None:
    f = tmp_path / "bad.pcap"
    f.write_bytes(content)
    p = run("analyze", "--capture", f"v={f}")
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, p.stderr
    assert "bad.pcap" in lines[0]
    assert expect in lines[0].lower()


def test_directory_without_captures_and_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here\n")
    p = run("analyze", str(tmp_path))
    assert p.returncode == 2 and "no capture" in p.stderr and "Traceback" not in p.stderr
    p = run("analyze", str(tmp_path / "nope"))
    assert p.returncode == 2 and "nope" in p.stderr
    p = run("analyze", "--capture", "novantage")
    assert p.returncode == 2 and "VANTAGE=PATH" in p.stderr


def test_truncated_last_record_is_a_warning_and_the_rest_is_analysed(tmp_path: Path) -> None:
    data = (CORPUS_PCAPS / "zeek_pop3_pop3.pcap").read_bytes()
    f = tmp_path / "cut.pcap"
    f.write_bytes(data[:-25])
    p = run("analyze", "--capture", f"v={f}", "--json", "-")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["captures"][0]["warnings"], "the cut must be reported"
    assert any("byte" in w or "offset" in w for w in doc["captures"][0]["warnings"])
    assert len(doc["resets"]) == 6


def test_bad_manifest_names_the_file(tmp_path: Path) -> None:
    shutil.copy(CORPUS_PCAPS / "zeek_pop3_pop3.pcap", tmp_path / "a.pcap")
    (tmp_path / "resetlens.toml").write_text("[[capture]\nvantage = 'x'\n")
    p = run("analyze", str(tmp_path))
    assert p.returncode == 2 and "resetlens.toml" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "resetlens.toml").write_text("[[capture]]\nvantage = 'x'\npath = 'missing.pcap'\n")
    p = run("analyze", str(tmp_path))
    assert p.returncode == 2 and "missing.pcap" in p.stderr


def test_captures_logs_and_hosts_from_flags() -> None:
    """The contract's flag form: --capture, --log and --host without a manifest."""
    b = ROOT / "fixtures" / "lab" / "proxy_timeout"
    p = run(
        "analyze",
        "--capture", f"proxy-back={b / 'captures' / 'proxy-back.pcap'}",
        "--capture", f"server={b / 'captures' / 'server.pcap'}",
        "--log", f"nginx-error={b / 'logs' / 'nginx-error.log'}",
        "--log", f"haproxy={b / 'logs' / 'haproxy.log'}",
        "--host", "proxy=10.77.3.1",
        "--host", "server=10.77.3.2",
        "--json", "-",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    hosts = {h["name"]: h for h in doc["hosts"]}
    assert hosts["proxy"]["role"] == "proxy" and hosts["proxy"]["source"] == "manifest"
    assert {r["sender"]["role"] for r in doc["resets"]} == {"proxy"}
    assert {r["cause"] for r in doc["resets"]} == {"timeout"}
    # HAProxy's line names the exact 4-tuple, so it is tied to its reset; nginx's error line has no
    # upstream port, and without the client leg it stays context. Both files are read and reported.
    kinds = {x["kind"] for r in doc["resets"] for x in r["logs"]}
    assert "haproxy" in kinds
    sources = {s["kind"]: s for s in doc["log_sources"]}
    assert {"nginx-error", "haproxy"} <= sources.keys()
    bad = run("analyze", "--capture", f"x={b / 'captures' / 'server.pcap'}", "--log", "bogus=/etc/hostname")
    assert bad.returncode == 2 and "unknown log kind" in bad.stderr


def test_non_utf8_file_names_render(tmp_path: Path) -> None:
    """Archives carry file names that are not UTF-8: they are shown escaped, never a crash."""
    raw = os.fsencode(tmp_path) + b"/caf\xe9-\xff.pcap"
    with open(raw, "wb") as f:
        f.write((CORPUS_PCAPS / "zeek_pop3_pop3.pcap").read_bytes())
    name = os.fsdecode(raw)
    html, md = tmp_path / "r.html", tmp_path / "r.md"
    p = run("analyze", name, "--html", str(html), "--md", str(md), "--quiet")
    assert p.returncode == 0, p.stderr
    assert "caf" in html.read_text(encoding="utf-8") and "caf" in md.read_text(encoding="utf-8")
    out = tmp_path / "r.json"
    p = run("analyze", name, "--json", str(out), "--quiet")
    assert p.returncode == 0, p.stderr
    data = json.loads(out.read_bytes().decode("utf-8"))  # valid UTF-8: the raw bytes are JSON escapes
    assert data["captures"][0]["vantage"] == os.fsdecode(b"caf\xe9-\xff")  # the same name back
    assert data["connections"] and data["connections"][0]["vantage"] == data["captures"][0]["vantage"]


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_outputs_to_a_device_write_through_it(tmp_path: Path) -> None:
    """`--json /dev/null` must never replace the device with a file (a temp file renamed over it would).
    A private null-device node stands in for /dev/null, so a regression cannot harm the machine."""
    import stat

    dev = tmp_path / "null"
    os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    cap = f"v={CORPUS_PCAPS / 'zeek_pop3_pop3.pcap'}"
    p = run("analyze", "--capture", cap, "--json", str(dev), "--html", str(dev), "--md", str(dev), "--quiet")
    assert p.returncode == 0, p.stderr
    assert stat.S_ISCHR(os.stat(dev).st_mode), "the device node was replaced by a file"
    assert not (tmp_path / "null-snippets").exists()


def test_json_written_beside_the_summary_is_the_same_and_a_failure_is_still_one_line(tmp_path: Path) -> None:
    """With a terminal summary or Markdown to make as well, the JSON is written by a thread meanwhile: the
    same bytes as a quiet run; a failure there is still one line and exit 2, with no temp file left over."""
    bundle = ROOT / "fixtures" / "lab" / "mixed"
    quiet, shown, beside_md = tmp_path / "q.json", tmp_path / "s.json", tmp_path / "m.json"
    assert run("analyze", str(bundle), "--json", str(quiet), "--quiet").returncode == 0
    p = run("analyze", str(bundle), "--json", str(shown))
    assert p.returncode == 0, p.stderr
    assert "no_listener" in p.stdout or "reset" in p.stdout.lower()  # the summary was printed meanwhile
    p = run("analyze", str(bundle), "--json", str(beside_md), "--md", str(tmp_path / "r.md"), "--quiet")
    assert p.returncode == 0, p.stderr
    assert shown.read_bytes() == quiet.read_bytes() == beside_md.read_bytes()
    assert json.loads(shown.read_bytes())["resets"]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad = run("analyze", str(bundle), "--json", str(blocker / "out.json"))
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert str(blocker) in bad.stderr and "cannot write" in bad.stderr
    assert not list(tmp_path.glob("**/.*.tmp"))


def test_analyze_of_captures_loads_no_log_or_snapshot_parsers(tmp_path: Path) -> None:
    """Start-up cost: `analyze --capture` with no logs and no bundle folder never imports the log parsers,
    the host-snapshot parsers or pydantic (typer 0.29 builds a validator per option at every start)."""
    capture = ROOT / "fixtures" / "lab" / "client_abort" / "captures"
    pcap = sorted(capture.iterdir())[0]
    code = (
        "import sys\n"
        "from resetlens import cli\n"
        f"sys.argv = ['resetlens', 'analyze', '--capture', 'c={pcap}', '--json', '{tmp_path / 'out.json'}', '-q']\n"
        "try:\n    cli.app()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(run.stdout.split())
    assert "resetlens.pipeline" in loaded and "resetlens.blame.engine" in loaded  # the analysis did run
    assert json.loads((tmp_path / "out.json").read_text())["resets"]
    for lazy in ("resetlens.evidence.snapshots", "resetlens.evidence.correlate", "resetlens.evidence.nginx",
                 "pydantic"):  # fmt: skip
        assert lazy not in loaded, lazy
