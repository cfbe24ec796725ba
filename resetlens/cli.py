"""The command line: parse arguments, call the pipeline, print. Nothing else lives here.

Exit status (contract §1): 0 analysed; 2 bad usage or no usable input (one line naming the file);
1 only with --fail-on when a matching reset was found.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated

# numpy's bundled OpenBLAS starts a spinning thread per core at import; resetlens multiplies no matrices,
# and on a small machine that spinning takes the core the capture read-ahead thread needs. Set here, for
# the command only (numpy is imported later): a program importing resetlens as a library keeps its BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import typer

from resetlens import __version__
from resetlens.errors import ResetlensError

app = typer.Typer(
    name="resetlens",
    help="Who sent that TCP reset, why, and what to fix: multi-vantage pcap + log forensics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str) -> typer.Exit:
    # One plain line, never wrapped: scripts and tickets quote it.
    print(f"resetlens: {' '.join(message.split())}", file=sys.stderr)
    return typer.Exit(2)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        print(f"resetlens {__version__}")
        raise typer.Exit(0)


@app.command()
def analyze(
    bundle: Annotated[
        Path | None, typer.Argument(help="Bundle folder (with resetlens.toml, or just captures).")
    ] = None,
    capture: Annotated[list[str], typer.Option("--capture", "-c", help="VANTAGE=PCAP (repeatable).")] = [],  # noqa: B006
    log: Annotated[list[str], typer.Option("--log", "-l", help="KIND=PATH (repeatable).")] = [],  # noqa: B006
    host: Annotated[list[str], typer.Option("--host", help="ROLE=ADDR (repeatable).")] = [],  # noqa: B006
    json_out: Annotated[
        str | None, typer.Option("--json", help="Write the JSON analysis ('-' = stdout).")
    ] = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Write the self-contained HTML report.")
    ] = None,
    md_out: Annotated[
        Path | None, typer.Option("--md", help="Write a Markdown summary for a ticket.")
    ] = None,
    fail_on: Annotated[
        list[str],
        typer.Option(
            "--fail-on",
            help="Exit 1 when a reset matches: 'injected', 'cause=CODE', 'role=ROLE', 'kind=KIND'.",
        ),
    ] = [],  # noqa: B006
    reference: Annotated[
        str | None, typer.Option("--reference", help="Vantage whose clock is the reference.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No terminal summary.")] = False,
) -> None:
    """Analyse one incident: captures (+ logs) in, verdict per reset out."""
    from resetlens import pipeline
    from resetlens.bundle import bundle_from_args, load_bundle

    try:
        matchers = [_parse_fail_on(x) for x in fail_on]
        if bundle is not None:
            if capture or log or host:
                b = load_bundle(bundle)
                extra = bundle_from_args(capture, log, host) if capture else None
                if extra:
                    b.captures.extend(extra.captures)
            else:
                b = load_bundle(bundle)
        else:
            b = bundle_from_args(capture, log, host)
        if reference:
            b.reference = reference
        show = not quiet and json_out != "-"
        with pipeline.paused_gc():  # the outputs walk the same many small objects
            json_writer = None
            if json_out:
                from resetlens.report.jsonreport import EarlyWrite

                if EarlyWrite.usable(json_out):  # the connections are written while the resets are judged
                    json_writer = EarlyWrite(json_out)
            try:
                analysis = pipeline.analyze(b, on_built=json_writer.start if json_writer else None)
            except BaseException:
                if json_writer:
                    json_writer.abort()
                raise
            if json_writer:
                json_writer.finish(analysis)
            _write_outputs(analysis, None if json_writer else json_out, html_out, md_out, b)
            if show:
                from resetlens.report.terminal import print_summary

                print_summary(analysis)
            if json_writer:
                json_writer.wait()
    except ResetlensError as e:
        raise _fail(str(e)) from None
    global _skip_teardown
    _skip_teardown = True  # every output is written and closed: nothing left for interpreter teardown
    hits = [r for r in analysis.resets if any(m(r) for m in matchers)] if matchers else []
    if hits:
        print(f"resetlens: {len(hits)} reset(s) match --fail-on", file=sys.stderr)
        raise typer.Exit(1)


def _write_outputs(
    analysis, json_out: str | None, html_out: Path | None, md_out: Path | None, bundle
) -> None:
    if json_out:
        from resetlens.report.jsonreport import write_json

        write_json(analysis, json_out)
    if html_out:
        from resetlens.report.html import write_html
        from resetlens.report.snippets import write_snippets

        folder = html_out.parent / (html_out.stem + "-snippets")
        # Rotated multi-file vantages number frames across files: snippets are cut from single files only.
        sources = {c.vantage: c.paths[0] for c in bundle.captures if len(c.paths) == 1}
        regular = not html_out.exists() or html_out.is_file()  # no snippet folder beside /dev/null
        if analysis.resets and sources and regular:
            write_snippets(analysis, folder, sources)
        write_html(analysis, html_out, snippets_dir=folder if folder.is_dir() else None)
    if md_out:
        from resetlens.report.markdown import write_markdown

        write_markdown(analysis, md_out)


def _parse_fail_on(spec: str):
    """'injected' | 'cause=CODE' | 'role=ROLE' | 'kind=KIND' -> predicate over a Reset."""
    from resetlens.blame.catalog import CAUSES
    from resetlens.model import KINDS, ROLES

    if spec == "injected":
        return lambda r: r.sender.kind == "injected"
    key, sep, value = spec.partition("=")
    if sep and key == "cause" and value in CAUSES:
        return lambda r: r.cause == value
    if sep and key == "role" and value in ROLES:
        return lambda r: r.sender.role == value
    if sep and key == "kind" and value in KINDS:
        return lambda r: r.sender.kind == value
    raise ResetlensError(f"--fail-on {spec!r}: use injected, cause=CODE, role=ROLE or kind=KIND")


def _mount() -> None:
    """Commands that live with their subsystem (each module imports its heavy parts lazily)."""
    from resetlens.batch import batch_command
    from resetlens.evidence.collect import collect_command
    from resetlens.lab.cli import lab_app
    from resetlens.report import report_command

    app.command("report")(report_command)
    app.command("batch")(batch_command)
    app.command("collect")(collect_command)
    app.add_typer(lab_app, name="lab")


_mount()


# Set once `analyze` has written and closed all its outputs. Freeing a big analysis object by object at
# interpreter exit takes ~0.3 s on a 1 GB capture, for nothing: the process ends right after.
_skip_teardown = False


def main() -> None:
    try:
        app()
    except SystemExit as exc:
        if _skip_teardown and (exc.code is None or isinstance(exc.code, int)):
            with contextlib.suppress(BrokenPipeError):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(exc.code or 0)
        raise
    except KeyboardInterrupt:
        print("resetlens: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)


if __name__ == "__main__":
    main()
