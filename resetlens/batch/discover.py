"""Find the bundles in an archive tree and group loose captures into vantages and bundles.

Rules, in order, walking the tree top-down (dot-folders and the batch's own output are skipped):

1. A folder with `resetlens.toml` is one bundle (everything under it); nothing below is searched.
2. A folder with capture files in it (or in a `captures/`/`pcaps/` child) holds loose captures.
   Their names are parsed into series, one per vantage:
     - tcpdump `-C` rotation: `dump.pcap`, `dump.pcap1`, `dump.pcap2`, ... (`-W` pads: `dump.pcap00`).
     - tcpdump `-G` rotation: strftime-stamped names, `proxy_20240501-120000.pcap`, read by time.
     - archive names `host_vantage_timestamp.pcap[.gz]`: host and vantage from the name.
   Files of one series are read in order as one capture (`CaptureSpec.paths`). A series breaks into
   two when consecutive stamps are more than SERIES_GAP_S apart (two separate captures).
   Series whose time spans overlap (within CLUSTER_SLACK_S) are one incident: one bundle. Series
   without a stamp all go to the folder's own bundle. One cluster = the bundle is the folder itself.

Content hash: sha256 over the sorted relative paths, sizes and contents of every file in a bundle,
so a rerun can tell an unchanged bundle from a changed one without trusting mtimes.
"""

from __future__ import annotations

import calendar
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from resetlens.bundle import MANIFEST, CaptureSpec, guess_log_kind, has_capture_magic

# Consecutive stamps of one vantage further apart than this are two captures, not one rotation.
SERIES_GAP_S = 6 * 3600
# Series of different vantages starting/ending within this of each other belong to one incident.
CLUSTER_SLACK_S = 600
# Child folders whose captures belong to their parent folder's bundle.
CAPTURE_CHILDREN = ("captures", "pcaps", "pcap")
# Child folders whose logs belong to their parent folder's bundle (when it has captures).
LOG_CHILDREN = ("logs", "log")
# Folders never searched for captures (host snapshots and written reports inside bundles).
SKIP_DIRS = ("snapshots", "reports")
# Read size for hashing.
HASH_CHUNK = 1 << 20

# A capture file name: stem, capture extension, -C rotation number, optional gzip.
_CAPTURE_NAME = re.compile(
    r"^(?P<stem>.+?)\.(?P<ext>pcapng|pcap|cap|dmp|ntar)(?P<num>\d+)?(?P<gz>\.gz)?$", re.I
)
# A timestamp token in a stem: 20240501T120000Z, 2024-05-01_12-00-00, 20240501-1200, 20240501, or epoch seconds.
_STAMP = re.compile(
    r"(?<![0-9])(?P<y>20\d{2}|19\d{2})-?(?P<mo>[01]\d)-?(?P<d>[0-3]\d)"
    r"(?:[T_ .-]?(?P<h>[0-2]\d)[:.-]?(?P<mi>[0-5]\d)(?:[:.-]?(?P<s>[0-6]\d))?)?Z?(?![0-9])"
    r"|(?<![0-9])(?P<epoch>1[0-9]{9})(?![0-9])"
)


@dataclass
class LooseCapture:
    """One capture file as its name describes it."""

    path: Path
    series: str  # the name with its stamp and rotation number removed: the vantage's file family
    host: str | None
    vantage: str
    stamp: float | None  # seconds since the epoch (UTC) from the name, None without a stamp
    number: int  # -C rotation number; -1 for the first file (no number)


@dataclass
class BundleSpec:
    """One unit of batch work: a bundle folder, or a group of loose captures."""

    name: str  # unique within the archive: relative folder, plus "@stamp" for one of several incidents
    root: Path  # absolute folder the bundle lives in
    kind: str  # "manifest" (resetlens.toml) or "captures" (grouped by name)
    captures: list[CaptureSpec] = field(default_factory=list)  # empty for "manifest": the manifest says
    files: list[Path] = field(default_factory=list)  # every file whose content the analysis depends on

    def hash(self) -> str:
        return content_hash(self.root, self.files)


