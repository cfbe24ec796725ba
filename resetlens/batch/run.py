"""Run the analysis over every bundle of an archive: local process pool or a Dask cluster.

Workers run `analyze_task` (a plain function of a BundleSpec) and write the bundle's reports; the
parent is the only database writer and commits finished bundles in small groups (a bundle is in the
database whole or not at all). Failures are recorded, never fatal. Rerunning skips bundles whose
content hash is unchanged, whose last status is ok, whose reports are in place and which this
version of resetlens analysed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from resetlens import __version__
from resetlens.batch.db import BatchDB, KnownBundle, RunLock
from resetlens.batch.discover import BundleSpec, discover
from resetlens.errors import ResetlensError

# Report file names inside a bundle's report folder.
JSON_NAME = "analysis.json"
HTML_NAME = "report.html"
SNIPPETS_NAME = "report-snippets"
# The parent releases the database after this long idle, so other processes can read it.
IDLE_RELEASE_S = 0.5
# Finished bundles are committed as soon as their results arrive (those arriving together share one
# transaction): a run killed at any moment loses no finished bundle (issue: "loses no finished bundle").
# Raising these trades that guarantee for fewer commits on archives of many tiny bundles.
FLUSH_BUNDLES = 1
FLUSH_S = 0.0
# Results in flight per worker: enough to keep workers busy, few enough to bound memory.
INFLIGHT_PER_WORKER = 2
# How long to keep trying to reach a Dask scheduler before calling the address bad.
DASK_CONNECT_S = 10.0
# Longest error text stored (one line).
ERROR_MAX = 400

AnalyzeFn = Callable[[Any], Any]  # resetlens.bundle.Bundle -> resetlens.model.Analysis


@dataclass
class TaskResult:
    """What a worker sends back for one bundle."""

    bundle: str
    status: str  # "ok", "failed", or "unchanged" (hash and reports as before: nothing redone)
    error: str | None = None
    analysis: dict[str, Any] | None = None
    reports: dict[str, str] = field(default_factory=dict)  # "json"/"html" -> path
    content_hash: str | None = None
    duration_s: float = 0.0
    worker: str = ""


@dataclass
class BatchSummary:
    bundles: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    resets: int = 0
    bytes: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (bundle, reason)
    gone: list[str] = field(default_factory=list)  # bundles in the database no longer in the archive
    index: Path | None = None
    parquet: list[Path] = field(default_factory=list)


# -- the task (runs in a worker) --------------------------------------------------------------------


def default_analyze(bundle: Any) -> Any:
    """The real single-bundle analysis."""
    from resetlens import pipeline

    return pipeline.analyze(bundle)


def report_dir(out: Path, bundle_name: str) -> Path:
    """A bundle's report folder under --out: the name made filename-safe (plus a tag when altered)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", bundle_name.replace("/", "__")).strip("._") or "root"
    if safe != bundle_name:
        import hashlib

        safe += "-" + hashlib.sha1(bundle_name.encode("utf-8", "surrogateescape")).hexdigest()[:6]
    return out / safe


def analyze_task(
    spec: BundleSpec,
    out: str | None = None,
    known: KnownBundle | None = None,
    analyze: AnalyzeFn | None = None,
    timeout: float | None = None,
) -> TaskResult:
    """Analyse one bundle and write its reports. Never raises: a failure is a result.

    `timeout` (seconds) is enforced with a one-shot timer signal where the task runs on a process's
    main thread (the local pool); Dask worker threads cannot take signals, so it is not enforced there.
    """
    global _ARMED
    start = time.perf_counter()
    timer = timeout is not None and threading.current_thread() is threading.main_thread()
    previous: Any = None
    if timer:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        _ARMED = True
        signal.setitimer(signal.ITIMER_REAL, float(timeout or 0))
    try:
        result = _task(spec, out, known, analyze)
        _ARMED = False  # from here on a late alarm is ignored: the result stands
    except BundleTimeout:  # the one alarm fired during the analysis
        _ARMED = False
        result = TaskResult(spec.name, "failed", f"timed out after {timeout:g} s", worker=_worker())
    finally:
        if timer:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    result.duration_s = time.perf_counter() - start
    return result


