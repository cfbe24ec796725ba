#!/usr/bin/env python3
"""Time resetlens against the I/O floor and the usual tools on one synthetic capture.

    bench_analyze.py [--size-mb 1000] [--runs 3] [--slow-runs N] [--quick] [--seed 1] [--only a,b] [--skip a,b]
                     [--format pcap|pcap-ns|pcapng] [--gzip]

Generates benchmarks/data/bench-<size>mb-s<seed>.pcap with gen_pcap.py (or reuses it), warms the page
cache, then runs every method once per round, interleaved, for --runs rounds. Each run is a whole process
timed from spawn to exit, with its own peak RSS from wait4(). Prints medians, ratios to `cat` and to the
tcpdump v4+v6 BPF run, and the RST count each method found next to the generator's ground truth. Results
also go to benchmarks/data/results-<size>mb-s<seed>.json. Rows whose resetlens piece does not exist yet
are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import stat
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DATA = BENCH_DIR / "data"
VENV_BIN = REPO / ".venv" / "bin"
# the venv's own interpreter (not a version-manager shim, which adds about 0.15 s per process)
PYTHON = str(VENV_BIN / "python")
GNU_TIME = "/usr/bin/time"  # GNU time: reports the peak RSS of the one process it runs
RESETLENS = str(VENV_BIN / "resetlens")
BPF_V4 = "tcp[tcpflags] & tcp-rst != 0"  # libpcap's tcp[] only looks at IPv4
BPF_V46 = BPF_V4 + " or (ip6 and ip6[6] == 6 and ip6[53] & 4 != 0)"  # + IPv6 without extension headers
TSHARK_FIELDS = [
    "frame.number",
    "frame.time_epoch",
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "ip.dst",
    "ipv6.dst",
]
TSHARK_FIELDS += ["tcp.dstport", "ip.ttl", "ipv6.hlim", "ip.id", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags"]
# analyze writes its JSON here, not to /dev/null: its atomic write (temp file + rename) replaced the
# /dev/null device node with a regular file when given that path (found by this benchmark)
ANALYZE_OUT = DATA / "analyze-out.json"
SLOW_METHODS = {"tshark", "dpkt"}  # baselines that take a minute per GB: --slow-runs limits their rounds
RUN_TIMEOUT = 3600  # seconds; one tshark run over 1 GB takes about a minute and a half
# The reader's RST-only pass: iterate the packet table chunks and count rows with RST set.
READER_RST_CODE = """
import sys
from resetlens.capture import open_capture
from resetlens.capture.table import RST
n = 0
for chunk in open_capture(sys.argv[1]).chunks():
    table = getattr(chunk, "table", chunk)
    n += int(((table["flags"] & RST) != 0).sum())
print(n)
"""
# Python's own I/O floor: read the whole file in 16 MiB blocks into one buffer.
PY_READ_CODE = """
import sys
buf = bytearray(16 << 20)
with open(sys.argv[1], "rb", buffering=0) as fh:
    while fh.readinto(buf):
        pass
