"""journald: `journalctl -o json`, `-o export`, the short text outputs, and binary `.journal` files.

Classifies PID 1's unit lifecycle messages (by MESSAGE_ID first, text second; the subject unit is in
`UNIT=`/`USER_UNIT=`, not `_SYSTEMD_UNIT`, which is init.scope), kernel lines (OOM killer, SYN
flooding, conntrack table full, netfilter LOG, orphaned sockets, tcp_mem) and, for every other
message, the application error rules of app.py. Formats: docs/JOURNAL_EXPORT_FORMATS.md.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from collections.abc import Iterable
from typing import Any

from resetlens.evidence import app, events
from resetlens.evidence.base import ANSI_RE, LogRecord, Options, ParsedLog
from resetlens.evidence.syslog import parse_header

# MESSAGE_ID -> event (src/systemd/sd-messages.h).
MESSAGE_IDS = {
    "7d4958e842da4a758f6c1cdc7b36dcc5": events.UNIT_STARTING,  # SD_MESSAGE_UNIT_STARTING
    "39f53479d3a045ac8e11786248231fbf": events.UNIT_STARTED,  # SD_MESSAGE_UNIT_STARTED
    "de5b426a63be47a7b6ac3eaac82e2f6f": events.UNIT_STOPPING,  # SD_MESSAGE_UNIT_STOPPING
    "9d1aaa27d60140bd96365438aad20286": events.UNIT_STOPPED,  # SD_MESSAGE_UNIT_STOPPED
    "be02cf6855d2428ba40df7e9d022f03d": events.UNIT_START_FAILED,  # SD_MESSAGE_UNIT_FAILED (job)
    "98e322203f7a4ed290d09fe03c09fe15": events.UNIT_EXITED,  # SD_MESSAGE_UNIT_PROCESS_EXIT
    "d9b373ed55a64feb8242e02dbe79a49c": events.UNIT_FAILED,  # SD_MESSAGE_UNIT_FAILURE_RESULT
    "5eb03494b6584870a536b337290809b3": events.UNIT_RESTART_SCHEDULED,  # SD_MESSAGE_UNIT_RESTART_SCHEDULED
    "fe6faa94e7774663a0da52717891d8ef": events.UNIT_OOM,  # SD_MESSAGE_UNIT_OUT_OF_MEMORY
    "d989611b15e44c9dbf31e3c81256e4ed": events.OOMD_KILL,  # SD_MESSAGE_OOMD_KILL
    "7ad2d189f7e94e70a38c781354912448": events.UNIT_STOPPED,  # SD_MESSAGE_UNIT_SUCCESS ("Deactivated successfully.")
}

# PID 1's texts (src/core/job.c, service.c, unit.c): (pattern, event); group 1 is the unit or ident.
SYSTEMD_TEXT: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(\S+): Main process exited, code=(\w+), status=(\d+)(?:/(\S+))?"), events.UNIT_EXITED),
    (re.compile(r"^(\S+): Failed with result '([\w-]+)'\."), events.UNIT_FAILED),
    (
        re.compile(r"^(\S+): Scheduled restart job, restart counter is at (\d+)\."),
        events.UNIT_RESTART_SCHEDULED,
    ),
    (re.compile(r"^(\S+): A process of this unit has been killed by the OOM killer\."), events.UNIT_OOM),
    (re.compile(r"^(\S+): Deactivated successfully\."), events.UNIT_STOPPED),
    (re.compile(r"^Starting (.+?)(?:\.\.\.|…)$"), events.UNIT_STARTING),
    (re.compile(r"^Stopping (.+?)(?:\.\.\.|…)$"), events.UNIT_STOPPING),
    (re.compile(r"^Started (.+)\.$"), events.UNIT_STARTED),
    (re.compile(r"^Stopped (.+)\.$"), events.UNIT_STOPPED),
    (re.compile(r"^Failed to start (.+)\.$"), events.UNIT_START_FAILED),
    (re.compile(r"^Killed (\S+) due to"), events.OOMD_KILL),
]

# Kernel messages.
OOM_RE = re.compile(r"(Out of memory|Memory cgroup out of memory): Killed process (\d+) \(([^)]*)\)")
OOM_DETAIL_RE = re.compile(r"(total-vm|anon-rss|file-rss|shmem-rss|UID|pgtables|oom_score_adj):(-?\d+)")
SYN_FLOOD_RE = re.compile(
    r"(request_sock_TCP(?:v6)?|TCPv6|TCP): Possible SYN flooding on port (?:(\[[0-9A-Fa-f:.]+\]|[\d.]+):)?(\d+)\. ([^.]+)\."
)
CONNTRACK_FULL_RE = re.compile(r"nf_conntrack: (?:nf_conntrack: )?table full, dropping packet")
ORPHAN_RE = re.compile(r"too many (?:of )?orphaned sockets")
TCP_MEM_RE = re.compile(r"out of memory -- consider tuning tcp_mem")
# netfilter LOG (net/netfilter/nf_log_syslog.c): "<prefix>IN=eth0 OUT= ... SRC= DST= ... PROTO=TCP SPT= DPT= ..."
NF_LOG_RE = re.compile(
    r"(?P<prefix>.*?)\bIN=(?P<in>\S*) OUT=(?P<out>\S*) .*?\bSRC=(?P<src>\S+) DST=(?P<dst>\S+) "
)
NF_KV_RE = re.compile(r"\b([A-Z]{2,6})=(\S*)")
# TCP flag words nf_log prints before URGP=.
NF_FLAGS = ("CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN")

# journalctl's meta lines in text output ("-- Boot ... --", "-- No entries --").
META_RE = re.compile(r"^-- .* --$|^-- No entries --$")
# Export format: a binary field's length prefix (u64 little endian).
U64 = struct.Struct("<Q")
# Refuse absurd binary field sizes in export files (corrupt length).
MAX_FIELD = 64 << 20


def classify_kernel(message: str) -> tuple[str, dict[str, Any], tuple[str, int, str, int] | None] | None:
    """(event, fields, 4-tuple) for a kernel message resetlens cares about, else None."""
    m = OOM_RE.search(message)
    if m:
        fields: dict[str, Any] = {"oom": m[1], "pid": int(m[2]), "comm": m[3]}
        for k, v in OOM_DETAIL_RE.findall(message[m.end() :]):
            fields[k.lower().replace("-", "_")] = int(v)
        return events.OOM_KILL, fields, None
    m = SYN_FLOOD_RE.search(message)
    if m:
        addr = m[2].strip("[]") if m[2] else None
        return events.SYN_FLOOD, {"proto": m[1], "addr": addr, "port": int(m[3]), "action": m[4]}, None
    if CONNTRACK_FULL_RE.search(message):
        return events.CONNTRACK_FULL, {}, None
    if ORPHAN_RE.search(message):
        return events.ORPHAN_SOCKETS, {}, None
    if TCP_MEM_RE.search(message):
        return events.TCP_MEM_PRESSURE, {}, None
    m = NF_LOG_RE.search(message)
    if m:
        kv = dict(NF_KV_RE.findall(message[m.start("in") - 3 :]))
        fields = {
            "prefix": m["prefix"].strip(),
            "in": m["in"],
            "out": m["out"],
            "src": m["src"],
            "dst": m["dst"],
        }
        for key in ("PROTO", "SPT", "DPT", "TTL", "ID", "LEN", "WINDOW", "SEQ", "ACK"):
            if key in kv:
                fields[key.lower()] = int(kv[key]) if kv[key].isdigit() else kv[key]
        tail = message.split(" URGP=")[0]
        fields["flags"] = [f for f in NF_FLAGS if f" {f} " in tail + " " or tail.endswith(" " + f)]
        tuple4 = None
        if isinstance(fields.get("spt"), int) and isinstance(fields.get("dpt"), int):
            tuple4 = (m["src"], fields["spt"], m["dst"], fields["dpt"])
        return events.FIREWALL_LOG, fields, tuple4
    return None


def classify_systemd(message: str) -> tuple[str, dict[str, Any]] | None:
    """(event, fields) for a PID-1 text message; fields["unit"] is the unit (or its description)."""
    for pattern, event in SYSTEMD_TEXT:
        m = pattern.search(message)
        if not m:
            continue
        fields: dict[str, Any] = {"unit": m[1]}
        if event == events.UNIT_EXITED:
            fields.update(exit_code=m[2], exit_status=int(m[3]))
            if m[4]:
                fields["exit_status_name"] = m[4]
            if m[2] in ("killed", "dumped"):  # status is a signal: the kernel closed the process's sockets
                fields["signal"] = f"SIG{m[4]}" if m[4] else int(m[3])
        elif event == events.UNIT_FAILED:
            fields["result"] = m[2]
        elif event == events.UNIT_RESTART_SCHEDULED:
            fields["n_restarts"] = int(m[2])
        return event, fields
    return None


def classify_message(
    ident: str | None, message: str, transport: str | None = None
) -> tuple[str, dict[str, Any], tuple[str, int, str, int] | None] | None:
    """(event, fields, 4-tuple) for any journal or syslog message, by who wrote it."""
    if ident == "kernel" or transport == "kernel":
        found = classify_kernel(message)
        if found:
            return found
    if ident in ("systemd", "init", "systemd-oomd"):
        got = classify_systemd(message)
        if got:
            return got[0], got[1], None
    if ident and ident.startswith("haproxy"):
        from resetlens.evidence import haproxy  # haproxy imports nothing from here

        rec = haproxy.payload_record(message)
        if rec is not None:
            return rec
    if ident and ident.startswith("nginx"):
        from resetlens.evidence import nginx  # nginx's error log through syslog or stderr

        m = nginx.ERROR_RE.search(message)
        event, fields = nginx.classify_error(m[11] if m else message.lstrip("*0123456789 "))
        if event:
            if m and m[10]:
                fields["connection"] = int(m[10])
            return event, fields, None
    found = app.classify(message)
    if found:
        cls, fields, tuple4 = found
        fields["class"] = cls
        return events.APP_CLASSES[cls], fields, tuple4
    return None


# -- -o json / export / binary -----------------------------------------------------------------


def _value(v: Any) -> str | list[str] | None:
    """A JSON field value as text: strings stay, byte arrays decode, repeated fields become lists."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, list):
        if all(isinstance(b, int) for b in v):
            try:
                return bytes(b & 0xFF for b in v).decode("utf-8", "replace")
            except (TypeError, ValueError):
                return None
        return [x for x in (_value(item) for item in v) if isinstance(x, str)]
    return str(v)


