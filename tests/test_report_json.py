"""JSON contract writer and reader: round trip, stable bytes, atomic write, clear errors on bad files."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from resetlens.errors import ResetlensError
from resetlens.model import Analysis
from resetlens.report.jsonreport import dumps, load_json, write_json
from resetlens.report.sample import HOSTILE_SCRIPT, sample_analysis

CONTRACT_TOP = ["format", "resetlens_version", "captures", "connections", "resets", "summary"]
CONTRACT_RESET = ["id", "ts", "src", "sport", "dst", "dport", "seen_at", "sender", "cause", "confidence",
                  "evidence", "logs", "decision"]  # fmt: skip


def test_round_trip_equal(tmp_path: Path) -> None:
    a = sample_analysis(hostile=True)
    out = tmp_path / "a.json"
    write_json(a, out)
    b = load_json(out)
    assert b == a
    assert b.resets[1].logs[0].text == a.resets[1].logs[0].text  # hostile text kept byte for byte
    assert HOSTILE_SCRIPT in out.read_text(encoding="utf-8")


def test_contract_keys_in_order_and_stable_bytes(tmp_path: Path) -> None:
    a = sample_analysis()
    data = json.loads(dumps(a))
    assert list(data)[: len(CONTRACT_TOP)] == CONTRACT_TOP
    assert data["format"] == 1
    assert list(data["resets"][0])[: len(CONTRACT_RESET)] == CONTRACT_RESET
    assert set(data["resets"][0]["seen_at"][0]) >= {"vantage", "ts", "frame", "ttl", "ip_id"}
    assert set(data["resets"][0]["sender"]) == {"role", "host", "kind"}
    assert set(data["resets"][0]["evidence"][0]) >= {"code", "text", "vantage", "frame"}
    assert set(data["resets"][1]["logs"][0]) >= {"kind", "path", "line", "ts", "text"}
    assert set(data["captures"][0]) >= {"vantage", "path", "host", "packets", "resets", "first_ts", "last_ts",
                                         "clock_offset", "clock_offset_error", "warnings"}  # fmt: skip
    # two writes of the same analysis: identical bytes
    write_json(a, tmp_path / "1.json")
    write_json(sample_analysis(), tmp_path / "2.json")
    assert (tmp_path / "1.json").read_bytes() == (tmp_path / "2.json").read_bytes()


def test_floats_plain_numbers_numpy_and_nan(tmp_path: Path) -> None:
    a = sample_analysis()
    a.resets[0].confidence = np.float64(0.75)  # type: ignore[assignment]
    a.captures[0].packets = np.int64(12)  # type: ignore[assignment]
    a.captures[1].clock_offset_error = math.nan
    a.summary["ratio"] = math.inf
    text = dumps(a)
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert data["resets"][0]["confidence"] == 0.75
    assert data["captures"][0]["packets"] == 12
    assert data["captures"][1]["clock_offset_error"] is None
    assert data["summary"]["ratio"] is None
    assert isinstance(data["resets"][0]["ts"], float)


def test_atomic_write_leaves_no_temp_and_replaces(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "a.json"
    write_json(sample_analysis(), out)
    out.write_text("old")
    write_json(sample_analysis(), out)
    assert json.loads(out.read_text())["format"] == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["a.json"]


def test_write_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    write_json(sample_analysis(), "-")
    data = json.loads(capsys.readouterr().out)
    assert len(data["resets"]) == 5


def test_write_unwritable_is_resetlens_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ResetlensError, match="cannot write"):
        write_json(sample_analysis(), blocker / "a.json")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not JSON"),
        (b'{"format": 1, "resets": [', "not JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"[1, 2, 3]", "not a resetlens analysis"),
        (b'{"hello": "world"}', "not a resetlens analysis"),
        (b'{"format": 2, "resets": []}', "format 2"),
        (b'{"format": 1, "resets": [{"id": "R1"}]}', "malformed"),
        (b'{"format": 1, "resets": "abc"}', "malformed"),
        (b'{"format": 1, "resets": [], "captures": [{"vantage": "c", "path": "p", "host": null, '
         b'"packets": "many", "resets": 0, "first_ts": null, "last_ts": null}]}', "packets"),
        (b'{"format": 1, "resets": [], "summary": []}', "summary"),
    ],
)  # fmt: skip
def test_load_bad_files(tmp_path: Path, content: bytes, match: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    with pytest.raises(ResetlensError, match=match) as info:
        load_json(bad)
    assert str(bad) in str(info.value)
    assert "\n" not in str(info.value)


def test_load_json_error_names_byte_offset(tmp_path: Path) -> None:
    bad = tmp_path / "cut.json"
    bad.write_text('{"format": 1, "résets": [}', encoding="utf-8")
    with pytest.raises(ResetlensError) as info:
        load_json(bad)
    assert info.value.offset == len('{"format": 1, "résets": ['.encode())


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ResetlensError, match="cannot read"):
        load_json(tmp_path / "nope.json")


def test_load_tolerates_unknown_keys(tmp_path: Path) -> None:
    data = json.loads(dumps(sample_analysis()))
    data["future_field"] = {"x": 1}
    data["resets"][0]["future"] = [1]
    p = tmp_path / "f.json"
    p.write_text(json.dumps(data))
    a = load_json(p)
    assert isinstance(a, Analysis) and a.resets[0].id == "R1"


# --- EarlyWrite: the connections written while the resets are judged, the same bytes as write_json ---

LAB_MIXED = Path(__file__).resolve().parents[1] / "fixtures" / "lab" / "mixed"


def _analysed(on_built: Callable[[Analysis], object] | None = None) -> Analysis:
    from resetlens import pipeline
    from resetlens.bundle import load_bundle

    return pipeline.analyze(load_bundle(LAB_MIXED), on_built=on_built)


def test_early_write_through_the_pipeline_hook_is_write_json(tmp_path: Path) -> None:
    """The hook hands over the Analysis before the verdicts; the file written in two steps is byte for byte
    what write_json writes of the finished analysis, and nothing else is left in the folder."""
    from resetlens.report.jsonreport import EarlyWrite

    early = EarlyWrite(tmp_path / "early.json")
    built: list[Analysis] = []
    a = _analysed(lambda analysis: (built.append(analysis), early.start(analysis)))
    early.finish(a)
    early.wait()
    assert built == [a] and built[0] is a and len(a.connections) > 0 and early.wrote_early
    write_json(a, tmp_path / "plain.json")
    assert (tmp_path / "early.json").read_bytes() == (tmp_path / "plain.json").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["early.json", "plain.json"]


@pytest.mark.parametrize("change", ["capture", "clock shift", "nothing"])
def test_early_write_rewrites_the_file_when_early_fields_changed(tmp_path: Path, change: str) -> None:
    """Anything written early that changes before the analysis is finished (a capture summary, the rows'
    times) is caught at the end and the whole file written over: still write_json's bytes."""
    from resetlens.report.jsonreport import EarlyWrite

    a = _analysed()
    early = EarlyWrite(tmp_path / "early.json")
    early.start(a)
    assert early.early_done.wait(120)  # bounded: the early part is a few thousand rows
    assert early.wrote_early
    if change == "capture":
        a.captures[0].warnings.append("late warning")
    elif change == "clock shift":
        a.connections.shift(a.connections.vantages[0], 0.25)
    early.finish(a)
    early.wait()
    write_json(a, tmp_path / "plain.json")
    text = (tmp_path / "early.json").read_bytes()
    assert text == (tmp_path / "plain.json").read_bytes()
    assert (b"late warning" in text) == (change == "capture")


