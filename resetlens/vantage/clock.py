"""Clock offsets between captures, from packets seen at both.

Never assume clocks agree. A packet copy seen at capture R (reference) and capture X gives
d = ts_X - ts_R = theta + delay when it travelled R -> X, and theta - delay when it travelled
X -> R (theta = X's clock minus R's clock, delay >= 0). So theta lies between the largest d of
the X -> R direction and the smallest d of the R -> X direction: the midpoint is the estimate and
half the gap is the error bar (the minimum one-way delay bound, as NTP reasons).

Copies are matched on header values a router does not change and NAT does not touch: IPv4 ID,
SEQ, ACK, flags and payload length (addresses and ports may be rewritten). Keys seen more than
once at one capture (retransmissions, `-i any` doubles) are reduced to their first copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from resetlens.capture.table import ACK, FIN, PSH, RST, SYN, flow_key

# Only these flag bits take part in the match key (ECN bits may be rewritten on the path).
KEY_FLAGS = SYN | ACK | FIN | RST | PSH
# Fewer matched copies than this gives an offset with a warning only.
MIN_MATCHES = 3
# When both directions are not available the bound is one-sided: report this error bar at least.
ONE_SIDED_ERROR = 0.05


@dataclass
class ClockEstimate:
    """The offset to ADD to a capture's own times to put them on the reference clock."""

    offset: float  # seconds to add (= -theta)
    error: float | None  # ± seconds, None when not estimated
    matches: int  # packet copies the estimate rests on
    method: str  # "reference", "matched packets", "one-sided", "none"
    note: str = ""


def match_key(table: np.ndarray) -> np.ndarray:
    """A 64-bit content key of each packet that survives routing and NAT."""
    with np.errstate(over="ignore"):
        k = table["seq"].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        k ^= table["ack"].astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
        k ^= table["ip_id"].astype(np.uint64) * np.uint64(0x165667B19E3779F9)
        k ^= (table["flags"] & KEY_FLAGS).astype(np.uint64) << np.uint64(48)
        k ^= table["payload_len"].astype(np.uint64) * np.uint64(0x27D4EB2F165667C5)
    return k


def _first_copies(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys and row indexes of each distinct key's first copy; keys repeated with a gap are dropped."""
    keys = match_key(table)
    order = np.lexsort((table["ts"], keys))
    sk = keys[order]
    first = np.ones(len(sk), dtype=bool)
    first[1:] = sk[1:] != sk[:-1]
    # A key that recurs later than a `-i any` double (retransmission) is ambiguous: drop it.
    ts = table["ts"][order]
    ambiguous = np.zeros(len(sk), dtype=bool)
    same_next = np.zeros(len(sk), dtype=bool)
    same_next[:-1] = (sk[1:] == sk[:-1]) & (ts[1:] - ts[:-1] > 0.002)
    grp = np.cumsum(first) - 1
    if same_next.any():
        bad_groups = np.unique(grp[same_next])
        ambiguous = np.isin(grp, bad_groups)
    keep = first & ~ambiguous
    return sk[keep], order[keep]


def estimate(ref: np.ndarray, other: np.ndarray) -> ClockEstimate:
    """Offset for `other` against `ref` (both packet tables of anchor packets)."""
    if len(ref) == 0 or len(other) == 0:
        return ClockEstimate(0.0, None, 0, "none", "no packets to compare")
    rk, ri = _first_copies(ref)
    ok, oi = _first_copies(other)
    common, ra, oa = np.intersect1d(rk, ok, assume_unique=True, return_indices=True)
    if len(common) == 0:
        return ClockEstimate(0.0, None, 0, "none", "no packet was seen at both captures")
    r_rows = ref[ri[ra]]
    o_rows = other[oi[oa]]
    d = o_rows["ts"] - r_rows["ts"]
    # Direction of each copy: group by (connection, sender) as written at the reference capture.
    conn = flow_key(r_rows)
    sender = r_rows["src_lo"] ^ (r_rows["sport"].astype(np.uint64) << np.uint64(3))
    upper: list[float] = []  # minima of d for groups that travelled ref -> other (d = theta + delay)
    lower: list[float] = []  # maxima of d for groups that travelled other -> ref (d = theta - delay)
    single: list[float] = []
    for c in np.unique(conn):
        sel = conn == c
        senders = np.unique(sender[sel])
        if len(senders) < 2:
            single.append(float(np.median(d[sel])))
            continue
        meds = [(float(np.median(d[sel & (sender == s)])), s) for s in senders[:2]]
        meds.sort()
        lo_s, hi_s = meds[0][1], meds[1][1]
        lower.append(float(d[sel & (sender == lo_s)].max()))
        upper.append(float(d[sel & (sender == hi_s)].min()))
    n = len(common)
    if upper and lower:
        hi = min(upper)
        lo = max(lower)
        if lo <= hi:
            theta = (lo + hi) / 2
            return ClockEstimate(-theta, (hi - lo) / 2, n, "matched packets")
        # Bounds cross: clock drift during the capture or asymmetric matches; fall back to the median.
        theta = float(np.median(d))
        return ClockEstimate(
            -theta,
            float(lo - hi) / 2 + ONE_SIDED_ERROR,
            n,
            "matched packets",
            "one-way delay bounds disagree (drift?); median used",
        )
    theta = float(np.median(d))
    spread = float(np.max(d) - np.min(d)) / 2 if n > 1 else 0.0
    note = "" if n >= MIN_MATCHES else f"only {n} packet(s) seen at both captures"
    return ClockEstimate(-theta, max(spread, ONE_SIDED_ERROR), n, "one-sided", note)


def align(anchors: dict[str, np.ndarray], reference: str) -> dict[str, ClockEstimate]:
    """Offsets of every capture against the reference; captures with no overlap with the reference
    are tied through another capture that overlaps both (offsets add, errors add)."""
    result: dict[str, ClockEstimate] = {reference: ClockEstimate(0.0, 0.0, 0, "reference")}
    pending = [v for v in anchors if v != reference]
    progress = True
    while pending and progress:
        progress = False
        for v in list(pending):
            best: tuple[ClockEstimate, str] | None = None
            for base, base_est in result.items():
                if base_est.method == "none":
                    continue
                est = estimate(anchors[base], anchors[v])
                if est.method == "none":
                    continue
                if best is None or est.matches > best[0].matches:
                    combined_err = None
                    if est.error is not None and base_est.error is not None:
                        combined_err = est.error + base_est.error
                    via = "" if base == reference else f" (through {base})"
                    best = (
                        ClockEstimate(
                            est.offset + base_est.offset,
                            combined_err,
                            est.matches,
                            est.method,
                            (est.note + via).strip(),
                        ),
                        base,
                    )
            if best is not None:
                result[v] = best[0]
                pending.remove(v)
                progress = True
    for v in pending:
        result[v] = ClockEstimate(
            0.0, None, 0, "none", "no packet in common with any aligned capture; its clock is taken as is"
        )
    return result