def _first(v: str | list[str] | None) -> str | None:
    if isinstance(v, list):
        return v[0] if v else None
    return v


def entry_record(n: int, entry: dict[str, Any], log: ParsedLog, opts: Options) -> LogRecord | None:
    """A record for one journal entry (fields already decoded to text); None when it says nothing."""
    get = {k: _first(v) for k, v in entry.items()}
    message = get.get("MESSAGE")
    ts_us = get.get("_SOURCE_REALTIME_TIMESTAMP") or get.get("__REALTIME_TIMESTAMP")
    ts = int(ts_us) / 1e6 if ts_us and ts_us.isdigit() else None
    host = get.get("_HOSTNAME") or opts.host
    ident = get.get("SYSLOG_IDENTIFIER") or get.get("_COMM")
    pid = get.get("_PID") or get.get("SYSLOG_PID")
    unit_self = get.get("_SYSTEMD_UNIT") or get.get("_SYSTEMD_USER_UNIT")
    if (
        unit_self
        and pid
        and pid.isdigit()
        and unit_self not in ("init.scope",)
        and not unit_self.startswith("user@")
    ):
        log.meta.setdefault("unit_pids", {}).setdefault(unit_self, set()).add(int(pid))
    if message is None:
        if entry.get("MESSAGE", "") is None:
            log.warn("some MESSAGE fields were null (over 4096 bytes): export with journalctl --all")
        return None
    message = ANSI_RE.sub("", message)
    event = MESSAGE_IDS.get(get.get("MESSAGE_ID") or "")
    fields: dict[str, Any] = {}
    tuple4 = None
    if event:
        if event in events.LIFECYCLE or event.startswith("unit_"):
            got = classify_systemd(message)
            if got:
                fields.update(got[1])
    else:
        found = classify_message(ident, message, get.get("_TRANSPORT"))
        if found is None:
            return None
        event, fields, tuple4 = found
    subject = get.get("UNIT") or get.get("USER_UNIT")
    if subject:
        fields["unit"] = subject
    for key, name in (
        ("EXIT_CODE", "exit_code"),
        ("EXIT_STATUS", "exit_status"),
        ("UNIT_RESULT", "result"),
        ("JOB_RESULT", "job_result"),
        ("JOB_TYPE", "job_type"),
        ("N_RESTARTS", "n_restarts"),
        ("INVOCATION_ID", "invocation_id"),
        ("MESSAGE_ID", "message_id"),
        ("_SYSTEMD_UNIT", "systemd_unit"),
        ("_TRANSPORT", "transport"),
        ("PRIORITY", "priority"),
        ("_COMM", "comm"),
    ):
        if get.get(key):
            value: Any = get[key]
            if name in ("exit_status", "n_restarts") and str(value).isdigit():
                value = int(value)
            fields[name] = value
    if pid and pid.isdigit():
        fields["pid"] = int(pid)
    if get.get("__REALTIME_TIMESTAMP", "").isdigit():
        fields["received_ts"] = int(get["__REALTIME_TIMESTAMP"]) / 1e6
    pid_txt = f"[{pid}]" if pid else ""
    text = f"{host or '-'} {ident or '-'}{pid_txt}: {message}"
    return LogRecord(n, ts, text, log.kind, host, event, fields, tuple4)