def test_early_write_aborted_or_unwritable_leaves_no_file(tmp_path: Path) -> None:
    """An analysis that fails after the early write began leaves neither the target nor a temp file; a
    target that cannot be created is one ResetlensError at wait(), with no temp file."""
    from resetlens.report.jsonreport import EarlyWrite

    a = _analysed()
    early = EarlyWrite(tmp_path / "out" / "early.json")
    early.start(a)
    early.abort()
    early.wait()
    assert list((tmp_path / "out").iterdir()) == []
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad = EarlyWrite(blocker / "early.json")
    bad.start(a)
    bad.finish(a)
    with pytest.raises(ResetlensError, match="cannot write") as info:
        bad.wait()
    assert str(blocker) in str(info.value) and "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a-file", "out"]
    assert not EarlyWrite.usable("-") and EarlyWrite.usable(tmp_path / "new.json")


def test_without_the_c_extension_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the row formatter not built, the pure-Python rows (str pieces, UTF-8 encoded) give the same
    file through write_json and through EarlyWrite (which then writes everything at the end)."""
    from resetlens.report import jsonreport

    a = _analysed()
    write_json(a, tmp_path / "c.json")
    monkeypatch.setattr(jsonreport, "_jsonrows", None)
    write_json(a, tmp_path / "py.json")
    early = jsonreport.EarlyWrite(tmp_path / "early.json")
    early.start(a)
    early.finish(a)
    early.wait()
    assert not early.wrote_early
    assert (tmp_path / "py.json").read_bytes() == (tmp_path / "early.json").read_bytes()
    assert (tmp_path / "py.json").read_bytes() == (tmp_path / "c.json").read_bytes()
