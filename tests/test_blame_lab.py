"""The blame engine measured against the lab's ground truth (fixtures/lab/*/truth.json).

Every RST on the wire of every lab bundle has a labelled sender role, host, kind and cause. This
test analyses each bundle, pairs our resets with the truth by (vantage, frame), prints the
confusion tables, and holds the engine to the issue's targets.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from resetlens.lab.score import pair_with_truth
from tests.conftest import LAB_FIXTURES

ROLE_TARGET = 0.97
KIND_TARGET = 0.95
CAUSE_TARGET = 0.90


def _bundles() -> list[Path]:
    return sorted(p.parent for p in LAB_FIXTURES.glob("*/truth.json"))


def _pairs() -> list[tuple[str, dict, object]]:
    return [(b.name, t, r) for b in _bundles() for t, r in pair_with_truth(b)]


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, dict, object]]:
    if not _bundles():
        pytest.fail(f"no lab bundles with truth.json under {LAB_FIXTURES}")
    return _pairs()


def _table(title: str, rows: Counter) -> str:
    lines = [title]
    for (want, got), n in sorted(rows.items()):
        mark = "" if want == got else "   <-- wrong"
        lines.append(f"  truth {want:18} ours {got:18} {n:4}{mark}")
    return "\n".join(lines)


def test_every_truth_reset_is_found(pairs) -> None:
    missing = [(b, t["src"], t["sport"], t["dst"], t["dport"]) for b, t, r in pairs if r is None]
    assert not missing, f"resets on the wire that resetlens did not report: {missing[:10]}"
    # One physical RST is one reset: two truth entries must never be answered by the same one of ours.
    ours = [(b, r.id) for b, _, r in pairs if r is not None]
    doubled = sorted({x for x in ours if ours.count(x) > 1})
    assert not doubled, f"one reported reset stands for several real ones: {doubled}"


def test_accuracy_against_lab_truth(pairs) -> None:
    role, kind, cause = Counter(), Counter(), Counter()
    wrong = []
    for b, t, r in pairs:
        if r is None:
            continue
        role[(t["sender"]["role"], r.sender.role)] += 1
        kind[(t["sender"]["kind"], r.sender.kind)] += 1
        cause[(t["cause"], r.cause)] += 1
        if (t["sender"]["role"], t["sender"]["kind"], t["cause"]) != (r.sender.role, r.sender.kind, r.cause):
            wrong.append(
                f"{b}: {r.id} truth {t['sender']['role']}/{t['sender']['kind']}/{t['cause']} "
                f"ours {r.sender.role}/{r.sender.kind}/{r.cause} ({t.get('note', '')})"
            )
    n = sum(role.values())

    def share(c: Counter) -> float:
        return sum(v for (a, b), v in c.items() if a == b) / n

    report = "\n".join(
        [
            f"lab accuracy over {n} resets: role {share(role):.1%}, kind {share(kind):.1%}, cause {share(cause):.1%}",
            _table("sender.role:", role),
            _table("sender.kind:", kind),
            _table("cause:", cause),
            "disagreements:",
            *wrong[:60],
        ]
    )
    print(report)
    assert share(role) >= ROLE_TARGET, report
    assert share(kind) >= KIND_TARGET, report
    assert share(cause) >= CAUSE_TARGET, report


def test_injected_flagged_and_genuine_never(pairs) -> None:
    missed = [
        (b, t.get("note", ""))
        for b, t, r in pairs
        if r is not None and t["sender"]["kind"] == "injected" and r.sender.kind != "injected"
    ]
    false = [
        (b, t.get("note", ""))
        for b, t, r in pairs
        if r is not None and t["sender"]["kind"] != "injected" and r.sender.kind == "injected"
    ]
    assert not missed, f"injected RSTs not flagged: {missed}"
    assert not false, f"genuine RSTs called injected: {false}"
