"""A bundle: everything collected for one incident (contract §2).

`resetlens.toml` at the root is optional. Without it every capture under the folder is taken, each
vantage is named after its file stem, logs are recognised by name, and host roles are inferred
later. With it, what it says wins.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from resetlens.errors import ManifestError, ResetlensError
from resetlens.model import HOST_ROLES

MANIFEST = "resetlens.toml"  # the manifest's file name at a bundle's root

# File endings taken as captures when there is no manifest (".gz" is stripped first).
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".dmp", ".pcap0", ".ntar")
# First bytes of capture files: pcap µs/ns in both byte orders, pcapng SHB, gzip.
CAPTURE_MAGICS = (
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a",
    b"\x1f\x8b",
)

# Log kinds the contract names, plus the extra journald readers.
LOG_KINDS = (
    "nginx-error",
    "nginx-access",
    "haproxy",
    "envoy",
    "journald-json",
    "journald-export",
    "journald-text",
    "journal-binary",
    "syslog",
    "app",
)


@dataclass
class CaptureSpec:
    """One vantage: a capture file, or several rotated files of one vantage read in order."""

    vantage: str  # unique label
    paths: list[Path]  # absolute paths, in reading order
    host: str | None = None  # the [[host]] it was taken on

    @property
    def path(self) -> Path:
        return self.paths[0]


@dataclass
class HostSpec:
    name: str
    role: str  # client | proxy | server | firewall | other
    addresses: list[str] = field(default_factory=list)


@dataclass
class LogSpec:
    path: Path
    kind: str
    host: str | None = None
    format: str | None = None  # nginx-access log_format string when not "combined"


@dataclass
class Bundle:
    root: Path | None  # None when built from command-line arguments
    title: str = ""
    timezone: str = "UTC"
    reference: str | None = None  # vantage whose clock is the reference (default: the first capture)
    captures: list[CaptureSpec] = field(default_factory=list)
    hosts: list[HostSpec] = field(default_factory=list)
    logs: list[LogSpec] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def display(self, path: Path) -> str:
        """A path as shown in reports: relative to the bundle when inside it."""
        if self.root is not None:
            try:
                return str(path.relative_to(self.root))
            except ValueError:
                pass
        return str(path)


def load_bundle(root: Path) -> Bundle:
    root = Path(root)
    if not root.exists():
        raise ResetlensError("no such file or directory", path=str(root))
    if root.is_file():
        # A single capture file given as the "bundle": analyse it as one vantage.
        return Bundle(root=root.parent, captures=[CaptureSpec(_stem(root), [root.resolve()])])
    manifest = root / MANIFEST
    bundle = _from_manifest(root, manifest) if manifest.exists() else _discover(root)
    if not bundle.captures:
        raise ResetlensError("no capture files found (pcap, pcapng, optionally .gz)", path=str(root))
    return bundle


def bundle_from_args(captures: list[str], logs: list[str], hosts: list[str]) -> Bundle:
    """`--capture VANTAGE=PATH`, `--log KIND=PATH`, `--host ROLE=ADDR` (contract §1)."""
    bundle = Bundle(root=None)
    for item in captures:
        vantage, path = _split(item, "--capture", "VANTAGE=PATH")
        p = Path(path)
        if not p.is_file():
            raise ResetlensError("capture file not found", path=path)
        existing = next((c for c in bundle.captures if c.vantage == vantage), None)
        if existing:
            existing.paths.append(p.resolve())  # the same vantage twice = rotated files, in order
        else:
            bundle.captures.append(CaptureSpec(vantage, [p.resolve()]))
    for item in logs:
        kind, path = _split(item, "--log", "KIND=PATH")
        if kind not in LOG_KINDS:
            raise ResetlensError(f"unknown log kind {kind!r} (one of: {', '.join(LOG_KINDS)})")
        p = Path(path)
        if not p.is_file():
            raise ResetlensError("log file not found", path=path)
        bundle.logs.append(LogSpec(p.resolve(), kind))
    by_role: dict[str, HostSpec] = {}
    for item in hosts:
        role, addr = _split(item, "--host", "ROLE=ADDR")
        if role not in HOST_ROLES:
            raise ResetlensError(f"unknown host role {role!r} (one of: {', '.join(HOST_ROLES)})")
        host = by_role.setdefault(role, HostSpec(role, role))
        host.addresses.append(addr)
    bundle.hosts = list(by_role.values())
    if not bundle.captures:
        raise ResetlensError("give a bundle folder or at least one --capture VANTAGE=PATH")
    return bundle


def _split(item: str, flag: str, form: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key or not value:
        raise ResetlensError(f"{flag} takes {form}, got {item!r}")
    return key.strip(), value.strip()


def _stem(path: Path) -> str:
    name = path.name
    if name.endswith(".gz"):
        name = name[:-3]
    return name.rsplit(".", 1)[0] if "." in name else name


def is_capture(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith(CAPTURE_SUFFIXES):
        return True
    if path.suffix:  # a named non-capture file (.log, .json, ...): do not sniff
        return False
    return has_capture_magic(path)


def has_capture_magic(path: Path) -> bool:
    """The file starts like a capture (pcap, pcapng or gzip)."""
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return any(head.startswith(m) for m in CAPTURE_MAGICS)


def guess_log_kind(path: Path) -> str | None:
    """Recognise a log by its name when there is no manifest; None = not a log we know."""
    name = path.name.lower()
    if "nginx" in name or name in ("error.log", "access.log"):
        return "nginx-error" if "error" in name else "nginx-access" if "access" in name else None
    if "haproxy" in name:
        return "haproxy"
    if "envoy" in name:
        return "envoy"
    if "journal" in name:
        if name.endswith(".journal"):
            return "journal-binary"
        if name.endswith((".json", ".jsonl")):
            return "journald-json"
        if name.endswith(".export"):
            return "journald-export"
        return "journald-text"
    if name.endswith((".log", ".txt")) and "snapshot" not in str(path.parent).lower():
        return "app"
    return None


def _discover(root: Path) -> Bundle:
    bundle = Bundle(root=root.resolve())
    seen: dict[str, int] = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        rel = p.relative_to(root)
        if rel.parts and rel.parts[0] in ("snapshots", "reports"):
            continue
        if is_capture(p):
            vantage = _stem(p)
            n = seen.get(vantage, 0)
            seen[vantage] = n + 1
            if n:
                vantage = f"{vantage}-{n + 1}"  # two files with one stem in different folders
            bundle.captures.append(CaptureSpec(vantage, [p.resolve()]))
        elif p.name not in ("truth.json", MANIFEST):
            kind = guess_log_kind(p)
            if kind:
                bundle.logs.append(LogSpec(p.resolve(), kind))
    return bundle


def _from_manifest(root: Path, manifest: Path) -> Bundle:
    try:
        data = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"not valid TOML: {e}", path=str(manifest)) from None
    bundle = Bundle(root=root.resolve())
    bundle.title = str(data.get("title", ""))
    bundle.timezone = str(data.get("timezone", "UTC"))
    ref = data.get("reference")
    bundle.reference = str(ref) if ref else None
    where = str(manifest)

    def table_list(key: str) -> list[dict]:
        items = data.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ManifestError(f"[[{key}]] must be an array of tables", path=where)
        return items

    for item in table_list("host"):
        name = _required(item, "name", "host", where)
        role = str(item.get("role", "other"))
        if role not in HOST_ROLES:
            raise ManifestError(
                f"host {name!r}: unknown role {role!r} (one of {', '.join(HOST_ROLES)})", path=where
            )
        addrs = item.get("addresses", [])
        if not isinstance(addrs, list):
            raise ManifestError(f"host {name!r}: addresses must be a list", path=where)
        bundle.hosts.append(HostSpec(name, role, [str(a) for a in addrs]))
    host_names = {h.name for h in bundle.hosts}
    vantages: set[str] = set()
    for item in table_list("capture"):
        vantage = _required(item, "vantage", "capture", where)
        if vantage in vantages:
            raise ManifestError(f"capture vantage {vantage!r} is listed twice", path=where)
        vantages.add(vantage)
        raw_paths = item.get("paths") or [_required(item, "path", "capture", where)]
        paths = []
        for rp in raw_paths:
            p = (root / str(rp)).resolve()
            if not p.is_file():
                raise ManifestError(f"capture {vantage!r}: file not found: {rp}", path=where)
            paths.append(p)
        host = item.get("host")
        if host is not None and host_names and host not in host_names:
            bundle.warnings.append(f"capture {vantage!r} names host {host!r} that no [[host]] defines")
        bundle.captures.append(CaptureSpec(vantage, paths, str(host) if host else None))
    for item in table_list("log"):
        rp = _required(item, "path", "log", where)
        kind = str(item.get("kind", "")) or guess_log_kind(Path(rp)) or ""
        if kind not in LOG_KINDS:
            raise ManifestError(
                f"log {rp!r}: unknown kind {kind!r} (one of {', '.join(LOG_KINDS)})", path=where
            )
        p = (root / rp).resolve()
        if not p.is_file():
            bundle.warnings.append(f"log {rp} is listed in {MANIFEST} but does not exist")
            continue
        fmt = item.get("format")
        host = item.get("host")
        bundle.logs.append(LogSpec(p, kind, str(host) if host else None, str(fmt) if fmt else None))
    if not bundle.captures:
        # A manifest with hosts and logs only: captures still come from discovery.
        bundle.captures = _discover(root).captures
    return bundle


def _required(item: dict, key: str, table: str, where: str) -> str:
    value = item.get(key)
    if not value:
        raise ManifestError(f"a [[{table}]] entry has no {key!r}", path=where)
    return str(value)