# True while a task's timer may interrupt it (the alarm handler raises only then).
_ARMED = False


class BundleTimeout(BaseException):
    """Raised by the timer inside a task; a BaseException so no `except Exception` in the analysis eats it."""


def _on_alarm(signum: int, frame: Any) -> None:
    if _ARMED:
        raise BundleTimeout()


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _task(
    spec: BundleSpec, out: str | None, known: KnownBundle | None, analyze: AnalyzeFn | None
) -> TaskResult:
    """The work of analyze_task; every exception but the timer's becomes a failed result."""
    result = TaskResult(spec.name, "failed", worker=_worker())
    try:
        result.content_hash = spec.hash()
        if (
            known is not None
            and known.status == "ok"
            and known.content_hash == result.content_hash
            and known.version == __version__  # an upgraded resetlens may judge the same input differently
        ):
            # unchanged input; with --out, its reports must also be there (in this --out, not another)
            wanted = str(report_dir(Path(out), spec.name) / JSON_NAME) if out is not None else None
            if all(Path(p).is_file() for p in known.reports) and (wanted is None or wanted in known.reports):
                result.status = "unchanged"
                return result
        bundle = _pipeline_bundle(spec)
        analysis = (analyze or default_analyze)(bundle)
        if not getattr(analysis, "bundle", None):
            analysis.bundle = spec.name
        from resetlens.report.jsonreport import dumps

        text = dumps(analysis)
        reports = _write_reports(analysis, text, report_dir(Path(out), spec.name), bundle) if out else {}
        result.analysis, result.reports, result.status = json.loads(text), reports, "ok"
    except ResetlensError as e:
        result.error = _one_line(str(e))
    except OSError as e:  # a file vanished or became unreadable since discovery
        result.error = _one_line(f"{e.filename or spec.root}: cannot read: {e.strerror or e}")
    except MemoryError:
        result.error = "out of memory"
    except Exception as e:  # a bug in the analysis must not stop the batch: record where it happened
        where = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
        at = f" ({Path(where.filename).name}:{where.lineno})" if where else ""
        result.error = _one_line(f"internal error {type(e).__name__}: {e}{at}")
    return result


def _pipeline_bundle(spec: BundleSpec) -> Any:
    """The resetlens.bundle.Bundle the pipeline reads: the manifest's, or one built from the grouping."""
    from resetlens.bundle import Bundle, LogSpec, guess_log_kind, load_bundle

    if spec.kind == "manifest":
        return load_bundle(spec.root)
    bundle = Bundle(root=spec.root, title=spec.name)
    bundle.captures = [c for c in spec.captures]
    capture_paths = {p for c in spec.captures for p in c.paths}
    for f in spec.files:
        kind = guess_log_kind(f)
        if kind and f.resolve() not in capture_paths:
            bundle.logs.append(LogSpec(f.resolve(), kind))
    snapshots = spec.root / "snapshots"
    if snapshots.is_dir():
        bundle.snapshots = snapshots
    return bundle


def _write_reports(analysis: Any, json_text: str, folder: Path, bundle: Any) -> dict[str, str]:
    """JSON and HTML reports (+ pcap snippets of each reset's flow), each file written atomically."""
    from resetlens.report.jsonreport import atomic_write

    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".*.tmp"):  # left by a run killed mid-write
        stale.unlink(missing_ok=True)
    reports = {}
    # an undecodable file name (lone surrogate) becomes a \udcXX escape: still valid JSON
    atomic_write(folder / JSON_NAME, json_text.encode("utf-8", "backslashreplace"))
    reports["json"] = str(folder / JSON_NAME)
    try:
        from resetlens.report.html import write_html
    except ImportError:  # the HTML reporter is optional in a stripped-down install
        return reports
    snippets = _write_snippets(analysis, folder / SNIPPETS_NAME, bundle)
    write_html(analysis, folder / HTML_NAME, snippets_dir=snippets)  # atomic itself: temp file + rename
    reports["html"] = str(folder / HTML_NAME)
    return reports


