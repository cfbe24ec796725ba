"""Batch runs with the real pipeline on corpus captures: database, reports, failures, reruns, CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from test_batch_support import (
    assert_consistent,
    corpus,
    corrupt_archive,
    crash_on_marker,
    explode_on_marker,
    good_archive,
    leftover_temp_files,
    odd_values_analyze,
    put,
    rows,
    run_cli,
    stall_on_marker,
)

import resetlens
from resetlens.batch.db import BatchDB, RunLock
from resetlens.batch.run import run_batch
from resetlens.errors import ResetlensError
from resetlens.model import Analysis


@pytest.fixture
def archive(tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    root = tmp_path / "archive"
    good = good_archive(root)
    bad = corrupt_archive(root)
    return root, good, bad


def test_batch_fills_database_reports_parquet_and_index(archive, tmp_path: Path) -> None:
    root, good, bad = archive
    db, out, pqdir = tmp_path / "a.duckdb", tmp_path / "reports", tmp_path / "pq"
    summary = run_batch(root, db, out=out, workers=2, parquet=pqdir)
    assert summary.ok == len(good), summary.failures
    assert (summary.bundles, summary.ok, summary.failed, summary.skipped) == (
        len(good) + len(bad),
        len(good),
        len(bad),
        0,
    )
    statuses = assert_consistent(db)
    assert statuses == {**dict.fromkeys(good, "ok"), **dict.fromkeys(bad, "failed")}
    # the flattened resets agree with the JSON contract, field by field, for one bundle with resets
    name, json_path = rows(
        db, "SELECT bundle, json_report FROM bundles WHERE resets > 0 ORDER BY bundle LIMIT 1"
    )[0]
    analysis = Analysis.from_dict(json.loads(Path(json_path).read_text(encoding="utf-8")))
    r = analysis.resets[0]
    got = rows(
        db,
        "SELECT src, sport, dst, dport, sender_role, sender_kind, cause, confidence, seen_at, vantages "
        "FROM resets WHERE bundle = ? AND id = ?",
        [name, r.id],
    )[0]
    seen = json.loads(got[8])
    assert got[:8] == (
        r.src,
        r.sport,
        r.dst,
        r.dport,
        r.sender.role,
        r.sender.kind,
        r.cause,
        pytest.approx(r.confidence),
    )
    assert [s["frame"] for s in seen] == [s.frame for s in r.seen_at]
    assert got[9] == len({s.vantage for s in r.seen_at})
    # loose captures: the two stamped root files are one bundle with two vantages, host from the name
    caps = rows(db, "SELECT vantage, host FROM captures WHERE bundle = '.' ORDER BY vantage")
    assert sorted(caps) == [("eth0", "web01"), ("front", "lb01")]
    # -C rotation: one vantage read from two files
    assert rows(db, "SELECT count(*) FROM captures WHERE bundle = 'rotated'") == [(1,)]
    # the manifest bundle kept its title
    assert rows(db, "SELECT title, kind FROM bundles WHERE bundle = 'site/inc-b'") == [
        ("inc-b edge", "manifest")
    ]
    # Parquet export mirrors the tables
    for table in ("bundles", "resets", "connections", "captures"):
        n = rows(db, f"SELECT count(*) FROM {table}")[0][0]
        assert pq.read_table(pqdir / f"{table}.parquet").num_rows == n
    assert not leftover_temp_files(out)
    # the index links every ok bundle's reports, fetches nothing, and runs no script
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "Content-Security-Policy" in index and "default-src 'none'" in index
    assert "<script" not in index.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", index)
    links = re.findall(r'href="([^"]+)"', index)
    for name in good:
        html_report = rows(db, "SELECT html_report FROM bundles WHERE bundle = ?", [name])[0][0]
        rel = os.path.relpath(html_report, out)
        assert rel in links, name
        assert (out / rel).is_file()
    for name in bad:
        assert name in index


def test_corrupt_bundles_fail_with_a_reason_and_the_others_succeed(archive, tmp_path: Path) -> None:
    root, good, bad = archive
    db = tmp_path / "c.duckdb"
    summary = run_batch(root, db, workers=2)
    assert summary.ok == len(good), summary.failures
    assert_consistent(db, reports=False)
    failed = dict(rows(db, "SELECT bundle, error FROM bundles WHERE status = 'failed'"))
    assert set(failed) == set(bad)
    for name, filename in bad.items():
        reason = failed[name]
        assert filename in reason, reason  # the reason names the file
        assert "\n" not in reason and "Traceback" not in reason
        assert "internal error" not in reason  # bad input is a ResetlensError, not a crash
    assert rows(db, "SELECT count(*) FROM resets WHERE bundle IN ('garbage', 'truncated')") == [(0,)]


def test_a_crashing_analysis_is_recorded_and_the_batch_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    good = good_archive(root)
    put(root / "buggy" / "x.pcap", corpus("zeek_tcp_single-rst.pcap"))
    (root / "buggy" / "EXPLODE").write_text("")
    db = tmp_path / "x.duckdb"
    summary = run_batch(root, db, workers=2, analyze=explode_on_marker)
    assert (summary.ok, summary.failed) == (len(good), 1), summary.failures
    ((status, error),) = rows(db, "SELECT status, error FROM bundles WHERE bundle = 'buggy'")
    assert status == "failed"
    assert error.startswith("internal error RuntimeError: simulated analysis bug")


def test_a_dying_worker_fails_only_its_own_bundle(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    good = good_archive(root)
    put(root / "crashy" / "x.pcap", corpus("zeek_tcp_single-rst.pcap"))
    (root / "crashy" / "CRASH").write_text("")
    db = tmp_path / "w.duckdb"
    summary = run_batch(root, db, workers=2, analyze=crash_on_marker)
    # the bundles in flight with it are retried alone; only the culprit is recorded failed
    assert (summary.ok, summary.failed) == (len(good), 1), summary.failures
    assert rows(db, "SELECT bundle, error FROM bundles WHERE status = 'failed'") == [
        ("crashy", "worker process died (crash or out of memory)")
    ]
    assert_consistent(db, reports=False)


def test_a_hanging_bundle_times_out_and_the_batch_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    good = good_archive(root)
    put(root / "stuck" / "x.pcap", corpus("zeek_tcp_single-rst.pcap"))
    (root / "stuck" / "STALL").write_text("")
    db = tmp_path / "t.duckdb"
    # warm the pipeline's on-disk compile cache here, so no healthy bundle comes near the timeout
    from resetlens import pipeline
    from resetlens.bundle import load_bundle

    pipeline.analyze(load_bundle(root / "inc-a"))
    summary = run_batch(root, db, workers=2, analyze=stall_on_marker, timeout=20)
    assert (summary.ok, summary.failed) == (len(good), 1), summary.failures
    assert rows(db, "SELECT bundle, error FROM bundles WHERE status = 'failed'") == [
        ("stuck", "timed out after 20 s")
    ]


def test_rerun_skips_unchanged_and_redoes_changed_failed_or_missing(archive, tmp_path: Path) -> None:
    root, good, bad = archive
    db, out = tmp_path / "r.duckdb", tmp_path / "out"
    first = run_batch(root, db, out=out, workers=2)
    assert first.ok == len(good), first.failures
    when = dict(rows(db, "SELECT bundle, analyzed_at FROM bundles"))

    second = run_batch(root, db, out=out, workers=2)
    assert (second.ok, second.skipped, second.failed) == (0, len(good), len(bad))  # failed ones are retried
    after = dict(rows(db, "SELECT bundle, analyzed_at FROM bundles"))
    assert all(after[b] == when[b] for b in good)
    assert all(after[b] > when[b] for b in bad)

    # touching (mtime only) changes no content: still skipped
    os.utime(root / "inc-a" / "client.pcap", (1_000_000_000, 1_000_000_000))
    assert run_batch(root, db, out=out, workers=1).skipped == len(good)

    # new content in one bundle: only that one is redone, and its rows follow the new analysis
    before_hash = rows(db, "SELECT content_hash FROM bundles WHERE bundle = 'inc-a'")[0][0]
    put(root / "inc-a" / "server.pcap", corpus("zeek_tcp_syn-then-rst.pcap"))
    third = run_batch(root, db, out=out, workers=2)
    assert (third.ok, third.skipped) == (1, len(good) - 1)
    changed = dict(rows(db, "SELECT bundle, analyzed_at FROM bundles"))
    assert [b for b in good if changed[b] != after[b]] == ["inc-a"]
    assert rows(db, "SELECT content_hash FROM bundles WHERE bundle = 'inc-a'")[0][0] != before_hash
    assert_consistent(db)

    # a report deleted under --out: the bundle is redone to restore it
    html = Path(rows(db, "SELECT html_report FROM bundles WHERE bundle = 'rotated'")[0][0])
    html.unlink()
    fourth = run_batch(root, db, out=out, workers=1)
    assert (fourth.ok, fourth.skipped) == (1, len(good) - 1)
    assert html.is_file()

    # a bundle analysed by another resetlens version is redone (an upgrade may judge it differently)
    con = duckdb.connect(str(db))
    try:
        con.execute("UPDATE bundles SET resetlens_version = '0.0.0-older' WHERE bundle = 'inc-a'")
    finally:
        con.close()
    upgraded = run_batch(root, db, out=out, workers=1)
    assert (upgraded.ok, upgraded.skipped) == (1, len(good) - 1)
    assert (
        rows(db, "SELECT resetlens_version FROM bundles WHERE bundle = 'inc-a'")[0][0]
        == resetlens.__version__
    )

    # --force redoes everything, unchanged or not
    forced = run_batch(root, db, out=out, workers=2, force=True)
    assert (forced.ok, forced.skipped, forced.failed) == (len(good), 0, len(bad))
    assert_consistent(db)

    # a bundle removed from the archive keeps its rows, and the summary says so
    shutil.rmtree(root / "rotated")
    after_rm = run_batch(root, db, out=out, workers=1)
    assert after_rm.gone == ["rotated"]
    assert rows(db, "SELECT status FROM bundles WHERE bundle = 'rotated'") == [("ok",)]
    put(root / "rotated" / "dump.pcap", corpus("zeek_tcp_syn-then-rst.pcap"))
    put(root / "rotated" / "dump.pcap1", corpus("zeek_tcp_syn-then-ack-then-rst.pcap"))

    # another --out: the reports are not there yet, so every ok bundle is redone into it
    moved = run_batch(root, db, out=tmp_path / "out2", workers=2)
    assert (moved.ok, moved.skipped) == (len(good), 0)
    assert len(list((tmp_path / "out2").glob("*/report.html"))) == len(good)


def test_index_escapes_hostile_bundle_names(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    evil = '<img src=x onerror=alert(1)>&"x'
    put(root / evil / "c.pcap", corpus("zeek_tcp_single-rst.pcap"))
    out = tmp_path / "out"
    summary = run_batch(root, tmp_path / "h.duckdb", out=out, workers=1)
    assert summary.ok == 1, summary.failures
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "<img" not in index
    assert "&lt;img src=x onerror=alert(1)&gt;&amp;&#34;x" in index
    # the report folder name is made safe, and the link to it works
    (link,) = [h for h in re.findall(r'href="([^"]+)"', index) if h.endswith(".html")]
    assert (out / link).is_file()


def test_bad_usage_raises_one_line_errors(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    with pytest.raises(ResetlensError, match="no such archive folder"):
        run_batch(tmp_path / "missing", tmp_path / "a.duckdb")
    with pytest.raises(ResetlensError, match="does not exist"):
        run_batch(root, tmp_path / "nofolder" / "a.duckdb")
    with pytest.raises(ResetlensError, match="no bundles found"):
        run_batch(root, tmp_path / "empty.duckdb")  # an archive without captures is no usable input
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"not a database" * 100)
    with pytest.raises(ResetlensError, match="cannot open database"):
        BatchDB(garbage)


def test_cli_exit_status_and_summary(archive, tmp_path: Path) -> None:
    root, good, bad = archive
    db = tmp_path / "cli.duckdb"
    ok = run_cli(root, "--db", db, "--out", tmp_path / "out", "--workers", "2")
    assert ok.returncode == 0, ok.stderr  # some bundles failed: recorded, not fatal
    assert "Traceback" not in ok.stderr
    assert re.search(rf"analysed ok\s+{len(good)}\b", ok.stderr)
    assert re.search(rf"failed\s+{len(bad)}\b", ok.stderr)
    # the progress line: done/failed/skipped counts and throughput
    assert re.search(rf"{len(good)} ok {len(bad)} failed 0 skipped .*/s .*MB/s", ok.stderr)
    for name in bad:  # each failure is named with its reason as it happens
        assert re.search(rf"failed: {name}: .+", ok.stderr)
    assert (tmp_path / "out" / "index.html").is_file()
    assert duckdb.connect(str(db), read_only=True).execute("SELECT count(*) FROM bundles").fetchone()[
        0
    ] == len(good) + len(bad)

    missing = run_cli(tmp_path / "nope", "--db", db)
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "nope" in missing.stderr

    ro_dir = tmp_path / "readonly"
    ro_dir.mkdir()
    unwritable = run_cli(root, "--db", ro_dir)  # a folder is not a database file
    assert unwritable.returncode == 2
    assert "Traceback" not in unwritable.stderr and unwritable.stderr.strip().count("\n") == 0

    usage = run_cli(root)  # no --db
    assert usage.returncode == 2
    # the batch package's own entry point behaves the same
    alone = run_cli(tmp_path / "nope", "--db", db, standalone=True)
    assert alone.returncode == 2 and "no such archive folder" in alone.stderr
    # the second run through the CLI skips everything that was analysed
    again = run_cli(root, "--db", db, "--out", tmp_path / "out", "--workers", "2")
    assert again.returncode == 0
    assert re.search(rf"skipped \(unchanged\)\s+{len(good)}\b", again.stderr)


def test_unchanged_archive_copy_elsewhere_keeps_names(archive, tmp_path: Path) -> None:
    """Bundle names are relative to the archive: a moved archive is recognised as analysed."""
    root, good, _ = archive
    db = tmp_path / "m.duckdb"
    run_batch(root, db, workers=2)
    moved = tmp_path / "moved"
    shutil.move(root, moved)
    summary = run_batch(moved, db, workers=2)
    assert summary.skipped == len(good)


def test_a_file_vanishing_after_discovery_fails_that_bundle_with_its_name(tmp_path: Path) -> None:
    from resetlens.batch.discover import discover
    from resetlens.batch.run import analyze_task

    gone = put(tmp_path / "a" / "x.pcap", corpus("zeek_tcp_single-rst.pcap"))
    (spec,) = discover(tmp_path)
    gone.unlink()
    result = analyze_task(spec)
    assert result.status == "failed"
    assert result.error == f"{gone}: cannot read: No such file or directory"


def test_a_second_batch_on_the_same_database_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    put(root / "a" / "x.pcap", corpus("zeek_tcp_single-rst.pcap"))
    db = tmp_path / "l.duckdb"
    with RunLock(db), pytest.raises(ResetlensError, match="another batch is running"):
        run_batch(root, db, workers=1)
    assert run_batch(root, db, workers=1).ok == 1  # the lock went with its holder


def test_undecodable_folder_names_never_stop_the_batch(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    put(root / "good" / "x.pcap", corpus("zeek_tcp_single-rst.pcap"))
    bad_dir = os.path.join(os.fsencode(root), b"bad\xffname")
    os.makedirs(bad_dir)
    shutil.copyfile(corpus("zeek_tcp_syn-then-rst.pcap"), os.path.join(bad_dir, b"c\xfe.pcap"))
    db, out = tmp_path / "u.duckdb", tmp_path / "out"
    summary = run_batch(root, db, out=out, workers=2)
    assert summary.bundles == 2 and summary.ok >= 1
    got = dict(rows(db, "SELECT bundle, status FROM bundles"))
    assert got["good"] == "ok"
    assert got["bad\\xffname"] in ("ok", "failed")  # stored under a printable name, never lost
    error = rows(db, "SELECT error FROM bundles WHERE bundle = 'bad\\xffname'")[0][0]
    assert (got["bad\\xffname"] == "ok") == (error is None)
    assert "bad\\xffname" in (out / "index.html").read_text(encoding="utf-8")


def test_values_that_fit_no_column_are_stored_as_null_or_text(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    put(root / "a" / "x.pcap", corpus("zeek_tcp_rst-inject-rae.pcap"))
    db = tmp_path / "o.duckdb"
    summary = run_batch(root, db, workers=1, analyze=odd_values_analyze)
    assert summary.ok == 1, summary.failures
    got = rows(db, "SELECT id, sport FROM resets WHERE bundle = 'a'")
    assert got and all(sport is None for _, sport in got)
    assert all(json.loads(i)[1] == "odd" for i, _ in got)
