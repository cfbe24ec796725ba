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

from resetlens.evidence.base import LogRecord, ParsedLog
from resetlens.evidence.events import EVENTS
from resetlens.evidence.parse import KINDS, parse_bytes, parse_log

__all__ = ["EVENTS", "KINDS", "LogRecord", "ParsedLog", "parse_bytes", "parse_log"]
