"""resetlens.toml for one lab bundle (contract §2), written by hand: the stdlib reads TOML but cannot write it."""

from __future__ import annotations

import json
from pathlib import Path

from resetlens.lab.capture import VANTAGES, capture_path
from resetlens.lab.topology import HOSTS, ROLES, host_addresses


def q(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def write_manifest(bundle: Path, title: str, logs: list[dict]) -> None:
    out = [f"title = {q(title)}", 'timezone = "UTC"', ""]
    for v in VANTAGES:
        out += [
            "[[capture]]",
            f"vantage = {q(v.name)}",
            f"path = {q(capture_path(v))}",
            f"host = {q(v.host)}",
            "",
        ]
    for host in HOSTS:
        addrs = ", ".join(q(a) for a in host_addresses(host))
        out += ["[[host]]", f"name = {q(host)}", f"role = {q(ROLES[host])}", f"addresses = [{addrs}]", ""]
    for log in logs:
        out += ["[[log]]", f"path = {q(log['path'])}", f"kind = {q(log['kind'])}"]
        if log.get("host"):
            out.append(f"host = {q(log['host'])}")
        if log.get("format"):
            out.append(f"format = {q(log['format'])}")
        out.append("")
    (bundle / "resetlens.toml").write_text("\n".join(out))
