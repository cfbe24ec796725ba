"""Batch progress on the terminal (rich): bundles done/failed/skipped, throughput, ETA, and a summary."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text


class BatchProgress:
    """Receives start / advance(result, spec) / stop from run_batch."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.ok = self.failed = self.skipped = 0
        self.bytes = 0
        self._t0 = 0.0
        self._progress = Progress(
            TextColumn("[bold]batch[/]"),
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task: Any = None

    def start(self, total: int) -> None:
        self._t0 = time.perf_counter()
        self._progress.start()
        self._task = self._progress.add_task("batch", total=total, counts=self._counts(), rate="")

    def advance(self, result: Any, spec: Any) -> None:
        if result.status == "ok":
            self.ok += 1
        elif result.status == "unchanged":
            self.skipped += 1
        else:
            self.failed += 1
            self._progress.console.print(
                Text(f"failed: {spec.name}: {result.error}", style="red"), soft_wrap=True
            )
        self.bytes += sum(_size(f) for f in spec.files)
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        done = self.ok + self.failed + self.skipped
        rate = f"{done / elapsed:.1f}/s {self.bytes / elapsed / 1e6:.1f} MB/s"
        self._progress.update(self._task, advance=1, counts=self._counts(), rate=rate)

    def stop(self) -> None:
        self._progress.stop()

    def _counts(self) -> str:
        return f"[green]{self.ok} ok[/] [red]{self.failed} failed[/] [dim]{self.skipped} skipped[/]"


def print_summary(console: Console, summary: Any, db_path: Any) -> None:
    table = Table(title="resetlens batch", show_header=False, box=None)
    table.add_row("bundles", str(summary.bundles))
    table.add_row("analysed ok", str(summary.ok))
    table.add_row("failed", str(summary.failed))
    table.add_row("skipped (unchanged)", str(summary.skipped))
    table.add_row("resets found", str(summary.resets))
    rate = summary.bundles / summary.seconds if summary.seconds else 0.0
    table.add_row("time", f"{summary.seconds:.1f} s ({rate:.1f} bundles/s)")
    table.add_row("database", str(db_path))
    if summary.index:
        table.add_row("index", str(summary.index))
    for p in summary.parquet:
        table.add_row("parquet", str(p))
    console.print(table)
    for name, reason in summary.failures[:20]:
        console.print(Text(f"  failed {name}: {reason}", style="red"), soft_wrap=True)
    if summary.gone:
        console.print(
            f"  {len(summary.gone)} bundle(s) in the database are no longer in the archive (kept): "
            + ", ".join(summary.gone[:5])
            + (" ..." if len(summary.gone) > 5 else ""),
            markup=False,
            soft_wrap=True,
        )
    if len(summary.failures) > 20:
        console.print(
            f"  ... and {len(summary.failures) - 20} more (SELECT * FROM bundles WHERE status='failed')"
        )


def _size(path: Any) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