def _write_snippets(analysis: Any, folder: Path, bundle: Any) -> Path | None:
    """Cut each reset's flow out of its captures, as `resetlens analyze --html` does; None when none."""
    # Rotated multi-file vantages number frames across files: snippets are cut from single files only.
    sources = {c.vantage: c.paths[0] for c in getattr(bundle, "captures", []) if len(c.paths) == 1}
    if not analysis.resets or not sources:
        return None
    try:
        from resetlens.report.snippets import write_snippets

        write_snippets(analysis, folder, sources)
    except (ImportError, ResetlensError, OSError):
        return None  # the report stands without snippets
    return folder if folder.is_dir() else None


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= ERROR_MAX else line[: ERROR_MAX - 1] + "…"


# -- executors ------------------------------------------------------------------------------------


class LocalExecutor:
    """A process pool on this machine; replaced when a worker dies (the bundles in flight are retried alone)."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool = self._new_pool(self.workers)

    @staticmethod
    def _new_pool(n: int) -> ProcessPoolExecutor:
        import multiprocessing

        # forkserver: workers are not forked from a parent with threads (progress display) running
        return ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("forkserver"))

    @property
    def slots(self) -> int:
        return self.workers * INFLIGHT_PER_WORKER

    def submit(self, fn: Callable[..., TaskResult], *args: Any) -> Future:
        return self._pool.submit(fn, *args)

    def wait(self, pending: set, timeout: float | None) -> set:
        done, _ = futures_wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
        return done

    def result(self, future: Future) -> TaskResult:
        return future.result()

    def restart(self, workers: int | None = None) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool(workers or self.workers)

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)


class DaskExecutor:
    """The same tasks on an existing dask.distributed cluster."""

    def __init__(self, address: str, connect_timeout: float = DASK_CONNECT_S) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise ResetlensError("--dask needs the 'distributed' package") from None
        try:
            self.client = Client(address, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            raise ResetlensError(
                f"cannot reach the Dask scheduler at {address}: {_one_line(str(e))}"
            ) from None
        threads = sum(self.client.nthreads().values())
        self.workers = max(1, threads)

    @property
    def slots(self) -> int:
        return self.workers * INFLIGHT_PER_WORKER

    def submit(self, fn: Callable[..., TaskResult], *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def wait(self, pending: set, timeout: float | None) -> set:
        from distributed import wait

        try:
            with self.client.as_current():  # not the process-wide default client: ours
                done, _ = wait(list(pending), timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return set()
        return set(done)

    def result(self, future: Any) -> TaskResult:
        return future.result()

    def restart(self, workers: int | None = None) -> None:  # the cluster manages its own workers
        pass

    def close(self, wait: bool = True) -> None:
        self.client.close()


# -- the batch (runs in the parent) ---------------------------------------------------------------


def run_batch(
    archive: Path,
    db_path: Path,
    out: Path | None = None,
    workers: int | None = None,
    dask: str | None = None,
    parquet: Path | None = None,
    analyze: AnalyzeFn | None = None,
    progress: Any = None,
    timeout: float | None = None,
    force: bool = False,
) -> BatchSummary:
    """Analyse every bundle under `archive` into `db_path` (and reports under `out`).

    `analyze` replaces the pipeline (a picklable module-level function of a resetlens.bundle.Bundle).
    `progress` is a BatchProgress-like object (None = silent); `timeout` bounds each bundle's analysis
    (seconds, local pool only); `force` redoes unchanged bundles too (e.g. after an upgrade).
    Raises ResetlensError for bad usage only.
    """
    archive = Path(archive)
    if workers is not None and workers < 1:
        raise ResetlensError(f"--workers must be at least 1, got {workers}")
    if timeout is not None and not timeout > 0:
        raise ResetlensError(f"--timeout must be a positive number of seconds, got {timeout}")
    if not archive.is_dir():
        raise ResetlensError("no such archive folder", path=str(archive))
    with RunLock(Path(db_path)):
        db = BatchDB(Path(db_path))
        try:
            return _run_locked(archive, db, out, workers, dask, parquet, analyze, progress, timeout, force)
        except duckdb.Error as e:  # the file itself failed us (disk full, I/O error): stop, say so
            raise ResetlensError(f"database write failed: {_one_line(str(e))}", path=str(db_path)) from None


def _run_locked(
    archive: Path,
    db: BatchDB,
    out: Path | None,
    workers: int | None,
    dask: str | None,
    parquet: Path | None,
    analyze: AnalyzeFn | None,
    progress: Any,
    timeout: float | None,
    force: bool,
) -> BatchSummary:
    if out is not None:
        out = Path(out).resolve()
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ResetlensError(f"cannot create the report folder: {e.strerror}", path=str(out)) from None
    specs = discover(archive, exclude=[out] if out is not None else [])
    if not specs:
        raise ResetlensError("no bundles found (no resetlens.toml and no capture files)", path=str(archive))
    known = db.known()
    summary = BatchSummary(bundles=len(specs))
    summary.gone = sorted(set(known) - {s.name for s in specs})  # rows kept: failures are never dropped
    # with force, the old rows are still replaced, but nothing counts as unchanged
    skip_info = {} if force else known
    executor: LocalExecutor | DaskExecutor
    executor = DaskExecutor(dask) if dask else LocalExecutor(workers or os.cpu_count() or 1)
    started = time.perf_counter()
    if progress is not None:
        progress.start(len(specs))
    try:
        _drive(executor, specs, known, skip_info, out, analyze, db, summary, progress, timeout)
    except BaseException:  # interrupted: do not wait for the bundles in flight
        executor.close(wait=False)
        raise
    else:
        executor.close()
    finally:
        db.release()
        if progress is not None:
            progress.stop()
    summary.seconds = time.perf_counter() - started
    if parquet is not None:
        summary.parquet = db.export_parquet(Path(parquet))
        db.release()
    if out is not None:
        from resetlens.batch.index import write_index

        summary.index = write_index(db, out / "index.html", out)
        db.release()
    return summary


def _drive(
    executor: LocalExecutor | DaskExecutor,
    specs: list[BundleSpec],
    known: dict[str, KnownBundle],
    skip_info: dict[str, KnownBundle],
    out: Path | None,
    analyze: AnalyzeFn | None,
    db: BatchDB,
    summary: BatchSummary,
    progress: Any,
    timeout: float | None = None,
) -> None:
    # largest first (popped from the end): a big bundle started last would leave the other workers idle
    queue = sorted(specs, key=lambda spec: (_size(spec.files), spec.name))
    suspects: list[BundleSpec] = []  # in flight when a worker died: retried one at a time
    in_flight: dict[Any, BundleSpec] = {}
    out_arg = str(out) if out is not None else None
    writer = _Writer(db, known, summary, progress)

    def submit(spec: BundleSpec) -> None:
        in_flight[
            executor.submit(analyze_task, spec, out_arg, skip_info.get(spec.name), analyze, timeout)
        ] = spec

    isolated = False
    try:
        while queue or in_flight or suspects:
            if not queue and not in_flight and suspects:
                # retry the bundles a dying worker took down, each alone, so the culprit fails by itself
                isolated = True
                executor.restart(1)
                queue = [suspects.pop()]
            while queue and len(in_flight) < (1 if isolated else executor.slots):
                submit(queue.pop())
            done = executor.wait(set(in_flight), IDLE_RELEASE_S)
            if not done:
                writer.flush()
                db.release()  # idle: let readers in while the workers compute
                done = executor.wait(set(in_flight), None)
            broken = False
            for fut in done:
                spec = in_flight.pop(fut)
                try:
                    result = executor.result(fut)
                except BrokenProcessPool:
                    if isolated:
                        result = TaskResult(
                            spec.name, "failed", "worker process died (crash or out of memory)"
                        )
                    else:
                        suspects.append(spec)
                        broken = True
                        continue
                except Exception as e:  # the cluster lost the task (KilledWorker, pickling, ...)
                    result = TaskResult(
                        spec.name, "failed", _one_line(f"task failed: {type(e).__name__}: {e}")
                    )
                writer.add(spec, result)
            if writer.due():
                writer.flush()
                db.release()  # readers get a turn after every commit
            if broken:
                suspects.extend(in_flight.values())
                in_flight.clear()
                executor.restart()
    except BaseException:
        try:  # keep what finished; the error already under way is the one to report
            writer.flush()
        except Exception:
            pass
        raise
    writer.flush()


class _Writer:
    """Finished bundles, committed in one transaction per wakeup (FLUSH_BUNDLES / FLUSH_S).

    No bundle is ever half in the database; with the defaults none finished is left uncommitted.
    """

    def __init__(
        self, db: BatchDB, known: dict[str, KnownBundle], summary: BatchSummary, progress: Any
    ) -> None:
        self.db, self.known, self.summary, self.progress = db, known, summary, progress
        self.pending: list[tuple[BundleSpec, TaskResult, dict[str, Any] | None]] = []
        self.since = 0.0

    def add(self, spec: BundleSpec, result: TaskResult) -> None:
        if not self.pending:
            self.since = time.monotonic()
        row = None if result.status == "unchanged" else _bundle_row(spec, result)
        self.pending.append((spec, result, row))

    def due(self) -> bool:
        return len(self.pending) >= FLUSH_BUNDLES or (
            bool(self.pending) and time.monotonic() - self.since >= FLUSH_S
        )

    def flush(self) -> None:
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        try:
            self._store(pending)
        except Exception:
            # one bundle's data the database refuses must not cost the others: store them one by one
            for one in pending:
                self._store_alone(one)
        for spec, result, row in pending:
            self.summary.bytes += _size(spec.files)
            if result.status == "unchanged":
                self.summary.skipped += 1
            elif result.status == "ok":
                self.summary.ok += 1
                self.summary.resets += (row or {}).get("resets") or 0
            else:
                self.summary.failed += 1
                self.summary.failures.append((spec.name, result.error or "failed"))
            if self.progress is not None:
                self.progress.advance(result, spec)

    def _store(self, pending: list[tuple[BundleSpec, TaskResult, dict[str, Any] | None]]) -> None:
        items = [(row, r.analysis if r.status == "ok" else None) for _, r, row in pending if row is not None]
        self.db.record_many(items, replace=set(self.known))
        for spec, result, _ in pending:
            known = self.known.get(spec.name)
            if result.status == "unchanged" and known and known.path != str(spec.root):
                self.db.update_path(spec.name, str(spec.root))  # the archive moved: same bundle, new place

    def _store_alone(self, one: tuple[BundleSpec, TaskResult, dict[str, Any] | None]) -> None:
        spec, result, row = one
        try:
            self._store([one])
            return
        except Exception as e:
            reason = _one_line(f"cannot store the analysis in the database: {e}")
        # keep the failure itself: a row without the analysis
        result.status, result.error, result.analysis, result.reports = "failed", reason, None, {}
        one_row = _bundle_row(spec, result)
        if row is not None:
            row.clear()
            row.update(one_row)
        self.db.record_many([(one_row, None)], replace={spec.name} | set(self.known))


def _bundle_row(spec: BundleSpec, result: TaskResult) -> dict[str, Any]:
    a = result.analysis or {}
    ok = result.status == "ok"
    captures = a.get("captures") or []
    first = [c.get("first_ts") for c in captures if isinstance(c.get("first_ts"), int | float)]
    last = [c.get("last_ts") for c in captures if isinstance(c.get("last_ts"), int | float)]
    verdict = (a.get("summary") or {}).get("verdict")
    return {
        "bundle": spec.name,
        "path": str(spec.root),
        "status": result.status,
        "error": result.error,
        "analyzed_at": datetime.now(UTC).replace(tzinfo=None),  # naive UTC: TIMESTAMP column
        "resets": len(a.get("resets") or []) if ok else None,
        "connections": len(a.get("connections") or []) if ok else None,
        "captures": len(captures) if ok else len(spec.captures) or None,
        "content_hash": result.content_hash,
        "duration_s": result.duration_s,
        "kind": spec.kind,
        "title": a.get("title") or None,
        "verdict": verdict if isinstance(verdict, str) else None,
        "first_ts": min(first) if first else None,
        "last_ts": max(last) if last else None,
        "json_report": result.reports.get("json"),
        "html_report": result.reports.get("html"),
        "worker": result.worker,
        "resetlens_version": a.get("resetlens_version"),
    }


def _size(files: Iterable[Path]) -> int:
    total = 0
    for f in files:
        try:
            total += f.stat().st_size
        except OSError:
            pass
    return total
