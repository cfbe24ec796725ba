#!/usr/bin/env python3
"""Wall time per pipeline stage of one `resetlens analyze` run, without a profiler's per-call overhead.

    stage_times.py FILE [--json OUT]      (default OUT: benchmarks/data/analyze-out.json)

Wraps the stage functions that resetlens.pipeline and resetlens.cli look up at call time with timers,
then runs the real CLI in this process. The reader's share is the time spent producing packet-table
chunks; that happens in the read-ahead thread (capture/prefetch.py), overlapped with the tracking, so it
is not part of the main thread's total.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

SPENT: dict[str, float] = defaultdict(float)
READER = "capture reader (read-ahead thread, overlapped)"


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[name] += time.perf_counter() - started

    return wrapper


class TimedReader:
    """open_capture() result whose chunks() generator books its own time (in the read-ahead thread)."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)

    def chunks(self, *args: Any, **kwargs: Any):
        it = iter(self._reader.chunks(*args, **kwargs))
        while True:
            started = time.perf_counter()
            try:
                chunk = next(it)
            except StopIteration:
                SPENT[READER] += time.perf_counter() - started
                return
            SPENT[READER] += time.perf_counter() - started
            yield chunk


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    started = time.perf_counter()
    from resetlens import cli, pipeline
    from resetlens.report import jsonreport, terminal
    from resetlens.vantage import clock, roles

    SPENT["imports"] = time.perf_counter() - started
    open_capture = pipeline.open_capture
    pipeline.open_capture = lambda *a, **k: TimedReader(open_capture(*a, **k))
    pipeline.read_vantage = timed("read + tcp tracking (pass 1)", pipeline.read_vantage)
    clock.align = timed("clock alignment", clock.align)
    roles.resolve_hosts = timed("host roles", roles.resolve_hosts)
    for name in ("build_resets", "gather_flows", "attach_logs", "judge"):
        setattr(pipeline, name, timed(name, getattr(pipeline, name)))
    cli._write_outputs = timed("write outputs (JSON)", cli._write_outputs)
    # A JSON file target is written by EarlyWrite: its thread writes up to the connections while the
    # resets are judged (overlapped), waits for the analysis, then writes the rest (what the run waits for).
    early = jsonreport.EarlyWrite
    early._run = timed("JSON writer thread (overlapped)", early._run)
    early._write_early = timed("JSON early part: up to connections", early._write_early)
    early._finished = timed("JSON writer idle, analysis not done", early._finished)
    early.wait = timed("wait for the JSON writer", early.wait)
    terminal.print_summary = timed("terminal summary", terminal.print_summary)
    default_out = (
        Path(__file__).resolve().parent / "data" / "analyze-out.json"
    )  # never /dev/null: see bench_analyze
    out = argv[argv.index("--json") + 1] if "--json" in argv else str(default_out)
    sys.argv = ["resetlens", "analyze", "--capture", f"big={argv[1]}", "--json", out]
    try:
        cli.app()  # not cli.main(): main ends the process without teardown once analyze is done
    except SystemExit as e:
        if e.code:
            raise
    total = time.perf_counter() - started
    print(f"{'stage':48s} {'s':>8s} {'share':>6s}", file=sys.stderr)
    for name, spent in sorted(SPENT.items(), key=lambda kv: -kv[1]):
        print(
            f"{name:48s} {spent:8.3f} {spent / total:6.1%}", file=sys.stderr
        )  # overlapped rows add up to more
    print(f"{'total (in process)':48s} {total:8.3f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
