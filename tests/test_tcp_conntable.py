"""The columnar connection table: same Connection objects out as in, JSON rows equal to the object path,
and clock shifts, selections and concatenation that keep every field."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resetlens.capture import open_capture
from resetlens.model import Analysis, Connection
from resetlens.report.jsonreport import ROWS_PER_PIECE, dumps
from resetlens.tcp import analyze_vantage
from resetlens.tcp.conntable import ConnectionTable, address_texts
from resetlens.vantage.roles import _infer_roles

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "pcaps"
HOSTILE_VANTAGE = 'edge "1"\\\n</script>\u2028'


def conns(n: int, vantage: str = "v") -> list[Connection]:
    out = []
    for i in range(n):
        v6 = i % 7 == 3
        out.append(
            Connection(
                vantage=vantage,
                ts=1_700_000_000.0 + i * 0.001,
                orig_h=f"2001:db8::{i % 300 + 1:x}" if v6 else f"10.0.{i % 250}.{i % 7}",
                orig_p=1024 + i % 60000,
                resp_h="2001:db8::ffff" if v6 else "192.0.2.80",
                resp_p=443,
                conn_state=("SF", "REJ", "RSTO", "OTH")[i % 4],
                history=("ShADadFf", "Sr", "ShADR", "^hA")[i % 4],
                duration=(i % 13) * 0.25,
                orig_bytes=i * 3,
                resp_bytes=i * 5,
                uid=f"C{i + 1}@{vantage}",
                orig_pkts=i % 9,
                resp_pkts=i % 11,
                first_frame=2 * i + 1,
                last_frame=2 * i + 2,
            )
        )
    return out


def test_objects_round_trip_through_columns() -> None:
    rows = conns(500)
    table = ConnectionTable.from_connections(rows)
    assert list(table) == rows
    assert table[-1] == rows[-1] and table[3:6] == rows[3:6]
    with pytest.raises(IndexError):
        table[500]


def test_uids_of_another_form_are_kept() -> None:
    rows = conns(3)
    rows[1] = dataclasses.replace(rows[1], uid="C3-client")
    table = ConnectionTable.from_connections(rows)
    assert [c.uid for c in table] == ["C1@v", "C3-client", "C3@v"]
    assert [c.uid for c in ConnectionTable.concat([table, ConnectionTable.from_connections(conns(2, "w"))])] == [
        "C1@v", "C3-client", "C3@v", "C1@w", "C2@w",
    ]  # fmt: skip


def test_concat_select_and_shift() -> None:
    a, b = conns(40, "a"), conns(30, "b")
    table = ConnectionTable.concat([ConnectionTable.from_connections(a), ConnectionTable.from_connections(b)])
    assert list(table) == a + b
    assert list(table.of_vantage("b")) == b
    table.shift("b", 2.5)
    assert [c.ts for c in table.of_vantage("b")] == [c.ts + 2.5 for c in b]
    assert [c.ts for c in table.of_vantage("a")] == [c.ts for c in a]


@pytest.mark.parametrize("n", [1, ROWS_PER_PIECE, ROWS_PER_PIECE + 1, 2 * ROWS_PER_PIECE])
@pytest.mark.parametrize("vantage", ["v", HOSTILE_VANTAGE])
def test_json_rows_from_columns_equal_the_object_path(n: int, vantage: str) -> None:
    rows = conns(n, vantage)
    from_objects = json.loads(dumps(Analysis(connections=rows)))
    text = dumps(Analysis(connections=ConnectionTable.from_connections(rows)))
    assert (
        "</script>" in text or vantage == "v"
    )  # JSON escapes quotes; HTML escaping is the HTML report's job
    assert json.loads(text) == from_objects
    assert len(from_objects["connections"]) == n


def test_address_text_for_mixed_families() -> None:
    rows = conns(50)
    table = ConnectionTable.from_connections(rows)
    assert table.text("orig") == [c.orig_h for c in rows]
    assert address_texts(table.rows["resp_hi"], table.rows["resp_lo"]) == [c.resp_h for c in rows]


def test_roles_from_columns() -> None:
    # 10.0.0.1 answers while it originates (a proxy); 10.0.0.9 only originates; 10.0.0.5 only answers
    base = conns(1)[0]
    rows = [
        dataclasses.replace(base, orig_h="10.0.0.9", resp_h="10.0.0.1", ts=100.0, duration=5.0, uid="C1@v"),
        dataclasses.replace(base, orig_h="10.0.0.1", resp_h="10.0.0.5", ts=101.0, duration=1.0, uid="C2@v"),
        dataclasses.replace(base, orig_h="10.0.0.7", resp_h="10.0.0.9", ts=1.0, conn_state="OTH", uid="C3@v"),
    ]
    roles = _infer_roles(ConnectionTable.from_connections(rows))
    assert {a: r for a, (r, _why) in roles.items()} == {
        "10.0.0.1": "proxy", "10.0.0.9": "client", "10.0.0.5": "server",
    }  # fmt: skip


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
def test_engine_output_survives_the_columns() -> None:
    path = next(p for p in sorted(CORPUS.iterdir()) if p.stat().st_size < 5_000_000)
    result = analyze_vantage(open_capture(path).chunks(), "corpus")
    objects = list(result.connections)
    assert objects
    assert list(ConnectionTable.from_connections(objects)) == objects


@pytest.mark.parametrize("vantage", ["v", HOSTILE_VANTAGE + "\x01\x7f\b\f", "not-utf8-\udcff"])
def test_c_row_formatter_writes_what_the_python_path_writes(vantage: str) -> None:
    from resetlens.report import jsonreport

    if jsonreport._jsonrows is None:
        pytest.skip("C accelerators not built")
    rows = conns(ROWS_PER_PIECE + 7, vantage)
    rows[5] = dataclasses.replace(rows[5], history='A"\x02\u00e9')
    table = ConnectionTable.from_connections(rows)
    py = [jsonreport._utf8(text) for text in jsonreport._table_pieces_py(table)]
    assert list(jsonreport._table_pieces_c(table)) == py


# Floats the C row formatter must write exactly as repr(): capture timestamps in µs and ns (as the reader
# computes them), short decimals, integers, and arbitrary doubles (durations), around every boundary of
# its fast path (1e-4, 2^51, 2^53, 1e16) and of repr's fixed/exponent switch.
_EDGES = [
    1e-4,
    9.9999e-5,
    0.1,
    0.5,
    1.0,
    2.0**51 - 1,
    2.0**51,
    2.0**51 + 0.5,
    2.0**52 + 1,
    2.0**53,
    1e15,
    1e16,
    1e17,
]
_FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.builds(lambda s, us: s + us * 1e-6, st.integers(0, 2**32 - 1), st.integers(0, 999_999)),
    st.builds(lambda s, ns: s + ns * 1e-9, st.integers(0, 2**32 - 1), st.integers(0, 999_999_999)),
    st.builds(lambda m, k: m / 10**k, st.integers(-(2**53), 2**53), st.integers(0, 12)),
    st.integers(-(2**60), 2**60).map(float),
    st.sampled_from(_EDGES + [-x for x in _EDGES] + [0.0, -0.0]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_FLOATS, min_size=1, max_size=30))
def test_c_row_formatter_writes_floats_as_repr(values: list[float]) -> None:
    from resetlens.report import jsonreport

    if jsonreport._jsonrows is None:
        pytest.skip("C accelerators not built")
    base = conns(len(values))
    rows = [
        dataclasses.replace(c, ts=v, duration=values[-1 - i])
        for i, (c, v) in enumerate(zip(base, values, strict=True))
    ]
    table = ConnectionTable.from_connections(rows)
    text = b"".join(jsonreport._table_pieces_c(table))
    assert text == b"".join(jsonreport._utf8(t) for t in jsonreport._table_pieces_py(table))
    assert [json.loads(line.rstrip(b","))["ts"] for line in text.split(b"\n  ")] == values  # exact round trip


def _powers_of_two_and_neighbours() -> list[float]:
    """Every power of two (where repr's digits may lie on the wide side) and the doubles beside it."""
    out = []
    for k in range(-1074, 1024):
        p = math.ldexp(1.0, k)
        out += [p, math.nextafter(p, 0.0), math.nextafter(p, math.inf)]
    return [v for v in out if math.isfinite(v) and v > 0.0]


def test_gil_free_float_repr_is_repr_for_arbitrary_doubles() -> None:
    """The shortest-digits search the row formatter runs without the GIL (snprintf + strtod) gives repr()
    for 200 k random bit patterns, every power of two and its neighbours, and durations of µs stamps."""
    from resetlens.report import jsonreport

    if jsonreport._jsonrows is None:
        pytest.skip("C accelerators not built")
    rng = np.random.default_rng(20261122)
    bits = rng.integers(0, 2**64 - 1, size=200_000, dtype=np.uint64, endpoint=True)
    doubles = bits.view(np.float64)
    stamps = 1.7e9 + rng.integers(0, 10**12, size=(2, 20_000)) * 1e-6
    values = [*doubles[np.isfinite(doubles)].tolist(), *(stamps[1] - stamps[0]).tolist()]
    values += _powers_of_two_and_neighbours()
    values += [0.0, 1e-4, 9.999999999999999e15, 1e16, 1e22, 1e23, 5e-324, 1.7976931348623157e308, 0.1, 0.3]
    values += [-v for v in values]
    wrong = [(v, text) for v in values if (text := jsonreport._jsonrows.float_repr(v)) != repr(v)]
    assert wrong == [] and len(values) > 400_000


@pytest.mark.parametrize("vantage", ["v", HOSTILE_VANTAGE, "not-utf8-\udcff"])
def test_c_rows_written_to_a_descriptor_are_the_bytes_returned(tmp_path: Path, vantage: str) -> None:
    """The whole table formatted and written by C to the file's descriptor (past its 1 MiB flush size):
    the same bytes as the pieces, between what the file object wrote before and after; a name UTF-8
    cannot carry writes nothing and leaves the rows to the general path."""
    from resetlens.report import jsonreport

    if jsonreport._jsonrows is None:
        pytest.skip("C accelerators not built")
    rows = [
        dataclasses.replace(c, duration=c.duration + i / 7, history=c.history + ("é" if i % 5 else ""))
        for i, c in enumerate(conns(3 * ROWS_PER_PIECE + 5, vantage))
    ]
    table = ConnectionTable.from_connections(rows)
    out_path = tmp_path / "rows"
    with open(out_path, "wb", buffering=1 << 20) as out:
        out.write(b"head:")
        written = jsonreport._write_table_c(table, out)
        out.write(b":tail")
    py = jsonreport._utf8(",\n  ".join(jsonreport._table_pieces_py(table)))
    if vantage.isascii() or "\udcff" not in vantage:
        assert written
        assert out_path.read_bytes() == b"head:" + b",\n  ".join(jsonreport._table_pieces_c(table)) + b":tail"
        assert out_path.read_bytes() == b"head:" + py + b":tail" and len(py) > 1 << 20
    else:
        assert not written and out_path.read_bytes() == b"head:" + b":tail"


def test_c_rows_keep_repr_under_a_comma_locale(tmp_path: Path) -> None:
    """A program that sets a locale writing ',' for the decimal point: snprintf/strtod would follow it, so
    the formatter keeps the GIL and Python's own repr; the rows stay the same bytes."""
    import shutil
    import subprocess
    import sys

    from resetlens.report import jsonreport

    if jsonreport._jsonrows is None or shutil.which("localedef") is None:
        pytest.skip("C accelerators not built, or no localedef")
    made = subprocess.run(
        ["localedef", "-i", "de_DE", "-f", "UTF-8", str(tmp_path / "de_DE.UTF-8")],
        capture_output=True,
        timeout=120,
    )
    if made.returncode not in (0, 1) or not (tmp_path / "de_DE.UTF-8").exists():  # 1: warnings only
        pytest.skip("cannot build a de_DE locale here")
    script = (
        "import locale, sys\n"
        "from resetlens.report import jsonreport\n"
        "from tests.test_tcp_conntable import conns\n"
        "from resetlens.tcp.conntable import ConnectionTable\n"
        "import dataclasses\n"
        "rows = [dataclasses.replace(c, duration=c.duration + i / 7) for i, c in enumerate(conns(300))]\n"
        "table = ConnectionTable.from_connections(rows)\n"
        "before = b''.join(jsonreport._table_pieces_c(table))\n"
        "locale.setlocale(locale.LC_NUMERIC, 'de_DE.UTF-8')\n"
        "assert locale.localeconv()['decimal_point'] == ','\n"
        "after = b''.join(jsonreport._table_pieces_c(table))\n"
        "sys.stdout.write('same' if after == before and b'0.39285714285714285' in after else 'differ')\n"
    )
    env = {**os.environ, "LOCPATH": str(tmp_path)}
    p = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == "same"
