"""The batch over the committed lab bundles (fixtures/lab): same verdicts as analysing each one alone."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import LAB_FIXTURES
from test_batch_support import assert_consistent, rows

from resetlens.batch.run import run_batch
from resetlens.bundle import load_bundle


def lab_bundles() -> list[Path]:
    if not LAB_FIXTURES.is_dir():
        return []
    return sorted(p.parent for p in LAB_FIXTURES.glob("*/resetlens.toml"))


@pytest.mark.slow
def test_batch_over_lab_fixtures_matches_single_analysis(tmp_path: Path) -> None:
    bundles = lab_bundles()
    if not bundles:
        pytest.skip("no lab bundles under fixtures/lab")
    db, out = tmp_path / "lab.duckdb", tmp_path / "out"
    summary = run_batch(LAB_FIXTURES, db, out=out, workers=2)
    assert summary.failed == 0, summary.failures
    assert summary.ok == len(bundles)
    statuses = assert_consistent(db)
    assert statuses == {b.name: "ok" for b in bundles}
    # nothing was written into the archive itself
    assert not any(p.name.endswith((".tmp", ".duckdb")) for p in LAB_FIXTURES.rglob("*"))

    # one bundle analysed alone gives the same resets and verdicts as its batch rows
    from resetlens import pipeline

    name = "mixed" if (LAB_FIXTURES / "mixed").is_dir() else bundles[0].name
    alone = pipeline.analyze(load_bundle(LAB_FIXTURES / name))
    got = rows(
        db,
        "SELECT id, src, sport, dst, dport, sender_role, sender_kind, cause FROM resets WHERE bundle = ? ORDER BY id",
        [name],
    )
    want = sorted(
        (r.id, r.src, r.sport, r.dst, r.dport, r.sender.role, r.sender.kind, r.cause) for r in alone.resets
    )
    assert got == want
    # the index counts what the database holds, per cause
    index = (out / "index.html").read_text(encoding="utf-8")
    for cause, n in rows(db, "SELECT cause, count(*) FROM resets GROUP BY cause"):
        assert f"<title>{cause}: {n}</title>" in index
    # the timeline's bars add up to every reset with a time
    timeline = index.split('aria-label="resets over time"', 1)[1].split("</svg>", 1)[0]
    bars = [int(n) for n in re.findall(r": (\d+)</title>", timeline)]
    assert sum(bars) == rows(db, "SELECT count(*) FROM resets WHERE ts IS NOT NULL")[0][0] > 0
    # the JSON report of each bundle is the contract's (format 1)
    for (path,) in rows(db, "SELECT json_report FROM bundles"):
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        assert data["format"] == 1 and {"captures", "connections", "resets", "summary"} <= set(data)
