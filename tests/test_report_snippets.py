"""pcap snippets cut from real captures, checked frame by frame against dpkt; and linked from HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dpkt
import pytest

from resetlens.errors import ResetlensError
from resetlens.model import Analysis, CaptureSummary, Reset, Sender, Sighting
from resetlens.report.html import write_html
from resetlens.report.snippets import capture_paths, snippet_name, write_snippets
from tests.conftest import FIXTURES

# Real loopback captures from the repository standing in for two vantages: Ethernet with nanosecond
# timestamps, Linux SLL2 (`-i any`), and a pcapng with several interfaces.
CLIENT = FIXTURES / "capture" / "loopback_lo_ns.pcap"
SERVER = FIXTURES / "capture" / "loopback_any_sll2.pcap"
GAP = FIXTURES / "capture" / "loopback_multi.pcapng"
LT_SLL2 = 276  # Linux cooked v2


def reader(f: Any) -> Any:
    """dpkt's reader for the file's format, chosen by its magic (not its name)."""
    is_ng = f.read(4) == b"\x0a\x0d\x0d\x0a"
    f.seek(0)
    return dpkt.pcapng.Reader(f) if is_ng else dpkt.pcap.Reader(f)


def frames_of(path: Path) -> list[tuple[int, float, bytes]]:
    """(1-based frame, ts, bytes) of every frame, read by dpkt (the oracle)."""
    with open(path, "rb") as f:
        return [(i, float(ts), bytes(buf)) for i, (ts, buf) in enumerate(reader(f), 1)]


def datalink(path: Path) -> int:
    with open(path, "rb") as f:
        return reader(f).datalink()


def rst_flow(path: Path) -> tuple[int, list[int], tuple[str, int, str, int]]:
    """The first RST's frame, the frames of its 4-tuple (both directions) and the tuple, via dpkt."""
    link = dpkt.sll2.SLL2 if datalink(path) == LT_SLL2 else dpkt.ethernet.Ethernet
    flows: dict[frozenset, list[int]] = {}
    first_rst = None
    for n, _, buf in frames_of(path):
        ip = link(buf).data
        if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) or not isinstance(ip.data, dpkt.tcp.TCP):
            continue
        tcp = ip.data
        src, dst = dpkt.utils.inet_to_str(ip.src), dpkt.utils.inet_to_str(ip.dst)
        key = frozenset({(src, tcp.sport), (dst, tcp.dport)})
        flows.setdefault(key, []).append(n)
        if tcp.flags & dpkt.tcp.TH_RST and first_rst is None:
            first_rst = (n, key, (src, tcp.sport, dst, tcp.dport))
    assert first_rst is not None, f"no RST in {path.name}"
    return first_rst[0], flows[first_rst[1]], first_rst[2]


def reset_at(rid: str, vantage: str, path: Path) -> Reset:
    frame, flow, (src, sport, dst, dport) = rst_flow(path)
    s = Sighting(vantage, 0.0, frame, 64, 0, src, sport, dst, dport, flow_frames=flow)
    return Reset(rid, 0.0, src, sport, dst, dport, [s], Sender("server", None, "kernel"), "no_listener", 0.9)


@pytest.fixture
def analysis() -> Analysis:
    r1 = reset_at("R1", "client", CLIENT)
    r2 = reset_at("R2", "server", SERVER)
    r2.seen_at.append(
        Sighting("client/../x", 0.0, 1, 64, 0, flow_frames=[1, 2, 999_999])
    )  # hostile name, past-end frame
    return Analysis(resets=[r1, r2])


def test_snippets_hold_exactly_the_flow_frames(analysis: Analysis, tmp_path: Path) -> None:
    out = tmp_path / "snips"
    written = write_snippets(analysis, out, {"client": CLIENT, "server": SERVER, "client/../x": CLIENT})
    assert set(written) == {("R1", "client"), ("R2", "server"), ("R2", "client/../x")}
    for (rid, vantage), rel in written.items():
        assert rel == snippet_name(rid, vantage) and "/" not in rel and not rel.startswith(".")
        assert (out / rel).parent == out
    for rid, vantage, source in (("R1", "client", CLIENT), ("R2", "server", SERVER)):
        sighting = next(s for r in analysis.resets if r.id == rid for s in r.seen_at if s.vantage == vantage)
        original = {n: (ts, buf) for n, ts, buf in frames_of(source)}
        snippet = frames_of(out / written[(rid, vantage)])
        assert [buf for _, _, buf in snippet] == [original[n][1] for n in sighting.flow_frames]
        assert [ts for _, ts, _ in snippet] == pytest.approx(
            [original[n][0] for n in sighting.flow_frames], abs=1e-6
        )
        assert sighting.frame in sighting.flow_frames
    # frames past the end of the capture are skipped, the rest kept
    assert len(frames_of(out / written[("R2", "client/../x")])) == 2


