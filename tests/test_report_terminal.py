"""Terminal summary and `resetlens report`: renders every part, hostile text printed as written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from resetlens.model import Analysis
from resetlens.report import report_command
from resetlens.report.jsonreport import write_json
from resetlens.report.sample import HOSTILE_IMG, many_resets, sample_analysis
from resetlens.report.terminal import RESET_ROWS_MAX, print_summary

ROOT = Path(__file__).resolve().parent.parent


def render(analysis: Analysis, *, colour: bool = False) -> str:
    console = Console(
        record=True, width=200, force_terminal=colour, color_system="truecolor" if colour else None
    )
    print_summary(analysis, console)
    return console.export_text(styles=colour)


def test_summary_has_every_part() -> None:
    out = render(sample_analysis())
    assert "5 resets seen across 5 vantage points" in out
    for heading in ("Captures", "Resets", "Counts", "Log sources", "Missing for a defensible report"):
        assert heading in out
    assert "-0.012300 s ± 0.000040" in out  # clock offset ± error of the firewall capture
    assert "-i any capture: forwarded packets appear twice" in out  # capture warning
    assert "10.30.1.1:443" in out and "-> 10.20.4.7:51514" in out
    assert "middlebox fw (injected)" in out and "Rejected by policy" in out and "93%" in out
    assert "firewall, client" in out  # seen at
    assert "stale_reuse: 1" in out and "kernel: 2" in out
    assert "logs/app-journal.json" in out


def test_hostile_markup_and_escapes_printed_as_text() -> None:
    a = sample_analysis(hostile=True)
    a.captures[0].vantage = "[bold red]evil[/] :smile: \x1b[2J\x07"
    a.resets[0].seen_at[1].vantage = a.captures[0].vantage
    out = render(a, colour=True)
    assert "[bold red]evil[/] :smile: \\x1b[2J\\x07" in out
    assert "\x1b[2J" not in out and "\x07" not in out
    assert "😄" not in out
    assert f'server"{HOSTILE_IMG}' in out


def test_narrow_terminal_keeps_sender_and_cause_beside_long_ipv6() -> None:
    """80 columns and a long IPv6 tuple: the address folds; sender, cause and confidence stay readable."""
    a = sample_analysis()
    r = a.resets[0]
    r.src, r.dst = "2001:db8:ab28:5460:e2d6:d947:b5ea:c0e0", "2001:db8:ffff:1::4"
    console = Console(record=True, width=80)
    print_summary(a, console)
    out = console.export_text()
    assert all(len(line) <= 80 for line in out.splitlines())
    header = next(line for line in out.splitlines() if "time (UTC)" in line)
    for column in ("sender", "cause", "conf."):
        assert column in header, header
    assert "Rejected" in out and "middlebox" in out  # a cause title and a sender, maybe folded
    assert "b5ea" in out and "c0e0" in out  # the folded address is all there


def test_one_capture_has_no_seen_at_column() -> None:
    a = sample_analysis()
    a.captures = a.captures[:1]
    out = render(a)
    header = next(line for line in out.splitlines() if "time (UTC)" in line)
    assert "seen at" not in header and "sender" in header


def test_piped_summary_is_laid_out_wide(tmp_path: Path) -> None:
    """Into a file (no terminal, no COLUMNS) the summary uses 120 columns, not rich's 80; COLUMNS wins."""
    code = (
        "from resetlens.report.terminal import print_summary\n"
        "from resetlens.report.sample import sample_analysis\n"
        "print_summary(sample_analysis())\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "COLUMNS"}
    wide = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert max(len(line) for line in wide.stdout.splitlines()) == 120
    narrow = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**env, "COLUMNS": "90"}, check=True
    )
    assert max(len(line) for line in narrow.stdout.splitlines()) == 90


def test_many_resets_capped() -> None:
    out = render(many_resets(500))
    assert f"{500 - RESET_ROWS_MAX} more resets" in out


def test_empty_analysis() -> None:
    out = render(Analysis())
    assert "No TCP reset was found in 0 captures." in out


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """A group, so `report` stays a subcommand as in the real CLI."""

    app.command("report")(report_command)
    return app


def test_report_command_rerenders_saved_analysis(tmp_path: Path) -> None:
    saved = tmp_path / "analysis.json"
    write_json(sample_analysis(hostile=True), saved)
    html, md = tmp_path / "out" / "r.html", tmp_path / "r.md"
    result = CliRunner().invoke(_app(), ["report", str(saved), "--html", str(html), "--md", str(md)])
    assert result.exit_code == 0, result.output
    assert 'http-equiv="Content-Security-Policy"' in html.read_text(encoding="utf-8")
    assert "### Checklist" in md.read_text(encoding="utf-8")
    result = CliRunner().invoke(_app(), ["report", str(saved)])
    assert result.exit_code == 0 and "5 resets seen across 5 vantage points" in result.output


@pytest.mark.parametrize("content", [b"not json", b'{"format": 9, "resets": []}'])
def test_report_command_bad_file_exit_2_one_line(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    result = CliRunner().invoke(_app(), ["report", str(bad), "--html", str(tmp_path / "x.html")])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and str(bad) in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.html").exists()


def test_real_cli_report_if_mounted(tmp_path: Path) -> None:
    from resetlens import cli

    if "report" not in [c.name or c.callback.__name__ for c in cli.app.registered_commands]:
        pytest.skip("report command not mounted in resetlens.cli yet")
    saved = tmp_path / "a.json"
    saved.write_text(json.dumps(sample_analysis().to_dict()))
    html = tmp_path / "a.html"
    proc = subprocess.run(
        [sys.executable, "-m", "resetlens", "report", str(saved), "--html", str(html)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert html.stat().st_size > 10_000
