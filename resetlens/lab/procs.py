"""Processes the lab starts inside its namespaces, tracked by PID so teardown never guesses by name."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from resetlens.errors import ResetlensError

# Seconds a process gets to exit after SIGTERM/SIGINT before SIGKILL.
STOP_GRACE = 3.0


class LabError(ResetlensError):
    """The lab could not build its topology, run a scenario, or verify its own truth."""


def run(
    cmd: list[str],
    *,
    ns: str | None = None,
    check: bool = True,
    timeout: float = 20.0,
    input: str | None = None,
) -> str:
    """Run a short command (optionally inside netns `ns`) and return its stdout."""
    full = (["ip", "netns", "exec", ns, *cmd]) if ns else cmd
    try:
        done = subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"command timed out after {timeout}s: {' '.join(full)}") from exc
    if check and done.returncode != 0:
        raise LabError(f"command failed ({done.returncode}): {' '.join(full)}: {done.stderr.strip()[:300]}")
    return done.stdout


class ProcessTable:
    """Every long-running process the lab spawned, stopped by PID (its own process group)."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen] = {}
        self.spawned: list[int] = []  # every PID ever started, for checks after teardown

    def spawn(
        self,
        name: str,
        cmd: list[str],
        *,
        ns: str | None = None,
        stdout: Path | None = None,
        stderr: Path | None = None,
        stdin: int | None = subprocess.DEVNULL,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen:
        if name in self.procs and self.procs[name].poll() is None:
            raise LabError(f"process {name} already running (pid {self.procs[name].pid})")
        full = (["ip", "netns", "exec", ns, *cmd]) if ns else cmd
        out = open(stdout, "ab") if stdout else subprocess.DEVNULL
        err = open(stderr, "ab") if stderr else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(
                full, stdout=out, stderr=err, stdin=stdin, start_new_session=True, env=env, text=False
            )
        finally:
            for f in (out, err):
                if f is not subprocess.DEVNULL:
                    f.close()  # type: ignore[union-attr]
        self.procs[name] = proc
        self.spawned.append(proc.pid)
        return proc

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def alive(self, name: str) -> bool:
        return name in self.procs and self.procs[name].poll() is None

    def stop(self, name: str, sig: int = signal.SIGTERM) -> int | None:
        """Signal one process group by PID, wait, escalate to SIGKILL; returns the exit status."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        return stop_proc(proc, sig)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int | None:
        """Send `sig` to the process (not the group) and reap it: a crash, as the scenario wants."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            return stop_proc(proc, signal.SIGKILL)

    def stop_all(self) -> None:
        for name in list(self.procs)[::-1]:
            self.stop(name)


def stop_proc(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int | None:
    if proc.poll() is not None:
        return proc.returncode  # already reaped: its PID may belong to someone else by now
    _kill_group(proc.pid, sig)
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _kill_group(proc.pid, signal.SIGKILL)  # leftovers such as nginx workers
            return proc.returncode
        time.sleep(0.02)
    _kill_group(proc.pid, signal.SIGKILL)
    try:
        return proc.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        return None


def _kill_group(pgid: int, sig: int) -> None:
    # start_new_session made each child the leader of a group whose id is its PID
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