def parse_json(lines: Iterable[str], log: ParsedLog, opts: Options) -> ParsedLog:
    """`journalctl -o json` (also json-seq and json-pretty one per line is not supported: use -o json)."""
    log.resolution = 1e-6
    for n, line in enumerate(lines, 1):
        log.lines_total += 1
        s = line.strip().lstrip("\x1e")
        if not s:
            log.lines_total -= 1
            continue
        try:
            obj = json.loads(s)
        except (ValueError, RecursionError):
            log.bad(n, "not a JSON object", line)
            continue
        if not isinstance(obj, dict):
            log.bad(n, "JSON value is not an object", line)
            continue
        entry = {str(k): _value(v) for k, v in obj.items()}
        if "MESSAGE" in obj and obj["MESSAGE"] is None:
            entry["MESSAGE"] = None
        record = entry_record(n, entry, log, opts)
        if record is None:
            log.ignored += 1
        else:
            log.records.append(record)
    _freeze(log)
    return log


def parse_export(data: bytes, log: ParsedLog, opts: Options) -> ParsedLog:
    """`journalctl -o export`: NAME=value lines, binary fields as NAME, u64 LE size, data; blank line ends an entry."""
    log.resolution = 1e-6
    pos = 0
    line_no = 1
    size = len(data)
    entry: dict[str, Any] = {}
    entry_line = 1

    def finish() -> None:
        nonlocal entry
        if entry:
            log.lines_total += 1
            record = entry_record(entry_line, entry, log, opts)
            if record is None:
                log.ignored += 1
            else:
                log.records.append(record)
        entry = {}

    while pos < size:
        nl = data.find(b"\n", pos)
        if nl < 0:
            nl = size
        raw = data[pos:nl]
        if not raw:
            finish()
            pos = nl + 1
            line_no += 1
            entry_line = line_no
            continue
        eq = raw.find(b"=")
        if eq > 0:
            name = raw[:eq].decode("ascii", "replace")
            value = raw[eq + 1 :].decode("utf-8", "replace")
            pos = nl + 1
            line_no += 1
        elif eq < 0 and nl + 1 + 8 <= size and raw.replace(b"_", b"").isalnum():
            (length,) = U64.unpack_from(data, nl + 1)
            start = nl + 1 + 8
            if length > MAX_FIELD or start + length > size:
                log.bad(
                    line_no,
                    f"binary field {raw[:40]!r} has a bad length {length} (byte {nl + 1})",
                    raw.decode("utf-8", "replace"),
                )
                entry = {}
                resync = data.find(b"\n\n", start)
                if resync < 0:
                    break
                line_no += data.count(b"\n", pos, resync + 2)
                pos = resync + 2
                entry_line = line_no
                continue
            name = raw.decode("ascii", "replace")
            blob = data[start : start + length]
            value = blob.decode("utf-8", "replace")
            line_no += 1 + data.count(b"\n", nl + 1, start + length + 1)
            pos = start + length + 1 if data[start + length : start + length + 1] == b"\n" else start + length
        else:
            log.bad(line_no, "not a NAME=value field", raw.decode("utf-8", "replace"))
            pos = nl + 1
            line_no += 1
            continue
        prev = entry.get(name)
        if prev is None:
            entry[name] = value
        elif isinstance(prev, list):
            prev.append(value)
        else:
            entry[name] = [prev, value]
    finish()
    _freeze(log)
    return log


