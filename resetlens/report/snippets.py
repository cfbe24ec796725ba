"""pcap snippets: each reset's flow at each vantage, cut out of the original capture for the ticket.

Files are named by `snippet_name(reset_id, vantage)` inside one folder, so the HTML writer finds
them again from a saved analysis without an index.  Vantage names and reset ids are data: the
name keeps only safe characters and adds a short hash when it had to change anything.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from resetlens.errors import ResetlensError
from resetlens.model import Analysis, Sighting

# Longest readable part of a snippet file name (vantage names can be long).
NAME_PART_MAX = 40


def _safe(part: str) -> str:
    cleaned = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in part)
    cleaned = cleaned.strip(".")[:NAME_PART_MAX] or "_"
    if cleaned != part:
        cleaned += "-" + hashlib.sha1(part.encode("utf-8", "replace")).hexdigest()[:8]
    return cleaned


def snippet_name(reset_id: str, vantage: str, ext: str = "pcap") -> str:
    """File name of the snippet of one reset's flow at one vantage (no path separators, no dots first).

    ext is "pcap", or "pcapng" when the flow mixes link types (write_pcap then writes pcapng)."""
    return f"{_safe(reset_id)}--{_safe(vantage)}.{ext}"


def _frames(s: Sighting) -> list[int]:
    """The flow's frames at this vantage, always with the RST itself (frame numbers are 1-based)."""
    return sorted(f for f in {*s.flow_frames, s.frame} if isinstance(f, int) and f > 0)


def capture_paths(analysis: Analysis, base: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Each vantage's capture file that still exists: its path as recorded, else under the bundle (or base)."""
    roots = [Path(r) for r in (base, analysis.bundle) if r]
    found: dict[str, Path] = {}
    for c in analysis.captures:
        path = Path(c.path)
        candidates = [path] if path.is_absolute() else [*(r / path for r in roots), path]
        for candidate in candidates:
            if candidate.is_file():
                found[c.vantage] = candidate
                break
    return found


def write_snippets(
    analysis: Analysis, out_dir: str | os.PathLike[str], capture_paths: dict[str, str | os.PathLike[str]]
) -> dict[tuple[str, str], str]:
    """Cut each reset's flow frames out of each vantage's capture into out_dir.

    Returns {(reset_id, vantage): path relative to out_dir}.  Each snippet holds the sighting's
    flow_frames and the RST frame itself; a vantage without a capture path gets none; a capture that
    cannot be read again is a ResetlensError.
    """
    from resetlens.capture import extract_frames, write_pcap  # the capture readers' cutter

    out = Path(out_dir)
    wanted: dict[str, set[int]] = {}
    for r in analysis.resets:
        for s in r.seen_at:
            if s.vantage in capture_paths and _frames(s):
                wanted.setdefault(s.vantage, set()).update(_frames(s))
    if not wanted:
        return {}
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResetlensError(f"cannot create snippet folder: {exc.strerror or exc}", path=str(out)) from None
    written: dict[tuple[str, str], str] = {}
    for vantage, frames in wanted.items():
        # one pass over each capture for all its resets' frames
        by_frame = {f.frame: f for f in extract_frames(capture_paths[vantage], frames)}
        for r in analysis.resets:
            for s in r.seen_at:
                if s.vantage != vantage:
                    continue
                frames_here = [by_frame[f] for f in _frames(s) if f in by_frame]
                if not frames_here:
                    continue
                name = snippet_name(
                    r.id, vantage, "pcapng" if len({f.linktype for f in frames_here}) > 1 else "pcap"
                )
                try:
                    write_pcap(out / name, frames_here)
                except OSError as exc:
                    raise ResetlensError(
                        f"cannot write snippet: {exc.strerror or exc}", path=str(out / name)
                    ) from None
                written[(r.id, vantage)] = name
    return written
