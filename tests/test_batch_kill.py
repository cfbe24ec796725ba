"""A batch killed with SIGKILL midway leaves a consistent database; a rerun finishes only the rest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from conftest import ROOT
from test_batch_support import WAIT_S, assert_consistent, batch_cmd, connect_ro, leftover_temp_files, put

from resetlens.batch.run import run_batch

# Bundles in the archive: enough that the batch is still busy when the first one is committed.
BUNDLES = 32
# Size of the generated capture in each bundle (MiB): a fraction of a second of analysis each.
CAPTURE_MB = 4


@pytest.fixture(scope="module")
def big_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gen = ROOT / "benchmarks" / "gen_pcap.py"
    if not gen.is_file():
        pytest.skip("benchmarks/gen_pcap.py not present")
    path = tmp_path_factory.mktemp("gen") / "mid.pcap"
    subprocess.run(
        [sys.executable, str(gen), "-o", str(path), "--size-mb", str(CAPTURE_MB), "--seed", "7"],
        check=True,
        capture_output=True,
        timeout=WAIT_S,
    )
    return path


@pytest.mark.slow
def test_sigkill_midway_then_resume(big_capture: Path, tmp_path: Path) -> None:
    root, db, out = tmp_path / "archive", tmp_path / "k.duckdb", tmp_path / "out"
    for i in range(BUNDLES):
        put(root / f"bundle-{i:02d}" / "gateway.pcap", big_capture)
    # its own session, so the pool workers it starts can be cleaned up by process group id
    proc = subprocess.Popen(
        batch_cmd(root, "--db", db, "--out", out, "--workers", "1", "--quiet"),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + WAIT_S
        done_at_kill = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    con = duckdb.connect(str(db), read_only=True)
                except duckdb.Error:  # the batch is writing right now (file lock): try again
                    con = None
                if con is not None:
                    try:
                        done_at_kill = con.execute("SELECT count(*) FROM bundles").fetchone()[0]
                    except duckdb.Error:  # tables not created yet
                        done_at_kill = 0
                    finally:
                        con.close()
                    if done_at_kill:
                        break
            time.sleep(0.05)
        assert proc.poll() is None, f"batch ended before it could be killed: {proc.stderr.read()!r}"
        assert done_at_kill >= 1, "no bundle committed within the wait"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=WAIT_S)
        assert proc.returncode == -signal.SIGKILL
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the orphaned pool workers and forkserver
        except ProcessLookupError:
            pass
        proc.wait(timeout=WAIT_S)
        if proc.stderr:
            proc.stderr.close()

    statuses = assert_consistent(db)  # every committed bundle whole, reports complete
    finished = {b for b, s in statuses.items() if s == "ok"}
    print(f"finished when killed: {len(finished)} of {BUNDLES}")
    assert 1 <= len(finished) < BUNDLES
    assert set(statuses.values()) == {"ok"}

    summary = run_batch(root, db, out=out, workers=2)
    assert summary.skipped == len(finished)  # the finished ones are not redone
    assert summary.ok == BUNDLES - len(finished), summary.failures
    assert summary.failed == 0
    statuses = assert_consistent(db)
    assert statuses == {f"bundle-{i:02d}": "ok" for i in range(BUNDLES)}
    # the interrupted bundle's temp files (if any) do not stay around as reports
    con = connect_ro(db)
    try:
        reports = {Path(p) for (p,) in con.execute("SELECT html_report FROM bundles").fetchall()}
    finally:
        con.close()
    assert all(p.is_file() for p in reports)
    assert all(t.parent.name.startswith("bundle-") for t in leftover_temp_files(out))
