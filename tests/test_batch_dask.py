"""The batch on a real dask.distributed cluster: one scheduler and two workers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from test_batch_support import WAIT_S, assert_consistent, corpus, corrupt_archive, good_archive, put, rows

from resetlens.batch.run import run_batch
from resetlens.errors import ResetlensError

DASK = Path(sys.executable).with_name("dask")


def _start(args: list[str], log: Path) -> subprocess.Popen:
    with log.open("wb") as f:
        return subprocess.Popen(args, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture
def cluster(tmp_path: Path):
    """(scheduler address, worker pids); every process killed by its id afterwards."""
    if not DASK.exists():
        pytest.skip("dask command-line tool not installed in the venv")
    sched_file = tmp_path / "scheduler.json"
    procs: list[subprocess.Popen] = []
    try:
        procs.append(
            _start(
                [
                    str(DASK),
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--dashboard-address",
                    "127.0.0.1:0",
                    "--scheduler-file",
                    str(sched_file),
                ],
                tmp_path / "scheduler.log",
            )
        )
        deadline = time.monotonic() + WAIT_S
        address = None
        while time.monotonic() < deadline and address is None:
            if procs[0].poll() is not None:
                pytest.fail(f"dask scheduler exited: {(tmp_path / 'scheduler.log').read_text()[-2000:]}")
            try:
                address = json.loads(sched_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        assert address, "scheduler did not write its address in time"
        for i in range(2):
            procs.append(
                _start(
                    [
                        str(DASK),
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--host",
                        "127.0.0.1",
                        "--no-dashboard",
                        "--name",
                        f"w{i}",
                        "--local-directory",
                        str(tmp_path / f"w{i}"),
                    ],
                    tmp_path / f"worker{i}.log",
                )
            )
        from distributed import Client

        with Client(address, timeout=WAIT_S, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=WAIT_S)
        yield address, {p.pid for p in procs[1:]}
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=WAIT_S)


@pytest.mark.slow
def test_batch_on_dask_cluster(cluster, tmp_path: Path) -> None:
    address, worker_pids = cluster
    root = tmp_path / "archive"
    good = good_archive(root)
    bad = corrupt_archive(root)
    db, out = tmp_path / "d.duckdb", tmp_path / "out"
    summary = run_batch(root, db, out=out, dask=address)
    assert (summary.ok, summary.failed) == (len(good), len(bad)), summary.failures
    statuses = assert_consistent(db)
    assert statuses == {**dict.fromkeys(good, "ok"), **dict.fromkeys(bad, "failed")}
    # every bundle ran in one of the two worker processes, not in this one
    pids = {int(w.rsplit(":", 1)[1]) for (w,) in rows(db, "SELECT worker FROM bundles")}
    assert pids <= worker_pids
    assert os.getpid() not in pids
    assert (out / "index.html").is_file()
    # rerun through the cluster: everything unchanged is skipped
    again = run_batch(root, db, out=out, dask=address)
    assert (again.skipped, again.ok, again.failed) == (len(good), 0, len(bad))


def test_unreachable_scheduler_is_bad_usage(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening: bound, never listened on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        root = tmp_path / "a"
        put(root / "b" / "c.pcap", corpus("zeek_tcp_single-rst.pcap"))
        with pytest.raises(ResetlensError, match="cannot reach the Dask scheduler"):
            run_batch(root, tmp_path / "u.duckdb", dask=f"tcp://127.0.0.1:{port}")
