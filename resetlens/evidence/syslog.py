"""Syslog-style line headers: RFC 3164, RFC 5424, HAProxy `local`, and journalctl's short outputs.

    [<PRI>][1 ]<time> [<host>] <ident>[<pid>]: <message>

`<time>` is `Dec 31 01:58:12[.345678]` (no year, no zone: the manifest timezone and the file's
year), ISO 8601 with an offset (`short-iso`, `+00:00` or older `+0000`), or epoch (`short-unix`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from resetlens.evidence.base import ISO_RE, MONTHS, Options, iso_epoch, local_epoch

# Optional priority and RFC 5424 version.
PRI_RE = re.compile(r"<(\d{1,3})>(?:1 )?")
# BSD time: month day hh:mm:ss[.frac].
BSD_TIME_RE = re.compile(r"([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))? ")
# journalctl -o short-unix: epoch with fraction.
UNIX_TIME_RE = re.compile(r"(\d{9,11}\.\d{1,9}) ")
# ident[pid]: or ident: (the tag), after the optional host.
TAG_RE = re.compile(r"([^\s\[\]:]{1,128})(?:\[(\d{1,10})\])?: ?")
# RFC 5424 after the time: host app procid msgid structured-data.
RFC5424_RE = re.compile(r"(\S+) (\S+) (\S+) (\S+) (-|(?:\[[^\]]*\])+) ?")


@dataclass
class Header:
    ts: float | None
    host: str | None
    ident: str | None
    pid: int | None
    message: str
    precise: bool  # the time had a sub-second fraction
    pri: int | None = None


def parse_header(line: str, opts: Options) -> Header | None:
    """Split a syslog-style line into its header and message; None when it has no recognisable time."""
    pos = 0
    pri = None
    rfc5424 = False
    m = PRI_RE.match(line)
    if m:
        pri = int(m[1])
        rfc5424 = m[0].endswith("1 ")
        pos = m.end()
    ts: float | None
    precise = False
    m = BSD_TIME_RE.match(line, pos)
    if m:
        month = MONTHS.get(m[1])
        if month is None:
            return None
        frac = float("0." + m[6]) if m[6] else 0.0
        precise = bool(m[6])
        ts = local_epoch(
            opts.year_for(month), month, int(m[2]), int(m[3]), int(m[4]), int(m[5]), frac, opts.tz
        )
        pos = m.end()
    else:
        m = ISO_RE.match(line, pos)
        if m and line[m.end() : m.end() + 1] == " ":
            ts = iso_epoch(m, opts.tz)
            precise = bool(m[7])
            pos = m.end() + 1
        else:
            m = UNIX_TIME_RE.match(line, pos)
            if not m:
                return None
            ts = float(m[1])
            precise = True
            pos = m.end()
    if rfc5424:
        m = RFC5424_RE.match(line, pos)
        if m:
            host = None if m[1] == "-" else m[1]
            pid = int(m[3]) if m[3].isdigit() else None
            return Header(ts, host, None if m[2] == "-" else m[2], pid, line[m.end() :], precise, pri)
    # The tag may come right away (HAProxy `local`, no host) or after the host.
    host = None
    m = TAG_RE.match(line, pos)
    if not m:
        sp = line.find(" ", pos)
        if sp < 0:
            return Header(ts, None, None, None, line[pos:], precise, pri)
        host = line[pos:sp]
        pos = sp + 1
        m = TAG_RE.match(line, pos)
    if not m:
        return Header(ts, host, None, None, line[pos:], precise, pri)
    return Header(ts, host, m[1], int(m[2]) if m[2] else None, line[m.end() :], precise, pri)