"""
# Targets from the issue (Core item 7), checked at the end.
TARGET_RST_VS_TCPDUMP = 3.0  # RST finding within 3x of the tcpdump BPF run
TARGET_ANALYZE_VS_CAT = 10.0  # whole analyze within 10x of cat
TARGET_VS_TSHARK = 20.0  # analyze at least 20x faster than tshark -Y
TARGET_RSS_MIB = 300.0  # peak RSS of analyze on the 1 GB file
ANCHOR_RST_S_PER_GB = 2.5  # perf-anchors.md bar: RST-only scan
ANCHOR_TWOPASS_S_PER_GB = 4.0  # perf-anchors.md bar: full two-pass context extraction


@dataclass
class Method:
    name: str
    label: str
    argv: list[str]
    stdout_file: bool = False  # keep stdout (for counting) instead of discarding it
    count: str = "none"  # how the RST count is obtained: "lines", "int", "tcpdump", "analyze", "none"
    skip: str = ""  # why this row cannot run (set when a resetlens piece is missing)
    check_argv: list[str] = field(default_factory=list)  # untimed run whose stdout lines count the RSTs
    walls: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)  # user + sys seconds per run
    found: int | None = None
    error: str = ""


def run_measured(argv: list[str], stdout_path: Path | None) -> tuple[float, float, int, int, str]:
    """Run argv once: (wall s, CPU s user+sys, peak RSS KiB of that process, exit code, stderr tail).

    The peak RSS comes from GNU time wrapped around the command: a child forked straight from this
    Python process would inherit its resident pages into ru_maxrss, and time's own are about 2 MiB.
    """
    err_path = DATA / f".stderr-{os.getpid()}"  # per benchmark process: two may run at once
    rss_path = DATA / f".maxrss-{os.getpid()}"
    with open(err_path, "wb") as err, open(stdout_path or os.devnull, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [GNU_TIME, "-f", "%M", "-o", str(rss_path), *argv],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(proc.pid, 0)  # time's usage includes the command's (µs resolution)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    tail = err_path.read_text(errors="replace").strip().splitlines()[-3:]
    last = rss_path.read_text().strip().splitlines()[-1:]  # "Command exited ..." may come first
    rss = int(last[0]) if last and last[0].isdigit() else 0
    err_path.unlink(missing_ok=True)
    rss_path.unlink(missing_ok=True)
    return wall, usage.ru_utime + usage.ru_stime, rss, proc.returncode, " | ".join(tail)


def check_dev_null() -> None:
    """Stop if /dev/null is no longer the null device: every later figure would be wrong."""
    if not stat.S_ISCHR(os.stat(os.devnull).st_mode):
        sys.exit(f"{os.devnull} is not a character device any more (recreate: mknod -m 666 /dev/null c 1 3)")


def ensure_capture(size_mb: float, seed: int, fmt: str = "pcap", gz: bool = False) -> tuple[Path, dict]:
    DATA.mkdir(parents=True, exist_ok=True)
    stem = f"bench-{size_mb:g}mb-s{seed}" + ("" if fmt == "pcap" else f"-{fmt}")
    path = DATA / (stem + (".pcapng" if fmt == "pcapng" else ".pcap") + (".gz" if gz else ""))
    truth_path = Path(str(path) + ".truth.json")
    if not (path.exists() and truth_path.exists()):
        print(f"generating {path} ...", file=sys.stderr)
        cmd = [
            PYTHON,
            str(BENCH_DIR / "gen_pcap.py"),
            "-o",
            str(path),
            "--size-mb",
            str(size_mb),
            "--seed",
            str(seed),
            "--format",
            fmt,
        ]
        subprocess.run(cmd + (["--gzip"] if gz else []), check=True)
    return path, json.loads(truth_path.read_text())


def resetlens_state() -> tuple[str, str]:
    """Why the reader row and the analyze row cannot run yet ('' when they can)."""
    probe = subprocess.run(
        [PYTHON, "-c", "from resetlens.capture import open_capture"], capture_output=True, text=True
    )
    reader = "" if probe.returncode == 0 else "resetlens.capture.open_capture is not importable yet"
    if not Path(RESETLENS).exists():
        return reader, f"{RESETLENS} is not installed"
    probe = subprocess.run([RESETLENS, "analyze", "--help"], capture_output=True, text=True)
    analyze = "" if probe.returncode == 0 else "`resetlens analyze` does not exist yet"
    return reader, analyze


def tcpdump_method(name: str, label: str, fs: str, bpf: str, gz: bool) -> Method:
    """tcpdump over the file; a gzip file is piped in through zcat (libpcap does not read gzip)."""
    if not gz:
        # -Z root: tcpdump run as root hands its -w file to user tcpdump, which would chown /dev/null
        argv = ["tcpdump", "-Z", "root", "-r", fs, "-w", "/dev/null", bpf]
        check = ["tcpdump", "-r", fs, "-nn", "-q", bpf]
    else:
        feed = f"zcat {shlex.quote(fs)} | tcpdump -r -"
        argv = ["sh", "-c", f"{feed} -Z root -w /dev/null {shlex.quote(bpf)}"]
        check = ["sh", "-c", f"{feed} -nn -q {shlex.quote(bpf)}"]
        label = label.replace("`tcpdump -r F", "`zcat F | tcpdump -r -")
    return Method(name, label, argv, count="tcpdump", check_argv=check)


def build_methods(f: Path, gz: bool = False) -> list[Method]:
    fs = str(f)
    tshark = ["tshark", "-r", fs, "-n", "-Y", "tcp.flags.reset==1", "-T", "fields"]
    for name in TSHARK_FIELDS:
        tshark += ["-e", name]
    reader_skip, analyze_skip = resetlens_state()
    return [
        Method("cat", "`zcat F >/dev/null` (decompression floor)", ["zcat", fs])
        if gz
        else Method("cat", "`cat F >/dev/null` (I/O floor)", ["cat", fs]),
        Method(
            "py_read",
            "Python `readinto` 16 MiB blocks (Python I/O floor)",
            [PYTHON, "-c", PY_READ_CODE, fs],
            skip="not meaningful on a gzip file" if gz else "",
        ),
        tcpdump_method("tcpdump_v4", "`tcpdump -r F -w /dev/null '<v4 BPF>'`", fs, BPF_V4, gz),
        tcpdump_method("tcpdump_v46", "`tcpdump -r F -w /dev/null '<v4+v6 BPF>'`", fs, BPF_V46, gz),
        Method(
            "tshark",
            "`tshark -r F -Y tcp.flags.reset==1 -T fields ...`",
            tshark,
            stdout_file=True,
            count="lines",
        ),
        Method(
            "dpkt",
            "dpkt loop (`benchmarks/dpkt_rst.py`)",
            [PYTHON, str(BENCH_DIR / "dpkt_rst.py"), fs],
            stdout_file=True,
            count="lines",
        ),
        Method(
            "reader_rst",
            "resetlens reader, RST rows only (`open_capture(F).chunks()`)",
            [PYTHON, "-c", READER_RST_CODE, fs],
            stdout_file=True,
            count="int",
            skip=reader_skip,
        ),
        Method(
            "analyze",
            "`resetlens analyze --capture big=F --json OUT`",
            [RESETLENS, "analyze", "--capture", f"big={fs}", "--json", str(ANALYZE_OUT)],
            count="analyze",
            skip=analyze_skip,
        ),
    ]


def count_found(m: Method, f: Path, out_path: Path) -> int | None:
    """The number of RST packets the method reported (an extra, untimed run where the timed one has no output)."""
    if m.count == "lines":
        return sum(1 for _ in open(out_path, "rb"))
    if m.count == "int":
        text = out_path.read_text().strip().splitlines()
        return int(text[-1]) if text else None
    if m.count == "tcpdump":  # same filter, text output: one line per matching packet
        proc = subprocess.run(m.check_argv, capture_output=True, timeout=RUN_TIMEOUT)
        return proc.stdout.count(b"\n")
    if m.count == "analyze":
        json_path = DATA / "analyze-check.json"
        argv = [*m.argv[:-1], str(json_path)]
        proc = subprocess.run(argv, capture_output=True, timeout=RUN_TIMEOUT)
        if proc.returncode != 0 or not json_path.exists():
            m.error = f"check run exited {proc.returncode}"
            return None
        doc = json.loads(json_path.read_text())
        return int(sum(c.get("resets", 0) for c in doc.get("captures", [])))
    return None


def machine() -> dict:
    mem_kib = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    cpu = ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def version(argv: list[str]) -> str:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except OSError:
            return "missing"
        return (proc.stdout or proc.stderr).strip().splitlines()[0]

    return {
        "nproc": os.cpu_count(),
        "mem_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "tcpdump": version(["tcpdump", "--version"]),
        "tshark": version(["tshark", "--version"]).split(" (Git")[0],
        "python_path": PYTHON,
        "commit": subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=float, default=1000.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--slow-runs", type=int, default=None, help="rounds that include tshark and dpkt (default: all)"
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="100 MB file, for iterating")
    ap.add_argument("--format", choices=("pcap", "pcap-ns", "pcapng"), default="pcap", help="capture format")
    ap.add_argument(
        "--gzip", action="store_true", help="gzip-compressed capture (cat/tcpdump rows go via zcat)"
    )
    ap.add_argument("--only", default="", help="comma-separated method names to run (cat always runs)")
    ap.add_argument("--skip", default="", help="comma-separated method names to leave out")
    args = ap.parse_args(argv)
    size = 100.0 if args.quick else args.size_mb
    f, truth = ensure_capture(size, args.seed, args.format, args.gzip)
    methods = build_methods(f, args.gzip)
    only = {n for n in args.only.split(",") if n} | {"cat"} if args.only else set()
    skip = {n for n in args.skip.split(",") if n}
    for m in methods:
        if (only and m.name not in only) or m.name in skip:
            m.skip = m.skip or "left out on the command line"
    active = [m for m in methods if not m.skip]
    for m in methods:
        if m.skip:
            print(f"note: skipping {m.name}: {m.skip}", file=sys.stderr)
    # The package's bytecode, as a regular pip install leaves it (an editable install under
    # PYTHONDONTWRITEBYTECODE=1 would recompile every module in every timed run).
    subprocess.run(
        [PYTHON, "-m", "compileall", "-q", str(REPO / "resetlens")], check=True, capture_output=True
    )
    if shutil.which("cat"):
        for _ in range(2):  # warm the page cache: every method below reads from memory
            run_measured(["cat", str(f)], None)
    loads: list[float] = []
    slow_runs = args.runs if args.slow_runs is None else args.slow_runs
    for r in range(args.runs):
        for m in active:
            check_dev_null()
            if m.name in SLOW_METHODS and r >= slow_runs:
                continue
            out_path = DATA / f"out-{m.name}.txt" if m.stdout_file else None
            loads.append(os.getloadavg()[0])
            wall, cpu, rss, rc, err = run_measured(m.argv, out_path)
            if rc != 0:
                m.error = f"exit {rc}: {err}"
                print(f"run {r + 1}: {m.name} FAILED ({m.error})", file=sys.stderr)
                continue
            check_dev_null()  # a run that broke the null device would have measured file writes
            m.walls.append(wall)
            m.rss_kib.append(rss)
            m.cpus.append(cpu)
            print(
                f"run {r + 1}/{args.runs}: {m.name:12s} {wall:8.3f} s {cpu:8.2f} CPU s {rss / 1024:8.1f} MiB load {loads[-1]:.1f}",
                file=sys.stderr,
            )
            if r == 0 and m.count != "none":
                m.found = (
                    count_found(m, f, out_path) if out_path or m.count in ("tcpdump", "analyze") else None
                )
    report(methods, f, truth, args.runs, loads)
    return 0


def report(methods: list[Method], f: Path, truth: dict, runs: int, loads: list[float]) -> None:
    med = {m.name: statistics.median(m.walls) for m in methods if m.walls}
    cat = med.get("cat")
    tcpdump = med.get("tcpdump_v46")
    cpu_med = {m.name: statistics.median(m.cpus) for m in methods if m.cpus}
    tcpdump_cpu = cpu_med.get("tcpdump_v46")
    expected = truth["rst_packets_total"]
    gb = truth.get("uncompressed_bytes", truth["file_bytes"]) / 1e9  # per GB of capture data, before gzip
    info = machine()
    print()
    print(f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['mem_gib']} GiB, Linux {info['kernel']}")
    print(
        f"tools: Python {info['python']} ({PYTHON}), {info['tcpdump']}, {info['tshark']}; resetlens at {info['commit']}"
    )
    print(
        f"file: {f} ({truth['file_bytes']:,} B, {truth['frames']:,} frames, {truth['connections']:,} TCP "
        f"connections, {expected:,} RSTs: {truth['rst_packets_ip6']} IPv6, {truth['rst_packets_ip6_ext']} of "
        "them behind IPv6 extension headers)"
    )
    load = (
        f"1-min load average before each run: median {statistics.median(loads):.1f}, max {max(loads):.1f}"
        if loads
        else ""
    )
    print(f"runs: {runs}, interleaved; whole processes; warm page cache; {load}")
    print()
    head = "| method | median s | runs | range s | median CPU s | s per GB | x cat | x tcpdump v4+v6 | CPU x tcpdump | peak RSS MiB |"
    print(f"{head} RSTs found (truth {expected:,}) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for m in methods:
        if not m.walls:
            print(
                f"| {m.label} | — | — | — | — | — | — | — | — | — | skipped: {m.skip or m.error or 'no successful run'} |"
            )
            continue
        s = med[m.name]
        found = (
            "—"
            if m.found is None
            else f"{m.found:,}" + ("" if m.found == expected else f" ({m.found - expected:+,})")
        )
        rss = max(m.rss_kib) / 1024
        x_cat = s / cat if cat else float("nan")
        x_tcpdump = s / tcpdump if tcpdump else float("nan")
        span = f"{min(m.walls):.3f}–{max(m.walls):.3f}"
        cpu = statistics.median(m.cpus)
        print(
            f"| {m.label} | {s:.3f} | {len(m.walls)} | {span} | {cpu:.2f} | {s / gb:.3f} | {x_cat:.2f} | {x_tcpdump:.2f} | {cpu / tcpdump_cpu if tcpdump_cpu else float('nan'):.1f} | {rss:.0f} | {found} |"
        )
        rows.append(
            {
                "name": m.name,
                "label": m.label,
                "argv": m.argv,
                "walls": m.walls,
                "median": s,
                "cpus": m.cpus,
                "cpu_median": cpu,
                "s_per_gb": s / gb,
                "x_cat": x_cat,
                "x_tcpdump_v46": x_tcpdump,
                "cpu_x_tcpdump_v46": cpu / tcpdump_cpu if tcpdump_cpu else None,
                "peak_rss_mib": rss,
                "found": m.found,
                "error": m.error,
            }
        )
    print()
    verdicts = targets(med, methods, expected, gb)
    for line in verdicts:
        print(line)
    result = {
        "machine": info,
        "file": str(f),
        "truth": {k: v for k, v in truth.items() if k != "resets"},
        "runs": runs,
        "load1_before_runs": loads,
        "rows": rows,
        "skipped": {m.name: m.skip or m.error for m in methods if not m.walls},
        "targets": verdicts,
    }
    out = (
        DATA
        / f"results-{f.name.split('.')[0].removeprefix('bench-')}{'-gz' if f.suffix == '.gz' else ''}.json"
    )
    out.write_text(json.dumps(result, indent=1))
    print(f"\nresults: {out}")


def targets(med: dict[str, float], methods: list[Method], expected: int, gb: float) -> list[str]:
    """The issue's targets, then perf-anchors.md's absolute bars, then the correctness checks."""
    by_name = {m.name: m for m in methods}
    lines = []

    def verdict(ok: bool) -> str:
        return "MET" if ok else "NOT MET"

    cat, tcpdump, tshark = med.get("cat"), med.get("tcpdump_v46"), med.get("tshark")
    reader, analyze = med.get("reader_rst"), med.get("analyze")
    if reader and tcpdump:
        x = reader / tcpdump
        lines.append(
            f"target RST finding <= {TARGET_RST_VS_TCPDUMP:g}x tcpdump BPF: {x:.2f}x -> {verdict(x <= TARGET_RST_VS_TCPDUMP)}"
        )
    if analyze and cat:
        x = analyze / cat
        lines.append(
            f"target analyze <= {TARGET_ANALYZE_VS_CAT:g}x cat: {x:.1f}x -> {verdict(x <= TARGET_ANALYZE_VS_CAT)}"
        )
    if analyze and tshark:
        x = tshark / analyze
        lines.append(
            f"target analyze >= {TARGET_VS_TSHARK:g}x faster than tshark: {x:.1f}x -> {verdict(x >= TARGET_VS_TSHARK)}"
        )
    if analyze:
        rss = max(by_name["analyze"].rss_kib) / 1024
        lines.append(
            f"target analyze peak RSS < {TARGET_RSS_MIB:g} MiB: {rss:.0f} MiB -> {verdict(rss < TARGET_RSS_MIB)}"
        )
    # perf-anchors.md's absolute bars (its machine's cat read 1 GB in 0.20 s)
    if reader:
        x = reader / gb
        lines.append(
            f"anchor bar RST-only scan <= {ANCHOR_RST_S_PER_GB:g} s/GB: {x:.2f} s/GB -> {verdict(x <= ANCHOR_RST_S_PER_GB)}"
        )
    if analyze:
        x = analyze / gb
        bar = ANCHOR_TWOPASS_S_PER_GB
        lines.append(
            f"anchor bar two-pass extraction <= {bar:g} s/GB (analyze does more): {x:.2f} s/GB -> {verdict(x <= bar)}"
        )
    for name in ("reader_rst", "analyze"):
        found = by_name[name].found
        if name in med and found is not None:
            ok = "OK" if found == expected else "MISMATCH"
            lines.append(f"correctness {name}: {found:,} RSTs vs truth {expected:,} -> {ok}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
