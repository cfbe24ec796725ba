#!/usr/bin/env python3
"""Batch throughput: many small bundles plus a few large captures, 1 worker against 2.

    bench_batch.py [--small 200] [--large 4] [--large-mb 100] [--dir DIR] [--keep]

Small bundles are copies of the corpus captures (../shared/corpus/pcaps), one or two per bundle; large
ones are generated with benchmarks/gen_pcap.py (deterministic seeds). Each run starts from a fresh
database and report folder, so both do the same work. Prints wall time, bundles/s and MB/s per run
and the 1-worker / 2-worker time ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "pcaps"
# Corpus captures above this size are left out of the small bundles (keeps them small).
SMALL_MAX_BYTES = 64 * 1024

sys.path.insert(0, str(ROOT))


def build_archive(root: Path, small: int, large: int, large_mb: float) -> int:
    """Write the archive; returns its size in bytes."""
    pcaps = sorted(p for p in CORPUS.glob("*.pcap*") if p.stat().st_size <= SMALL_MAX_BYTES)
    if not pcaps:
        sys.exit(f"bench_batch: no corpus captures under {CORPUS}")
    for i in range(small):
        b = root / "small" / f"inc-{i:04d}"
        b.mkdir(parents=True)
        shutil.copyfile(pcaps[i % len(pcaps)], b / "client.pcap")
        if i % 2:
            shutil.copyfile(pcaps[(i * 7 + 3) % len(pcaps)], b / "server.pcap")
    gen = HERE / "gen_pcap.py"
    for i in range(large):
        b = root / "large" / f"big-{i}"
        b.mkdir(parents=True)
        cmd = [
            sys.executable,
            str(gen),
            "-o",
            str(b / "gateway.pcap"),
            "--size-mb",
            str(large_mb),
            "--seed",
            str(i + 1),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"bench_batch: gen_pcap.py failed: {done.stderr.strip()[-500:]}")
        (b / "gateway.pcap.truth.json").unlink(missing_ok=True)
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def run(archive: Path, work: Path, workers: int) -> float:
    from resetlens.batch.run import run_batch

    db, out = work / f"w{workers}.duckdb", work / f"out-w{workers}"
    for p in (db, Path(f"{db}.wal")):
        p.unlink(missing_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    summary = run_batch(archive, db, out=out, workers=workers)
    elapsed = time.perf_counter() - t0
    print(
        f"workers={workers}: {elapsed:8.2f} s  {summary.bundles} bundles ({summary.ok} ok, {summary.failed} failed), "
        f"{summary.resets} resets"
    )
    for name, reason in summary.failures[:5]:
        print(f"    failed {name}: {reason}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=200, help="small bundles (corpus copies)")
    ap.add_argument("--large", type=int, default=4, help="large generated captures, one bundle each")
    ap.add_argument("--large-mb", type=float, default=100.0, help="size of each large capture (MiB)")
    ap.add_argument("--dir", type=Path, help="work folder (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="bench-batch-"))
    work.mkdir(parents=True, exist_ok=True)
    archive = work / "archive"
    try:
        if not archive.exists():
            t0 = time.perf_counter()
            size = build_archive(archive, args.small, args.large, args.large_mb)
            print(
                f"archive: {args.small} small + {args.large} large bundles, {size / 1e6:.1f} MB, built in {time.perf_counter() - t0:.1f} s"
            )
        size = sum(f.stat().st_size for f in archive.rglob("*") if f.is_file())
        # other processes on the machine take cores from the 2-worker run: say how busy it was
        print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
        t1 = run(archive, work, 1)
        t2 = run(archive, work, 2)
        n = args.small + args.large
        print(f"1 worker : {n / t1:7.1f} bundles/s {size / t1 / 1e6:7.1f} MB/s")
        print(f"2 workers: {n / t2:7.1f} bundles/s {size / t2 / 1e6:7.1f} MB/s")
        print(f"speed-up 1 -> 2 workers: {t1 / t2:.2f}x (load average after: {os.getloadavg()[0]:.2f})")
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