def parse_capture_name(path: Path) -> LooseCapture | None:
    """None when the name is not a capture's (and its first bytes are not a capture's either)."""
    m = _CAPTURE_NAME.match(path.name)
    if m:
        stem, number = m["stem"], int(m["num"]) if m["num"] is not None else -1
        family_ext = m["ext"].lower() + (".gz" if m["gz"] else "")
    elif "." not in path.name and _sniff(path):
        stem, number, family_ext = path.name, -1, ""
    else:
        return None
    stamp = None
    base = stem
    found = list(_STAMP.finditer(stem))
    if found:
        tok = found[-1]
        stamp = _stamp_seconds(tok)
        base = (stem[: tok.start()] + stem[tok.end() :]).strip("_-. ")
    # host_vantage_timestamp: only a stamped name is read as host + vantage (a plain stem is the vantage)
    parts = [p for p in base.split("_") if p]
    host: str | None = None
    vantage = base or stem
    if stamp is not None and len(parts) >= 2:
        host, vantage = parts[0], "_".join(parts[1:])
    return LooseCapture(path, f"{path.parent}|{base}|{family_ext}", host, vantage, stamp, number)


def discover(archive: Path, exclude: list[Path] | None = None) -> list[BundleSpec]:
    """All bundles under `archive`, sorted by name. `exclude`: folders to skip (e.g. the report output)."""
    archive = archive.resolve()
    skip = {p.resolve() for p in exclude or []}
    found: list[BundleSpec] = []
    _walk(archive, archive, skip, found)
    found.sort(key=lambda b: b.name)
    return found


def _walk(folder: Path, archive: Path, skip: set[Path], found: list[BundleSpec]) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return  # unreadable folder: nothing to find there
    if any(e.name == MANIFEST and e.is_file() for e in entries):
        found.append(_manifest_bundle(folder, archive))
        return
    # file symlinks are followed (archives deduplicate with them); folder symlinks are not (no loops)
    files = [Path(e.path) for e in entries if e.is_file() and not e.name.startswith(".")]
    dirs = [
        Path(e.path)
        for e in entries
        if e.is_dir(follow_symlinks=False)
        and not e.name.startswith(".")
        and Path(e.path).resolve() not in skip
    ]
    captures = [c for c in (parse_capture_name(f) for f in files) if c]
    child_caps = [d for d in dirs if d.name.lower() in CAPTURE_CHILDREN and not (d / MANIFEST).exists()]
    for d in child_caps:  # everything under captures/ belongs to this bundle, at any depth
        inside = sorted(f for f in d.rglob("*") if f.is_file() and not f.name.startswith("."))
        captures += [c for c in (parse_capture_name(f) for f in inside) if c]
    if captures:
        log_dirs = [d for d in dirs if d.name.lower() in LOG_CHILDREN and not (d / MANIFEST).exists()]
        logs = files + [f for d in log_dirs for f in sorted(d.rglob("*")) if f.is_file()]
        found.extend(_loose_bundles(folder, archive, captures, logs))
        dirs = [d for d in dirs if d not in child_caps and d not in log_dirs]
    for d in dirs:
        if d.name.lower() in SKIP_DIRS and captures:
            continue
        _walk(d, archive, skip, found)


def _manifest_bundle(folder: Path, archive: Path) -> BundleSpec:
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "reports")
        files += [Path(dirpath, f) for f in sorted(filenames) if not f.startswith(".")]
    files += _manifest_outside(folder, set(files))
    return BundleSpec(_name(folder, archive), folder, "manifest", [], files)


def _manifest_outside(folder: Path, inside: set[Path]) -> list[Path]:
    """Files the manifest names outside its folder ("../shared/x.pcap"): their content counts too."""
    from resetlens.bundle import load_bundle
    from resetlens.errors import ResetlensError

    try:
        bundle = load_bundle(folder)
    except (ResetlensError, OSError, ValueError):
        return []  # a broken manifest: the analysis will fail and say why
    named = [p for c in bundle.captures for p in c.paths] + [log.path for log in bundle.logs]
    resolved = {p.resolve() for p in inside}
    return sorted({p for p in named if p.resolve() not in resolved and p.is_file()})


