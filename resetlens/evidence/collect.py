"""`resetlens collect`: build a bundle on a live Linux host.

    BUNDLE/resetlens.toml                         manifest (contract §2)
    BUNDLE/captures/<host>-<iface>.pcap           tcpdump, bounded ring buffer (-C/-W), merged at the end
    BUNDLE/snapshots/<host>/<name>-before.txt     host snapshots (snapshots.NAMES) before and after
    BUNDLE/logs/journal.json                      journalctl -o json for the window (when there is a journal)
    BUNDLE/collect-notes.txt                      what was skipped and why

Bounded in time (--duration) and disk (ring of --ring-files x --ring-mb); --until-resets stops
early once that many RST segments were seen.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from resetlens.errors import ResetlensError

# Snapshot name -> command (run as is; a missing tool or an error becomes a note).
SNAPSHOT_COMMANDS: dict[str, list[str]] = {
    "ss": ["ss", "-tanpi"],
    "nstat": ["nstat", "-saz"],  # -s: do not touch nstat's history file
    "netstat": ["netstat", "-s"],
    "nft": ["nft", "list", "ruleset"],
    "conntrack-stats": ["conntrack", "-S"],
    "conntrack-count": ["conntrack", "-C"],
    "ip-link": ["ip", "-s", "link"],
}
# Seconds any one snapshot command may take.
COMMAND_TIMEOUT = 20
# Seconds to wait for tcpdump to start listening, and to exit after SIGINT.
TCPDUMP_START = 10.0
TCPDUMP_STOP = 10.0
# Seconds to let the capture drain after the last counted RST before stopping tcpdump.
STOP_GRACE = 0.5
# Polling step of the capture loop, seconds.
POLL = 0.05
# Slack around the capture window for journalctl --since/--until, seconds.
JOURNAL_SLACK = 2.0
# Classic pcap global header length (skipped when appending ring files).
PCAP_HEADER = 24


@dataclass
class CollectResult:
    out: str
    host: str
    captures: list[str] = field(default_factory=list)
    resets_seen: int = 0
    started: float = 0.0
    stopped: float = 0.0
    notes: list[str] = field(default_factory=list)


def _run(argv: list[str]) -> tuple[int, str, str]:
    exe = shutil.which(argv[0])
    if exe is None:
        return 127, "", f"{argv[0]}: not installed"
    try:
        p = subprocess.run([exe, *argv[1:]], capture_output=True, timeout=COMMAND_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, "", str(exc)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def take_snapshot(directory: str, when: str, notes: list[str]) -> list[str]:
    """Write <name>-<when>.txt for every snapshot command that works; notes say which did not."""
    os.makedirs(directory, exist_ok=True)
    written = []
    for name, argv in SNAPSHOT_COMMANDS.items():
        rc, out, err = _run(argv)
        if name == "conntrack-count":
            cmax = _read("/proc/sys/net/netfilter/nf_conntrack_max")
            if rc != 0:
                count = _read("/proc/sys/net/netfilter/nf_conntrack_count")
                out, rc = (f"{count}\n" if count is not None else ""), (0 if count is not None else rc)
            if out and cmax is not None:
                out = out.rstrip("\n") + f"\n{cmax}\n"
        if rc != 0:
            note = f"{name} ({when}): {' '.join(argv)} failed"
            if err.strip():
                note += f": {err.strip().splitlines()[0][:200]}"
            notes.append(note)
            continue
        with open(os.path.join(directory, f"{name}-{when}.txt"), "w") as f:
            f.write(out)
        written.append(name)
    from resetlens.evidence.snapshots import SYSCTLS  # here: the CLI imports this module to mount a command

    lines = []
    for key in SYSCTLS:
        value = _read("/proc/sys/" + key.replace(".", "/"))
        if value is not None:
            lines.append(f"{key} = {value}")
    with open(os.path.join(directory, f"sysctl-{when}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    written.append("sysctl")
    return written


def _local_timezone() -> str:
    name = _read("/etc/timezone")
    if name:
        return name.split()[0]
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return "UTC"
    m = re.search(r"zoneinfo/(.+)$", target)
    return m[1] if m else "UTC"


def _addresses() -> list[str]:
    rc, out, _ = _run(["ip", "-o", "addr", "show"])
    addrs = re.findall(r"\binet6? ([0-9a-fA-F:.]+)/", out) if rc == 0 else []
    public = [
        a for a in addrs if not a.startswith("127.") and a != "::1" and not a.lower().startswith("fe80")
    ]
    return public or addrs


def _toml(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def write_manifest(
    path: str,
    title: str,
    host: str,
    captures: list[tuple[str, str]],
    logs: list[tuple[str, str]],
    notes: list[str],
) -> None:
    lines = [f"# written by resetlens collect at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"]
    lines += [f"# note: {n}" for n in notes]
    lines += [f"title = {_toml(title)}", f"timezone = {_toml(_local_timezone())}", ""]
    for vantage, cpath in captures:
        lines += [
            "[[capture]]",
            f"vantage = {_toml(vantage)}",
            f"path = {_toml(cpath)}",
            f"host = {_toml(host)}",
            "",
        ]
    lines += ["[[host]]", f"name = {_toml(host)}", 'role = "other"', f"addresses = {_toml(_addresses())}", ""]
    for kind, lpath in logs:
        lines += ["[[log]]", f"path = {_toml(lpath)}", f"kind = {_toml(kind)}", f"host = {_toml(host)}", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def merge_ring(pieces: list[str], target: str) -> int:
    """Concatenate classic pcap ring files (oldest first) into one; returns the bytes written."""
    total = 0
    with open(target, "wb") as out:
        for i, piece in enumerate(pieces):
            with open(piece, "rb") as f:
                header = f.read(PCAP_HEADER)
                if len(header) < PCAP_HEADER:
                    continue
                if i == 0 or total == 0:
                    out.write(header)
                    total += len(header)
                while chunk := f.read(1 << 20):
                    out.write(chunk)
                    total += len(chunk)
    return total


class _RstCounter:
    """A second tcpdump printing one line per RST segment; counts them in a thread."""

    def __init__(self, iface: str) -> None:
        exe = shutil.which("tcpdump") or "tcpdump"
        self.proc = subprocess.Popen(
            [exe, "-i", iface, "-n", "-l", "-q", "--immediate-mode", "tcp[tcpflags] & tcp-rst != 0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.count = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for _line in self.proc.stdout:
            self.count += 1


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(TCPDUMP_STOP)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_listening(proc: subprocess.Popen[bytes], err_path: str) -> str | None:
    """Wait (bounded) until tcpdump says it is listening; return its error text if it died."""
    deadline = time.monotonic() + TCPDUMP_START
    while time.monotonic() < deadline:
        text = _read(err_path) or ""
        if "listening on" in text:
            return None
        if proc.poll() is not None:
            return text.splitlines()[-1] if text else f"tcpdump exited with {proc.returncode}"
        time.sleep(POLL)
    return None


def collect(
    out: str,
    *,
    duration: float = 60.0,
    until_resets: int | None = None,
    ifaces: list[str] | None = None,
    ring_mb: int = 100,
    ring_files: int = 5,
    host: str | None = None,
    title: str | None = None,
) -> CollectResult:
    """Capture, snapshot and export logs into the bundle directory `out` (created; must be empty or new)."""
    if shutil.which("tcpdump") is None:
        raise ResetlensError("tcpdump is not installed")
    if duration <= 0:
        raise ResetlensError("--duration must be positive")
    if os.path.isdir(out) and os.listdir(out):
        raise ResetlensError("the bundle directory is not empty", path=out)
    ifaces = ifaces or ["any"]
    import socket  # here: the CLI imports this module to mount a command

    host = host or socket.gethostname() or "host"
    safe_host = re.sub(r"[^A-Za-z0-9_.-]", "_", host)
    res = CollectResult(out=out, host=host)
    ring_dir = os.path.join(out, "captures", ".ring")
    snap_dir = os.path.join(out, "snapshots", safe_host)
    os.makedirs(ring_dir, exist_ok=True)
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    take_snapshot(snap_dir, "before", res.notes)

    dumps: list[tuple[str, subprocess.Popen[bytes]]] = []
    counter: _RstCounter | None = None
    try:
        for iface in ifaces:
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", iface)
            err_path = os.path.join(ring_dir, f"{safe}.stderr")
            with open(err_path, "wb") as err:
                proc = subprocess.Popen(
                    [shutil.which("tcpdump") or "tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-s", "0",
                     "-w", os.path.join(ring_dir, f"{safe}.pcap"), "-C", str(ring_mb), "-W", str(ring_files),
                     *(["-Z", "root"] if os.geteuid() == 0 else [])],  # keep root: the bundle may be root-only
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )  # fmt: skip
            dumps.append((iface, proc))
            problem = _wait_listening(proc, err_path)
            if problem:
                res.notes.append(f"tcpdump on {iface} failed: {problem}")
        if not any(p.poll() is None for _, p in dumps):
            raise ResetlensError(
                "tcpdump could not capture on " + ", ".join(ifaces) + ": " + "; ".join(res.notes)
            )
        if until_resets:
            counter = _RstCounter(ifaces[0])
        res.started = time.time()
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            if counter and counter.count >= until_resets:  # type: ignore[operator]
                break
            time.sleep(POLL)
    finally:
        res.stopped = time.time()
        time.sleep(STOP_GRACE)
        for _, proc in dumps:
            _stop(proc)
        if counter:
            _stop(counter.proc)
            counter.thread.join(2)
            res.resets_seen = counter.count
    take_snapshot(snap_dir, "after", res.notes)

    logs: list[tuple[str, str]] = []
    journal = os.path.join(out, "logs", "journal.json")
    rc, text, err = _run_journal(res.started - JOURNAL_SLACK, res.stopped + JOURNAL_SLACK)
    if rc == 0 and text.strip():
        with open(journal, "w") as f:
            f.write(text)
        logs.append(("journald-json", "logs/journal.json"))
    else:
        reason = (err.strip().splitlines() or ["no entries in the window"])[0][:200]
        res.notes.append(f"journal skipped: {reason}")

    captures: list[tuple[str, str]] = []
    for iface, _ in dumps:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", iface)
        pieces = sorted(glob.glob(os.path.join(ring_dir, f"{safe}.pcap*")), key=os.path.getmtime)
        if not pieces:
            continue
        name = f"{safe_host}-{safe}.pcap"
        merge_ring(pieces, os.path.join(out, "captures", name))
        captures.append((f"{host}-{iface}", f"captures/{name}"))
        res.captures.append(os.path.join(out, "captures", name))
    shutil.rmtree(ring_dir, ignore_errors=True)
    with open(os.path.join(out, "collect-notes.txt"), "w") as f:
        f.write("".join(n + "\n" for n in res.notes))
    write_manifest(
        os.path.join(out, "resetlens.toml"), title or f"collected on {host}", host, captures, logs, res.notes
    )
    return res


def _run_journal(since: float, until: float) -> tuple[int, str, str]:
    return _run(
        [
            "journalctl",
            "-o",
            "json",
            "--all",
            "--utc",
            "--no-pager",
            "--since",
            f"@{since:.0f}",
            "--until",
            f"@{until + 1:.0f}",
        ]
    )


def collect_command(
    out: Annotated[Path, typer.Option("--out", help="bundle directory to create")],
    duration: Annotated[float, typer.Option("--duration", help="capture at most this many seconds")] = 60.0,
    until_resets: Annotated[
        int | None, typer.Option("--until-resets", help="stop after this many RST segments")
    ] = None,
    iface: Annotated[
        list[str] | None, typer.Option("--iface", help="interface to capture on (repeatable)")
    ] = None,
    ring_mb: Annotated[int, typer.Option("--ring-mb", help="size of each ring-buffer file, MB")] = 100,
    ring_files: Annotated[int, typer.Option("--ring-files", help="number of ring-buffer files")] = 5,
    host: Annotated[str | None, typer.Option("--host", help="host name for the manifest")] = None,
    title: Annotated[str | None, typer.Option("--title", help="bundle title")] = None,
) -> None:
    """Capture packets, snapshot the host before and after, export the journal, write resetlens.toml."""
    try:
        res = collect(
            str(out),
            duration=duration,
            until_resets=until_resets,
            ifaces=iface or ["any"],
            ring_mb=ring_mb,
            ring_files=ring_files,
            host=host,
            title=title,
        )
    except ResetlensError as exc:
        typer.echo(f"resetlens collect: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"resetlens collect: {out}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"bundle {res.out}: {len(res.captures)} capture(s), {res.resets_seen} RST seen, {res.stopped - res.started:.1f} s"
    )
    for note in res.notes:
        typer.echo(f"  note: {note}")


if __name__ == "__main__":
    typer.run(collect_command)