def parse_text(lines: Iterable[str], log: ParsedLog, opts: Options) -> ParsedLog:
    """`journalctl -o short|short-precise|short-iso|short-iso-precise|short-unix` and syslog files."""
    finest = 1.0
    last: LogRecord | None = None
    for n, line in enumerate(lines, 1):
        log.lines_total += 1
        if not line.strip() or META_RE.match(line):
            log.ignored += 1
            continue
        if line[:1] in (" ", "\t") and last is not None:
            last.text += "\n" + line.strip()  # continuation of a multi-line message
            log.ignored += 1
            continue
        header = parse_header(line, opts)
        if header is None:
            log.bad(n, "no syslog/journalctl time at the start", line)
            continue
        if header.precise:
            finest = min(finest, 1e-6)
        host = header.host or opts.host
        found = classify_message(header.ident, header.message)
        if found is None:
            log.ignored += 1
            last = None
            continue
        event, fields, tuple4 = found
        if header.ident:
            fields.setdefault("ident", header.ident)
        if header.pid is not None:
            fields.setdefault("pid", header.pid)
        last = LogRecord(n, header.ts, line, log.kind, host, event, fields, tuple4)
        log.records.append(last)
    log.resolution = finest
    return log


def parse_binary(path: str, log: ParsedLog, opts: Options) -> ParsedLog:
    """A `.journal` file, through `journalctl --file -o export` or else the systemd Python bindings."""
    exe = shutil.which("journalctl")
    if exe:
        try:
            proc = subprocess.run(
                [exe, "--file", path, "-o", "export", "--all", "--no-pager"],
                capture_output=True,
                timeout=600,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warn(f"{path}: journalctl --file failed: {exc}")
            return log
        if proc.returncode != 0 and not proc.stdout:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            log.warn(f"{path}: journalctl --file could not read it: {err[0] if err else proc.returncode}")
            return log
        return parse_export(proc.stdout, log, opts)
    try:
        from systemd import journal  # type: ignore[import-not-found]
    except ImportError:
        log.warn(
            f"{path}: binary journal needs journalctl or the systemd Python bindings (pip install "
            "'resetlens[journal]'); or export it where journalctl exists: journalctl --file FILE -o json > FILE.json"
        )
        return log
    log.resolution = 1e-6
    reader = journal.Reader(files=[path], converters={})  # raw values: no naive local datetimes
    for n, raw in enumerate(reader, 1):
        log.lines_total += 1
        entry = {
            k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)) for k, v in raw.items()
        }
        record = entry_record(n, entry, log, opts)
        if record is None:
            log.ignored += 1
        else:
            log.records.append(record)
    _freeze(log)
    return log


def _freeze(log: ParsedLog) -> None:
    """Make meta JSON-friendly (sets to sorted lists)."""
    pids = log.meta.get("unit_pids")
    if pids:
        log.meta["unit_pids"] = {u: sorted(p) for u, p in pids.items()}
