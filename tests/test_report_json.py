"""JSON contract writer and reader: round trip, stable bytes, atomic write, clear errors on bad files."""

from __future__ import annotations

import json
import math
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
