"""resetlens.tcp against Zeek's conn.log and Suricata's flow records for every corpus trace.

Truth: ../shared/corpus/truth (*.conn.tsv from Zeek btest baselines, *.flow.tsv from suricata-verify).
A connection agrees when its tuple (orig/resp as Zeek chose them), start time, conn_state and history
equal the truth's (a truth field of "-" is not compared). Every disagreement must be listed in
DIVERGENCES with the reason; an unlisted one fails the test, and so does a listed one that went away.
"""

from __future__ import annotations

import csv
import json
from functools import cache
from pathlib import Path

import pytest

from resetlens.capture import open_capture
from resetlens.tcp import VantageResult, analyze_vantage

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
TS_TOLERANCE = 1e-5  # truth ts has 6 decimals
MIN_CONN_STATE_AGREEMENT = 0.99

# (trace, orig_h, orig_p, resp_h, resp_p, truth ts) -> why resetlens differs from Zeek there.
DIVERGENCES: dict[tuple[str, str, int, str, int, str], str] = {}

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")


def _index() -> list[dict]:
    return json.loads((CORPUS / "index.json").read_text())["traces"]


@cache
def _analyse(name: str) -> VantageResult:
    trace = next(t for t in _index() if t["name"] == name)
    return analyze_vantage(open_capture(CORPUS / trace["file"]).chunks(), "v")


def _rows(path: Path) -> list[dict[str, str]]:
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


def _compare_trace(name: str, truth: Path) -> list[dict]:
    """One result per truth row: the matched connection and what agreed."""
    result = _analyse(name)
    unused = list(result.connections)
    out = []
    for row in _rows(truth):
        orig_p = None if row["orig_p"] == "-" else int(row["orig_p"])
        cands = [
            c
            for c in unused
            if c.orig_h == row["orig_h"]
            and (orig_p is None or c.orig_p == orig_p)
            and c.resp_h == row["resp_h"]
            and c.resp_p == int(row["resp_p"])
            and abs(c.ts - float(row["ts"])) < TS_TOLERANCE
        ]
        conn = cands[0] if cands else None
        if conn is not None:
            unused.remove(conn)
        key = (name, row["orig_h"], orig_p or 0, row["resp_h"], int(row["resp_p"]), row["ts"])
        item = {"key": key, "truth": row, "conn": conn}
        item["state_given"] = row["conn_state"] != "-"
        item["history_given"] = row["history"] != "-"
        item["state_ok"] = conn is not None and row["conn_state"] in ("-", conn.conn_state)
        item["history_ok"] = conn is not None and row["history"] in ("-", conn.history)
        item["pkts_ok"] = conn is not None and (
            row["orig_pkts"] == "-"
            or (int(row["orig_pkts"]), int(row["resp_pkts"])) == (conn.orig_pkts, conn.resp_pkts)
        )
        out.append(item)
    return out


def _all_items() -> list[dict]:
    items = []
    for truth in sorted((CORPUS / "truth").glob("*.conn.tsv")):
        items.extend(_compare_trace(truth.name[: -len(".conn.tsv")], truth))
    return items


def test_every_trace_is_analysed_with_all_its_resets() -> None:
    for trace in _index():
        result = _analyse(trace["name"])
        assert len(result.resets) == trace["rst_packets"], trace["name"]
        assert sum(c.orig_pkts + c.resp_pkts for c in result.connections) == result.packets, trace["name"]


def test_conn_state_and_history_agree_with_zeek() -> None:
    items = _all_items()
    bad = {
        it["key"]: (it["truth"]["conn_state"], it["truth"]["history"], it["conn"])
        for it in items
        if not (it["state_ok"] and it["history_ok"] and it["pkts_ok"])
    }
    unlisted = {k: v for k, v in bad.items() if k not in DIVERGENCES}
    gone = [k for k in DIVERGENCES if k not in bad]
    state_rows = [it for it in items if it["state_given"]]
    hist_rows = [it for it in items if it["history_given"]]
    state_pct = 100.0 * sum(it["state_ok"] for it in state_rows) / len(state_rows)
    hist_pct = 100.0 * sum(it["history_ok"] for it in hist_rows) / len(hist_rows)
    print(
        f"\nZeek agreement: conn_state {sum(it['state_ok'] for it in state_rows)}/{len(state_rows)} "
        f"({state_pct:.2f} %), history {sum(it['history_ok'] for it in hist_rows)}/{len(hist_rows)} "
        f"({hist_pct:.2f} %), packet counts {sum(it['pkts_ok'] for it in items)}/{len(items)}; "
        f"documented divergences {len(DIVERGENCES)}"
    )
    assert not unlisted, f"undocumented divergences from Zeek: {unlisted}"
    assert not gone, f"documented divergences that no longer occur (remove them): {gone}"
    assert state_pct >= 100.0 * MIN_CONN_STATE_AGREEMENT
    assert len(state_rows) >= 1300 and len(hist_rows) >= 1300  # the whole corpus was compared


def test_no_extra_connections_where_zeek_logged_all() -> None:
    """Splitting: we log exactly as many connections as Zeek on every fully logged trace."""
    for trace in _index():
        for truth in trace["truth"]:
            if truth["kind"] != "zeek-conn" or truth.get("detail") != "zeek-baseline":
                continue
            rows = _rows(CORPUS / truth["file"])
            assert len(_analyse(trace["name"]).connections) == len(rows), trace["name"]


def _suricata_files() -> list[Path]:
    return sorted((CORPUS / "truth").glob("*.flow.tsv"))


def test_rst_direction_agrees_with_suricata() -> None:
    checked = 0
    for path in _suricata_files():
        name = path.name.split(".")[0]
        result = _analyse(name)
        rows = sorted(_rows(path), key=lambda r: float(r["ts"]))
        for row in rows:
            start = float(row["ts"]) - TS_TOLERANCE
            ends = {(row["orig_h"], int(row["orig_p"])), (row["resp_h"], int(row["resp_p"]))}
            later = [
                float(r["ts"])
                for r in rows
                if float(r["ts"]) > float(row["ts"])
                and {(r["orig_h"], int(r["orig_p"])), (r["resp_h"], int(r["resp_p"]))} == ends
            ]
            end = min(later) if later else float("inf")
            resets = [
                r
                for r in result.resets
                if {(r.src, r.sport), (r.dst, r.dport)} == ends and start <= r.ts < end
            ]
            from_orig = any((r.src, r.sport) == (row["orig_h"], int(row["orig_p"])) for r in resets)
            from_resp = any((r.src, r.sport) == (row["resp_h"], int(row["resp_p"])) for r in resets)
            assert (from_orig, from_resp) == (row["rst_from_orig"] == "1", row["rst_from_resp"] == "1"), (
                name,
                row,
            )
            checked += 1
    assert checked >= 8


def test_rst_sender_matches_zeek_history_letters() -> None:
    """Each RST's sent_by agrees with the R/r letters of its Zeek-logged connection."""
    for truth in sorted((CORPUS / "truth").glob("*.conn.tsv")):
        name = truth.name[: -len(".conn.tsv")]
        result = _analyse(name)
        by_uid = {c.uid: c for c in result.connections}
        for rec in result.resets:
            hist = by_uid[rec.uid].history
            letter = "R" if rec.sent_by == "orig" else "r"
            assert letter in hist, (name, rec.frame, hist)
