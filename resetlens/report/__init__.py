"""Reporters: one writer per output format over the one results model (resetlens.model.Analysis)."""

from __future__ import annotations

from resetlens.report.jsonreport import load_json, write_json

__all__ = ["load_json", "write_json"]