def test_snippets_from_pcapng(tmp_path: Path) -> None:
    frames = [3, 4, 5, 10]
    a = Analysis(
        resets=[Reset("R9", 0.0, "a", 1, "b", 2, [Sighting("gap", 0.0, 5, 64, 0, flow_frames=frames)])]
    )
    written = write_snippets(a, tmp_path, {"gap": GAP})
    original = {n: buf for n, _, buf in frames_of(GAP)}
    assert [buf for _, _, buf in frames_of(tmp_path / written[("R9", "gap")])] == [
        original[n] for n in frames
    ]
    # these frames come from two interfaces with different link types: the snippet is pcapng, named so
    assert written[("R9", "gap")] == snippet_name("R9", "gap", "pcapng")
    write_html(a, tmp_path / "r.html", snippets_dir=tmp_path)
    assert f'download="{snippet_name("R9", "gap", "pcapng")}"' in (tmp_path / "r.html").read_text(
        encoding="utf-8"
    )


def test_vantage_without_capture_gets_none(analysis: Analysis, tmp_path: Path) -> None:
    assert write_snippets(analysis, tmp_path / "none", {}) == {}
    assert not (tmp_path / "none").exists()
    assert set(write_snippets(analysis, tmp_path / "one", {"server": SERVER})) == {("R2", "server")}


def test_without_flow_frames_the_rst_alone(analysis: Analysis, tmp_path: Path) -> None:
    s = analysis.resets[0].seen_at[0]
    s.flow_frames = []
    written = write_snippets(analysis, tmp_path, {"client": CLIENT})
    original = {n: buf for n, _, buf in frames_of(CLIENT)}
    assert [buf for _, _, buf in frames_of(tmp_path / written[("R1", "client")])] == [original[s.frame]]


def test_unreadable_capture_is_resetlens_error(analysis: Analysis, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture at all")
    with pytest.raises(ResetlensError):
        write_snippets(analysis, tmp_path / "out", {"client": bad})


def test_html_links_written_snippets(analysis: Analysis, tmp_path: Path) -> None:
    snips = tmp_path / "report-snippets"
    write_snippets(analysis, snips, {"client": CLIENT, "server": SERVER})
    write_html(analysis, tmp_path / "report.html", snippets_dir=snips)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    for name in (snippet_name("R1", "client"), snippet_name("R2", "server")):
        assert f'download="{name}"' in page
    assert page.count('href="data:application/vnd.tcpdump.pcap;base64,') == 2  # small: embedded


def test_capture_paths_resolve_under_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "captures").mkdir(parents=True)
    (bundle / "captures" / "c.pcap").write_bytes(CLIENT.read_bytes())
    a = Analysis(
        bundle=str(bundle),
        captures=[
            CaptureSummary("c", "captures/c.pcap", None, 9, 1, None, None),
            CaptureSummary("gone", "captures/gone.pcap", None, 9, 1, None, None),
            CaptureSummary("abs", str(SERVER), None, 8, 1, None, None),
        ],
    )
    assert capture_paths(a) == {"c": bundle / "captures" / "c.pcap", "abs": SERVER}


def test_report_command_cuts_snippets_from_bundle(analysis: Analysis, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from resetlens.report import report_command
    from resetlens.report.jsonreport import write_json

    analysis.captures = [
        CaptureSummary("client", str(CLIENT), None, 9, 1, None, None),
        CaptureSummary("server", str(SERVER), None, 8, 1, None, None),
    ]
    saved = tmp_path / "a.json"
    write_json(analysis, saved)
    app = typer.Typer()
    app.callback()(lambda: None)
    app.command("report")(report_command)
    html = tmp_path / "out" / "r.html"
    result = CliRunner().invoke(app, ["report", str(saved), "--html", str(html)])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "r-snippets"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [snippet_name("R1", "client"), snippet_name("R2", "server")]
    )
    assert html.read_text(encoding="utf-8").count('href="data:application/vnd.tcpdump.pcap;base64,') == 2
    result = CliRunner().invoke(app, ["report", str(saved), "--html", str(tmp_path / "n.html"), "--no-cut"])
    assert result.exit_code == 0 and not (tmp_path / "n-snippets").exists()
