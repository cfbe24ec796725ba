"""Ladders as packet-table rows (resetlens.capture.ladder.Ladder) read and written exactly as the list of dicts
they stand for: the same dicts, the same JSON bytes (C fragments, orjson dicts, stdlib json), the same HTML."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resetlens import pipeline
from resetlens.bundle import bundle_from_args, load_bundle
from resetlens.capture.ladder import C_OFFSETS, Ladder, ladder_rows
from resetlens.capture.table import FLAG_TEXTS, PACKET_DTYPE, flag_letters, halves_to_addr
from resetlens.errors import ResetlensError
from resetlens.model import Analysis
from resetlens.report import jsonreport
from resetlens.report.html import render_html
from tests.conftest import CORPUS_PCAPS, LAB_FIXTURES, ROOT

GEN = ROOT / "benchmarks" / "gen_pcap.py"
orjson = pytest.importorskip("orjson")


def _expected_rows(rows: np.ndarray, offset: float) -> list[dict[str, Any]]:
    """What a ladder row is, spelt out field by field (independent of ladder_rows' tuple indexes)."""
    return [
        {
            "frame": int(r["frame"]),
            "ts": float(r["ts"]) + offset,
            "src": halves_to_addr(r["src_hi"], r["src_lo"]),
            "sport": int(r["sport"]),
            "dst": halves_to_addr(r["dst_hi"], r["dst_lo"]),
            "dport": int(r["dport"]),
            "flags": flag_letters(int(r["flags"])),
            "seq": int(r["seq"]),
            "ack": int(r["ack"]),
            "len": int(r["payload_len"]),
            "ttl": int(r["ttl"]),
            "ip_id": int(r["ip_id"]) if r["ipver"] == 4 else None,
            "window": int(r["window"]),
        }
        for r in rows
    ]


def _ladders(a: Analysis) -> list[Ladder]:
    return [s.ladder for r in a.resets for s in r.seen_at if isinstance(s.ladder, Ladder)]


def _dicts(x: Ladder) -> list[dict[str, Any]]:
    """The ladder's dicts, fresh, without reading it (an unread ladder stays unread)."""
    return [dict(d) for d in x] if x.read else ladder_rows(x.rows, x.offset, dict(x.names or {}))


def _as_lists(a: Analysis) -> Analysis:
    """A copy of the analysis whose ladders are plain lists of fresh dicts (what the pipeline made before)."""
    twin = copy.copy(a)
    twin.resets = [
        dataclasses.replace(
            r,
            seen_at=[
                dataclasses.replace(s, ladder=_dicts(s.ladder)) if isinstance(s.ladder, Ladder) else s
                for s in r.seen_at
            ],
        )
        for r in a.resets
    ]
    return twin


def _json(a: Analysis) -> bytes:
    return b"".join(jsonreport.iter_json_bytes(a))


def _same_json_every_way(a: Analysis, monkeypatch: pytest.MonkeyPatch, all_in_c: bool = True) -> None:
    """The analysis with Ladders gives the bytes of its plain-list twin through every writer path, and (when
    C can write them all) the C path leaves the ladders unread: no dicts were made."""
    plain = _as_lists(a)
    want = _json(plain)
    assert _json(a) == want
    if all_in_c and jsonreport._jsonrows is not None:
        assert not any(x.read for x in _ladders(a))
    with monkeypatch.context() as m:
        m.setattr(jsonreport, "_jsonrows", None)  # no C: orjson on the dicts
        assert _json(a) == want
    with monkeypatch.context() as m:
        m.setattr(jsonreport, "orjson", None)  # no orjson: the stdlib writer
        assert _json(a) == _json(plain)


def _analyses() -> list[tuple[str, Analysis]]:
    out = [(p.name, pipeline.analyze(load_bundle(p))) for p in sorted(LAB_FIXTURES.iterdir()) if p.is_dir()]
    if CORPUS_PCAPS.is_dir():
        for p in sorted(CORPUS_PCAPS.iterdir())[:12]:
            if p.suffix in (".pcap", ".pcapng"):
                try:
                    out.append((p.name, pipeline.analyze(bundle_from_args([f"c={p}"], [], []))))
                except ResetlensError:  # a corpus trace without a packet to analyse
                    pass
    return out


@pytest.fixture(scope="module")
def analyses() -> list[tuple[str, Analysis]]:
    made = _analyses()
    assert not any(x.read for _, a in made for x in _ladders(a))  # the analysis itself never reads them
    return made


def _unread(a: Analysis) -> Analysis:
    """The analysis with each ladder read by an earlier test replaced by an unread one of the same rows."""
    for r in a.resets:
        for s in r.seen_at:
            if isinstance(s.ladder, Ladder) and s.ladder.read:
                s.ladder = Ladder(s.ladder.rows, s.ladder.offset, s.ladder.names)
    return a


def test_ladders_are_the_rows_as_dicts_on_real_captures(analyses: list[tuple[str, Analysis]]) -> None:
    """Every ladder of the lab bundles (several vantages, clock offsets) and the corpus equals its rows
    spelt out field by field, with Python int, float and str values."""
    offsets, total = set(), 0
    for name, a in analyses:
        for x in _ladders(a):
            want = _expected_rows(x.rows, x.offset)
            assert x == want and want == x, name
            assert len(x) == len(want) and x.tolist() == want
            assert all(type(v) in (int, float, str, type(None)) for d in x for v in d.values())
            offsets.add(x.offset)
            total += 1
    assert total > 200 and len(offsets) > 3  # non-zero clock offsets of multi-vantage bundles among them


def test_json_bytes_the_same_as_with_dict_ladders(
    analyses: list[tuple[str, Analysis]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for _name, a in analyses:
        if _ladders(a):
            _same_json_every_way(_unread(a), monkeypatch)


def test_generated_capture_with_ipv6_the_same_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/gen_pcap.py traffic (IPv6 with extension headers, IPv4 options, every RST kind)."""
    if not GEN.exists():
        pytest.skip("benchmarks/gen_pcap.py not available")
    out = tmp_path / "g.pcap"
    cmd = [sys.executable, str(GEN), "-o", str(out), "--size-mb", "6", "--seed", "5"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    a = pipeline.analyze(bundle_from_args([f"g={out}"], [], []))
    ladders = _ladders(a)
    versions = {int(v) for x in ladders for v in x.rows["ipver"]}
    assert versions == {4, 6}
    _same_json_every_way(a, monkeypatch)
    for x in ladders:
        assert x == _expected_rows(x.rows, x.offset)


def test_ladders_c_cannot_write_fall_back_to_dicts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny and zero timestamps (orjson writes 1e-05 as 0.00001, repr as 1e-05), a NaN, an address the
    ladder was not told, address texts that need escaping, and a ladder that also stands elsewhere (another
    depth) all come out as orjson writes the dicts."""
    a = pipeline.analyze(load_bundle(LAB_FIXTURES / "mixed"))
    ladders = _ladders(a)
    assert len(ladders) > 10
    for i, s in enumerate(s for r in a.resets for s in r.seen_at if isinstance(s.ladder, Ladder)):
        rows = s.ladder.rows.copy()
        if i % 5 == 0:
            rows["ts"] -= rows["ts"][0]  # 0.0, then small values
        elif i % 5 == 1:
            rows["ts"] = rows["ts"] * 1e-11
        elif i % 5 == 2 and len(rows):
            rows["ts"][-1] = math.nan
        elif i % 5 == 3:
            s.ladder = Ladder(rows, s.ladder.offset)  # no names given: C leaves it to orjson
            continue
        elif i % 5 == 4:  # names that JSON escapes (C writes addresses and flag letters unescaped only)
            names = {pair: f'{text}"\\\n\x01' for pair, text in (s.ladder.names or {}).items()}
            s.ladder = Ladder(rows, s.ladder.offset, names)
            continue
        s.ladder = Ladder(rows, s.ladder.offset, s.ladder.names)
    _same_json_every_way(a, monkeypatch, all_in_c=False)
    r = a.resets[0]
    r.seen_at[0].context["also"] = r.seen_at[0].ladder  # the same Ladder at another depth
    assert _json(a) == _json(_as_lists(a))


def test_a_read_ladder_is_its_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once read, the dicts are the ladder: a change made through them shows in every writer's JSON."""
    a = pipeline.analyze(load_bundle(LAB_FIXTURES / "app_abort"))
    x = _ladders(a)[0]
    x[0]["flags"] = 'R"\n'
    assert x.read and x[0]["flags"] == 'R"\n'
    plain = _as_lists(a)
    assert plain.resets[0].seen_at[0].ladder[0]["flags"] == 'R"\n'
    assert _json(a) == _json(plain)
    with monkeypatch.context() as m:
        m.setattr(jsonreport, "orjson", None)
        assert _json(a) == _json(plain)


def test_sequence_copy_and_pickle() -> None:
    a = pipeline.analyze(load_bundle(LAB_FIXTURES / "client_abort"))
    x = max(_ladders(a), key=len)
    want = _expected_rows(x.rows, x.offset)
    assert len(x) == len(want) > 2 and bool(x) and not Ladder(x.rows[:0], 0.0)
    assert x[0] == want[0] and x[-1] == want[-1] and x[1:3] == want[1:3] and list(reversed(x)) == want[::-1]
    assert x.index(want[1]) == 1 and want[2] in x and x.count(want[0]) == 1
    assert x != want[:-1] and x != [] and x != "ladder" and x == Ladder(x.rows, x.offset)
    assert x.tolist() == want and x.tolist() is not x.tolist()
    shallow = copy.copy(x)
    assert isinstance(shallow, Ladder) and shallow == want
    deep = copy.deepcopy(x)
    assert type(deep) is list and deep == want and deep[0] is not x[0]
    unread = Ladder(x.rows, x.offset, x.names)
    back = pickle.loads(pickle.dumps(unread))
    assert isinstance(back, Ladder) and not back.read and back == want
    x[0]["ttl"] = -1
    back = pickle.loads(pickle.dumps(x))
    assert back.read and back[0]["ttl"] == -1 and back == x
    assert repr(x).startswith("Ladder([{'frame': ")
    with pytest.raises(TypeError):
        hash(x)
    with pytest.raises(TypeError):
        Ladder(np.zeros(3), 0.0)


def test_to_dict_load_json_and_html_see_plain_lists(tmp_path: Path) -> None:
    """Analysis.to_dict (dataclasses.asdict) holds plain lists that json can write; a saved analysis loads
    them back as lists equal to the ladders; the HTML report is the same as with dict ladders."""
    a = pipeline.analyze(load_bundle(LAB_FIXTURES / "proxy_resets_client"))
    plain = _as_lists(a)
    d = a.to_dict()
    ladder = d["resets"][0]["seen_at"][0]["ladder"]
    assert type(ladder) is list and ladder == a.resets[0].seen_at[0].ladder
    assert json.dumps(d, allow_nan=False) == json.dumps(plain.to_dict(), allow_nan=False)
    jsonreport.write_json(a, tmp_path / "a.json")
    back = jsonreport.load_json(tmp_path / "a.json")
    loaded = [s.ladder for r in back.resets for s in r.seen_at]
    assert all(type(x) is list for x in loaded) and loaded == [s.ladder for r in a.resets for s in r.seen_at]
    assert back == a  # dataclass equality: a Ladder equals the loaded list
    assert render_html(plain) == render_html(a)


_U = {"u1": 0xFF, "u2": 0xFFFF, "u4": 0xFFFFFFFF, "u8": 0xFFFFFFFFFFFFFFFF}
_ADDRS = [(0, 0xFFFF0A000001), (0, 0xFFFFC0A80102), (0x20010DB800000000, 1), (0xFE80000000000000, 0xABCD)]


@st.composite
def _rows(draw: st.DrawFn) -> tuple[np.ndarray, float]:
    n = draw(st.integers(0, 6))
    rows = np.zeros(n, dtype=PACKET_DTYPE)
    for name in ("frame", "sport", "dport", "flags", "seq", "ack", "payload_len", "ttl", "ip_id", "window"):
        top = _U[PACKET_DTYPE[name].str[1:]]
        rows[name] = draw(st.lists(st.integers(0, top), min_size=n, max_size=n))
    rows["ipver"] = draw(st.lists(st.sampled_from([4, 6]), min_size=n, max_size=n))
    for side in ("src", "dst"):
        picked = draw(st.lists(st.sampled_from(_ADDRS), min_size=n, max_size=n))
        rows[side + "_hi"] = [hi for hi, _ in picked]
        rows[side + "_lo"] = [lo for _, lo in picked]
    ts = st.one_of(
        st.floats(1.0, 4e9),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(0, 4_000_000_000_000).map(lambda us: us / 1e6),
        st.floats(1e-7, 1e-3),
    )
    rows["ts"] = draw(st.lists(ts, min_size=n, max_size=n))
    offset = draw(st.one_of(st.just(0.0), st.floats(-5.0, 5.0), st.floats(-1e-5, 1e-5)))
    return rows, offset


@settings(max_examples=300, deadline=None)
@given(_rows())
def test_c_ladder_text_is_orjsons_at_its_depth(case: tuple[np.ndarray, float]) -> None:
    """_jsonrows.ladders gives, for any rows, orjson's own indented text of the dicts at a ladder's depth
    in the resets, or None; None only where it must (a ts orjson writes unlike repr, or a NaN)."""
    if jsonreport._jsonrows is None:
        pytest.skip("the C JSON formatter is not built")
    rows, offset = case
    names = {pair: halves_to_addr(*pair) for pair in _ADDRS}
    (text,) = jsonreport._jsonrows.ladders(
        ((rows, offset, names),), C_OFFSETS, PACKET_DTYPE.itemsize, FLAG_TEXTS, jsonreport.LADDER_INDENT
    )
    dicts = _expected_rows(rows, offset)
    ts = [abs(d["ts"]) for d in dicts]
    if text is None:
        assert any(not (1e-4 <= t < 1e16) for t in ts)
        return
    assert all(1e-4 <= t < 1e16 for t in ts)
    opts = orjson.OPT_INDENT_2

    def nest(ladder: Any) -> Any:  # "ladder" keyed 8 spaces deep, as in a dumped list of resets
        return [{"seen_at": [{"ladder": ladder}]}]

    assert orjson.dumps(nest(orjson.Fragment(text)), option=opts) == orjson.dumps(nest(dicts), option=opts)


def test_ladders_formatted_ahead_are_used_only_while_unchanged(tmp_path: Path) -> None:
    """The JSON writer's thread formats the ladders while the verdicts are made (ready_ladders); a ladder
    read and changed since, or given another offset, is written as it is at the end, and the file is
    write_json's either way."""
    if jsonreport._jsonrows is None:
        pytest.skip("the C JSON formatter is not built")
    a = pipeline.analyze(load_bundle(LAB_FIXTURES / "mixed"))
    ready = jsonreport.ready_ladders(a.resets)
    ladders = _ladders(a)
    assert len(ready) == len({id(x) for x in ladders}) > 10
    ladders[0][0]["ttl"] = 1  # read, and changed
    ladders[1].offset = ladders[1].offset + 0.5
    want = _json(_as_lists(a))
    got = b"".join(
        piece
        for i, name in enumerate(jsonreport._FIELD_NAMES)
        for piece in jsonreport._field_pieces(a, name, i == len(jsonreport._FIELD_NAMES) - 1, ready)
    )
    assert b"{\n" + got + b"}\n" == want
    assert ready == {id(ladders[0]): ready[id(ladders[0])]}  # every other one was taken and used
    early = jsonreport.EarlyWrite(tmp_path / "early.json")
    a2 = pipeline.analyze(load_bundle(LAB_FIXTURES / "mixed"), on_built=early.start)
    early.finish(a2)
    early.wait()
    assert early.wrote_early
    assert (tmp_path / "early.json").read_bytes() == _json(_as_lists(a2))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"\n")), st.sampled_from([b"\n", b",\n", b""]))
def test_reindent_is_the_python_shift(dumped: bytes, tail: bytes) -> None:
    """_jsonrows.reindent (the JSON writer's one-space shift of a dumped list, without the GIL) gives the
    bytes of the Python expression it stands for, newlines anywhere."""
    if jsonreport._jsonrows is None:
        pytest.skip("the C JSON formatter is not built")
    want = b" " + dumped[2:-2].replace(b"\n", b"\n ") + tail
    assert jsonreport._jsonrows.reindent(dumped, 2, len(dumped) - 2, b" ", tail) == want


def test_a_text_orjson_refuses_sends_ladders_through_the_stdlib_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lone surrogate (a non-UTF-8 name) in a reset makes orjson refuse its piece: the stdlib writer then
    writes the ladders from their dicts, as it writes a plain list."""
    a = pipeline.analyze(load_bundle(LAB_FIXTURES / "dpi_injection"))
    a.resets[0].explanation = "bad \udcff name"
    got = _json(a)
    assert b"\\udcff" in got and got == _json(_as_lists(a))
