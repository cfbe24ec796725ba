"""`resetlens lab run SCENARIO|all --out DIR` and `resetlens lab list` (also `python -m resetlens.lab`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from resetlens.errors import ResetlensError

lab_app = typer.Typer(help="The real reset lab: network namespaces, nginx, HAProxy, nftables, tcpdump.",
                      no_args_is_help=True)  # fmt: skip


@lab_app.command("list")
def list_scenarios() -> None:
    """List the scenarios."""
    from resetlens.lab.scenarios import SCENARIOS

    for s in SCENARIOS.values():
        typer.echo(f"{s.name:22} {s.description}")


@lab_app.command("run")
def run_cmd(
    scenario: Annotated[
        str, typer.Argument(help="a scenario name (see `resetlens lab list`), a comma list, or 'all'")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="directory for the bundles (one sub-folder per scenario)")
    ],
) -> None:
    """Run scenarios into bundles and verify each bundle's truth.json against its captures."""
    from resetlens.lab.procs import LabError
    from resetlens.lab.runner import lab_up, run_scenario
    from resetlens.lab.scenarios import SCENARIOS

    names = list(SCENARIOS) if scenario == "all" else scenario.split(",")
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        typer.echo(f"error: unknown scenario {', '.join(unknown)} (see `resetlens lab list`)", err=True)
        raise typer.Exit(2)
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    t0 = time.monotonic()
    try:
        with lab_up() as lab:
            for name in names:
                try:
                    res = run_scenario(lab, SCENARIOS[name], out)
                except LabError as exc:  # this scenario broke; the lab is still up for the next one
                    typer.echo(f"{name:22} FAILED  error: {exc}", err=True)
                    failed.append(name)
                    lab.svc.ensure_backend()
                    continue
                status = "ok" if not res.problems else "FAILED"
                counts = ", ".join(f"{k}: {v}" for k, v in res.per_expectation.items()) or "none"
                typer.echo(f"{name:22} {status:6} {res.resets:3} reset(s)  [{counts}]")
                for p in res.problems:
                    typer.echo(f"    problem: {p}", err=True)
                if res.problems:
                    failed.append(name)
    except ResetlensError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: lab torn down", err=True)
        raise typer.Exit(130) from None
    typer.echo(
        f"{len(names) - len(failed)}/{len(names)} scenario(s) verified in {time.monotonic() - t0:.0f}s -> {out}"
    )
    if failed:
        raise typer.Exit(1)


def main() -> None:
    lab_app(prog_name="resetlens lab", args=sys.argv[1:])
