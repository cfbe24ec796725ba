"""Scoring the blame engine against a lab bundle's ground truth (truth.json).

Pairs every RST of the truth with the reset event resetlens reported for it, by (vantage, frame) of any
of its sightings, copies from an `-i any` capture included. Used by tests/test_blame_lab.py on the
committed fixtures and by benchmarks/lab_accuracy.py on any lab run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from resetlens.bundle import load_bundle
from resetlens.model import Reset
from resetlens.pipeline import analyze


def pair_with_truth(bundle_dir: Path) -> list[tuple[dict[str, Any], Reset | None]]:
    """(truth reset, our reset event or None when resetlens did not report it) for one bundle."""
    truth = json.loads((bundle_dir / "truth.json").read_text())
    analysis = analyze(load_bundle(bundle_dir))
    ours: dict[tuple[str, int], Reset] = {}
    for r in analysis.resets:
        for s in r.seen_at:
            ours[(s.vantage, s.frame)] = r
            for c in s.context.get("copies", []) or []:
                ours[(s.vantage, c["frame"])] = r
    return [
        (
            t,
            next(
                (
                    ours[(x["vantage"], x["frame"])]
                    for x in t["seen_at"]
                    if (x["vantage"], x["frame"]) in ours
                ),
                None,
            ),
        )
        for t in truth["resets"]
    ]


__all__ = ["pair_with_truth"]
