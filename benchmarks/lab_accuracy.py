#!/usr/bin/env python3
"""Blame accuracy on any folder of lab bundles (each with its truth.json), e.g. a fresh lab run.

    lab_accuracy.py DIR [DIR ...]

`tests/test_blame_lab.py` scores the committed `fixtures/lab/` bundles, the ones the rules were tuned
on. A fresh `resetlens lab run all --out DIR` makes new captures of the same scenarios (new ports,
sequence numbers, IP IDs, timings and races), so scoring it says how well the rules carry over to
captures they have not seen. Prints the same confusion tables and every disagreement.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from resetlens.lab.score import pair_with_truth  # noqa: E402


def score(dirs: list[Path]) -> int:
    role, kind, cause = Counter(), Counter(), Counter()
    missing: list[str] = []
    wrong: list[str] = []
    injected = [0, 0, 0]  # injected in truth, of those flagged, genuine ones flagged injected
    bundles = sorted(p.parent for d in dirs for p in d.glob("*/truth.json"))
    if not bundles:
        print(f"no bundles with truth.json under {', '.join(map(str, dirs))}", file=sys.stderr)
        return 2
    for b in bundles:
        for t, r in pair_with_truth(b):
            if r is None:
                missing.append(f"{b.name}: {t['src']}:{t['sport']} > {t['dst']}:{t['dport']}")
                continue
            want = (t["sender"]["role"], t["sender"]["kind"], t["cause"])
            got = (r.sender.role, r.sender.kind, r.cause)
            role[(want[0], got[0])] += 1
            kind[(want[1], got[1])] += 1
            cause[(want[2], got[2])] += 1
            if want[1] == "injected":
                injected[0] += 1
                injected[1] += got[1] == "injected"
            elif got[1] == "injected":
                injected[2] += 1
            if want != got:
                wrong.append(
                    f"{b.name}: {r.id} truth {'/'.join(want)} ours {'/'.join(got)} ({t.get('note', '')})"
                )
    n = sum(role.values())

    def right(c: Counter) -> int:
        return sum(v for (a, b), v in c.items() if a == b)

    print(f"{len(bundles)} bundles, {n + len(missing)} RSTs in truth, {len(missing)} not found")
    for name, c in (("sender.role", role), ("sender.kind", kind), ("cause", cause)):
        print(f"{name}: {right(c)}/{n} ({right(c) / max(n, 1):.1%})")
        for (a, b), v in sorted(c.items()):
            print(f"  truth {a:18} ours {b:18} {v:4}{'' if a == b else '   <-- wrong'}")
    print(f"injected flagged: {injected[1]}/{injected[0]}; genuine called injected: {injected[2]}")
    for line in missing + wrong:
        print("  " + line)
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(score([Path(a) for a in sys.argv[1:]]))
