"""Evidence from logs and hosts: one parser per source, host snapshots, and their correlation to resets."""

from resetlens.evidence.base import LogRecord, ParsedLog
from resetlens.evidence.events import EVENTS
from resetlens.evidence.parse import KINDS, parse_bytes, parse_log

__all__ = ["EVENTS", "KINDS", "LogRecord", "ParsedLog", "parse_bytes", "parse_log"]
