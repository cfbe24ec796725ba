"""Reporters: one writer per output format over the one results model (resetlens.model.Analysis).

write_json / load_json   the contract JSON (jsonreport.py)
write_html               the self-contained HTML incident report (html.py + templates/)
write_markdown           the Markdown ticket summary (markdown.py)
print_summary            the terminal summary (terminal.py)
write_snippets           pcap snippets of each reset's flow at each vantage (snippets.py)
report_command           `resetlens report ANALYSIS.json --html F [--md F]` (mounted by cli.py)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from resetlens.errors import ResetlensError
from resetlens.report.jsonreport import load_json, write_json


def report_command(
    analysis: Annotated[Path, typer.Argument(help="ANALYSIS.json written by `resetlens analyze --json`.")],
    html: Annotated[Path | None, typer.Option("--html", help="Write the self-contained HTML report.")] = None,
    md: Annotated[
        Path | None, typer.Option("--md", help="Write the Markdown ticket summary ('-' = stdout).")
    ] = None,
    snippets: Annotated[
        Path | None,
        typer.Option(
            "--snippets",
            help="Folder for the pcap snippets the HTML links to (default: HTML_STEM-snippets beside it).",
        ),
    ] = None,
    cut: Annotated[
        bool,
        typer.Option(
            "--cut/--no-cut",
            help="Cut snippets from the captures when they are still on disk (paths as recorded or under the bundle).",
        ),
    ] = True,
) -> None:
    """Re-render a saved analysis; with neither --html nor --md, print the terminal summary."""
    try:
        result = load_json(analysis)
        if html is not None:
            from resetlens.report.html import write_html
            from resetlens.report.snippets import capture_paths, write_snippets

            folder = snippets if snippets is not None else html.parent / (html.stem + "-snippets")
            sources = capture_paths(result) if cut else {}
            if sources:
                write_snippets(result, folder, sources)
            write_html(result, html, snippets_dir=folder if folder.is_dir() else None)
        if md is not None:
            from resetlens.report.markdown import write_markdown

            write_markdown(result, md)
    except ResetlensError as exc:
        sys.stderr.write(f"resetlens: {exc}\n")
        raise typer.Exit(2) from None
    if html is None and md is None:
        from resetlens.report.terminal import print_summary

        print_summary(result)


def __getattr__(name: str) -> object:
    """The heavier writers load on first use (the CLI imports this package for report_command)."""
    if name == "write_html":
        from resetlens.report.html import write_html

        return write_html
    if name == "write_markdown":
        from resetlens.report.markdown import write_markdown

        return write_markdown
    if name == "print_summary":
        from resetlens.report.terminal import print_summary

        return print_summary
    if name == "write_snippets":
        from resetlens.report.snippets import write_snippets

        return write_snippets
    raise AttributeError(name)


__all__ = [
    "load_json",
    "print_summary",
    "report_command",
    "write_html",
    "write_json",
    "write_markdown",
    "write_snippets",
]