def _loose_bundles(
    folder: Path, archive: Path, caps: list[LooseCapture], files: list[Path]
) -> list[BundleSpec]:
    series = _series(caps)
    unstamped = [s for s in series if s[0].stamp is None]
    clusters = _clusters([s for s in series if s[0].stamp is not None])
    if unstamped:
        clusters.insert(0, unstamped)
    base = _name(folder, archive)
    logs = [f for f in files if guess_log_kind(f) and f.name != "truth.json"]
    out = []
    for group in clusters:
        name = base
        if len(clusters) > 1:
            first = min((s[0].stamp for s in group if s[0].stamp is not None), default=None)
            suffix = _stamp_text(first) if first is not None else "unstamped"
            name = f"{base}@{suffix}" if base != "." else suffix
        specs = _capture_specs(group)
        group_files = [c.path for s in group for c in s]
        if len(clusters) == 1:
            group_files += logs
        out.append(BundleSpec(name, folder, "captures", specs, sorted(group_files)))
    return out


def _series(caps: list[LooseCapture]) -> list[list[LooseCapture]]:
    """Files of one family, in reading order, split at gaps longer than SERIES_GAP_S."""
    families: dict[str, list[LooseCapture]] = {}
    for c in caps:
        families.setdefault(c.series, []).append(c)
    out: list[list[LooseCapture]] = []
    for members in families.values():
        members.sort(key=lambda c: (c.stamp if c.stamp is not None else -1.0, c.number, c.path.name))
        current = [members[0]]
        for c in members[1:]:
            prev = current[-1]
            if c.stamp is not None and prev.stamp is not None and c.stamp - prev.stamp > SERIES_GAP_S:
                out.append(current)
                current = [c]
            else:
                current.append(c)
        out.append(current)
    return out


def _clusters(series: list[list[LooseCapture]]) -> list[list[list[LooseCapture]]]:
    """Group stamped series whose spans overlap (within CLUSTER_SLACK_S): one incident each."""
    spans = sorted(series, key=lambda s: s[0].stamp or 0.0)
    out: list[list[list[LooseCapture]]] = []
    end = None
    for s in spans:
        start, stop = s[0].stamp or 0.0, s[-1].stamp or 0.0
        if out and end is not None and start <= end + CLUSTER_SLACK_S:
            out[-1].append(s)
            end = max(end, stop)
        else:
            out.append([s])
            end = stop
    return out


def _capture_specs(group: list[list[LooseCapture]]) -> list[CaptureSpec]:
    """One CaptureSpec per series; vantage names made unique (host prefix, then a counter)."""
    vantages = [s[0].vantage for s in group]
    specs: list[CaptureSpec] = []
    used: set[str] = set()
    for s in sorted(group, key=lambda s: (s[0].host or "", s[0].vantage, s[0].stamp or 0.0)):
        v = s[0].vantage
        if vantages.count(v) > 1:  # the same name twice: the host, else the folder, tells them apart
            v = f"{s[0].host or s[0].path.parent.name}-{v}"
        name, n = v, 1
        while name in used:
            n += 1
            name = f"{v}-{n}"
        used.add(name)
        specs.append(CaptureSpec(name, [c.path.resolve() for c in s], s[0].host))
    return specs


def content_hash(root: Path, files: list[Path]) -> str:
    """sha256 over sorted (relative path, size, content) of `files`; raises OSError when one is unreadable."""
    h = hashlib.sha256()
    for rel, path in sorted((_rel(p, root), p) for p in files):
        size = path.stat().st_size
        h.update(f"{rel}\0{size}\0".encode("utf-8", "surrogateescape"))
        with path.open("rb") as f:
            while chunk := f.read(HASH_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def _sniff(path: Path) -> bool:
    return has_capture_magic(path)


def _stamp_seconds(m: re.Match[str]) -> float | None:
    if m["epoch"]:
        return float(m["epoch"])
    try:
        return float(
            calendar.timegm(
                (
                    int(m["y"]),
                    int(m["mo"]),
                    int(m["d"]),
                    int(m["h"] or 0),
                    int(m["mi"] or 0),
                    int(m["s"] or 0),
                    0,
                    0,
                    0,
                )
            )
        )
    except (ValueError, OverflowError):
        return None


def _stamp_text(ts: float) -> str:
    import time

    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))


def _rel(path: Path, root: Path) -> str:
    try:
        rel = path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        rel = path.as_posix()
    return rel or "."


def _name(path: Path, root: Path) -> str:
    """A bundle name: the relative folder, undecodable bytes shown as \\xNN (names are stored as text)."""
    return _rel(path, root).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
