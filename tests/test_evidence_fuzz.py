"""Hostile input: random bytes, random lines and mangled real lines never make a parser raise."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resetlens import model
from resetlens.evidence import parse_bytes
from resetlens.evidence.base import Options
from resetlens.evidence.correlate import correlate
from resetlens.evidence.parse import KINDS
from resetlens.evidence.snapshots import parse_snapshot

FIX = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "logs")
BYTE_KINDS = [k for k in KINDS if k != "journal-binary"]
# Real lines of every format, to mangle: hypothesis cuts, splices and garbles them.
SAMPLES = []
for name in sorted(os.listdir(FIX)):
    path = os.path.join(FIX, name)
    if os.path.isfile(path):
        SAMPLES += [line for line in open(path, "rb").read().split(b"\n") if line][:40]
FORMATS = [
    None,
    "combined",
    "rl",
    '$remote_addr $upstream_addr [$time_local] "$request"',
    "%START_TIME% %RESPONSE_FLAGS% %UPSTREAM_HOST%",
]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(data: bytes, kind: str, fmt: str | None = None) -> None:
    log = parse_bytes(data, kind, opts=Options(fmt=fmt))
    assert log.unparsed + log.parsed <= max(log.lines_total, 0) + 1 or kind == "journald-export"
    assert len(log.examples) <= 5
    for r in log.records:
        assert r.line >= 1
        assert r.ts is None or isinstance(r.ts, float)
        assert isinstance(r.fields, dict)
    resets = [
        model.Reset(id="a", ts=1767146292.01, src="10.0.0.9", sport=8080, dst="10.0.0.2", dport=41830,
                    seen_at=[model.Sighting("v", 1767146292.01, 1, 64, 0, src="10.0.0.9", sport=8080, dst="10.0.0.2", dport=41830)]),
        model.Reset(id="b", ts=1767146294.0, src="203.0.113.7", sport=51514, dst="10.0.0.9", dport=22400),
    ]  # fmt: skip
    res = correlate(resets, [log], hosts=[model.Host("app-1", "server", ["10.0.0.9"])])
    assert len(res.sources) == 1


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from(BYTE_KINDS), st.sampled_from(FORMATS))
def test_random_bytes(data, kind, fmt):
    check(data, kind, fmt)


@FUZZ
@given(st.lists(st.text(max_size=200), max_size=20), st.sampled_from(BYTE_KINDS))
def test_random_text_lines(lines, kind):
    check("\n".join(lines).encode("utf-8", "surrogatepass"), kind)


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(SAMPLES), st.integers(0, 400), st.integers(0, 400), st.binary(max_size=8)),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from(BYTE_KINDS),
)
def test_mangled_real_lines(parts, kind):
    out = []
    for line, a, b, junk in parts:
        a, b = sorted((a % (len(line) + 1), b % (len(line) + 1)))
        out.append(line[:a] + junk + line[b:])
    check(b"\n".join(out), kind)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(
            ["ss", "nstat", "netstat", "nft", "conntrack-stats", "conntrack-count", "ip-link", "sysctl"]
        ),
        st.text(max_size=500),
    )
)
def test_random_snapshots(files):
    snap = parse_snapshot(files)
    assert isinstance(snap.counters, dict)
