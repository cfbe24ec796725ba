#!/usr/bin/env python3
"""Profile `resetlens analyze` (and the reader's RST-only pass) with cProfile on one synthetic capture.

    profile_analyze.py [--size-mb 100] [--seed 1] [--top 30]

Writes benchmarks/data/profile-<what>-<size>mb.prof (open with `python -m pstats` or snakeviz) and a text
summary beside it (top functions by own time and by cumulative time), and prints the summary.
"""

from __future__ import annotations

import argparse
import io
import pstats
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
DATA = BENCH_DIR / "data"
PYTHON = str(BENCH_DIR.parent / ".venv" / "bin" / "python")  # the venv's interpreter, not a shim
READER_RST_SCRIPT = """
import sys
from resetlens.capture import open_capture
from resetlens.capture.table import RST
n = 0
for chunk in open_capture(sys.argv[1]).chunks():
    n += int(((chunk.table["flags"] & RST) != 0).sum())
print(n)
"""
# Runs the CLI's typer app (not cli.main, whose fast exit would skip cProfile's writing of the profile).
ANALYZE_SCRIPT = """
import sys
from resetlens import cli
sys.argv = ["resetlens", *sys.argv[1:]]
try:
    cli.app()
except SystemExit as exc:
    if exc.code:
        raise
"""


def summarize(prof: Path, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(prof), stream=out)
    stats.strip_dirs()
    out.write(f"== {prof.name}: top {top} by own time ==\n")
    stats.sort_stats("tottime").print_stats(top)
    out.write(f"== {prof.name}: top {top} by cumulative time ==\n")
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=float, default=100.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args(argv)
    DATA.mkdir(parents=True, exist_ok=True)
    f = DATA / f"bench-{args.size_mb:g}mb-s{args.seed}.pcap"
    if not f.exists():
        gen = [
            PYTHON,
            str(BENCH_DIR / "gen_pcap.py"),
            "-o",
            str(f),
            "--size-mb",
            str(args.size_mb),
            "--seed",
            str(args.seed),
        ]
        subprocess.run(gen, check=True)
    script = DATA / "reader_rst.py"
    script.write_text(READER_RST_SCRIPT)
    analyze_script = DATA / "analyze_app.py"
    analyze_script.write_text(ANALYZE_SCRIPT)
    runs = {
        # not --json /dev/null: analyze's atomic write would replace the device node with a file
        "analyze": [
            str(analyze_script),
            "analyze",
            "--capture",
            f"big={f}",
            "--json",
            str(DATA / "analyze-out.json"),
        ],
        "reader": [str(script), str(f)],
    }
    for what, tail in runs.items():
        prof = DATA / f"profile-{what}-{args.size_mb:g}mb.prof"
        proc = subprocess.run(
            [PYTHON, "-m", "cProfile", "-o", str(prof), *tail], capture_output=True, text=True
        )
        if proc.returncode != 0:
            print(f"{what}: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        text = summarize(prof, args.top)
        prof.with_suffix(".txt").write_text(text)
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
