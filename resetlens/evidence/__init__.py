"""Evidence from logs and hosts: one parser per source, host snapshots, and their correlation to resets.

    parse_log(path, kind, *, tz="UTC", host=None, fmt=None, year=None) -> ParsedLog
    parse_bytes(data, kind, *, path="-", opts=None) -> ParsedLog
    snapshots.load_snapshots(bundle_dir) -> {host: HostSnapshots}
    correlate.correlate(resets, logs, hosts=None, snapshots=None) -> CorrelationResult
    collect.collect_command  (typer command: resetlens collect --out BUNDLE ...)

Modules: nginx, haproxy, envoy, journald (json, export, text, binary; kernel and PID-1 lines), syslog
(headers), app (client and server error strings), snapshots, correlate, collect. Event codes and their
meanings: events.EVENTS.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> the module defining it. Loaded on first use: a capture-only analysis reads the event
# catalog and host-snapshot helpers but none of the log parsers, which cost ~10 ms of every start-up.
_HOME = {
    "EVENTS": "resetlens.evidence.events",
    "KINDS": "resetlens.evidence.parse",
    "LogRecord": "resetlens.evidence.base",
    "ParsedLog": "resetlens.evidence.base",
    "parse_bytes": "resetlens.evidence.parse",
    "parse_log": "resetlens.evidence.parse",
}

__all__ = ["EVENTS", "KINDS", "LogRecord", "ParsedLog", "parse_bytes", "parse_log"]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value
