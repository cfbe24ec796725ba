"""Raw frames out of a capture and back into a small one (per-reset pcap snippets in reports)."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

from resetlens.capture import formats as fmt
from resetlens.capture.reader import open_capture


@dataclass
class RawFrame:
    """One frame as stored in its capture."""

    frame: int  # 1-based frame number in the source capture
    ts: float
    linktype: int
    caplen: int
    wirelen: int
    data: bytes
    ts_ns: int | None = None  # exact time in nanoseconds when known (ts is a float approximation)


def extract_frames(path: str | os.PathLike[str], frames: set[int]) -> list[RawFrame]:
    """The frames with these numbers, in frame order (numbers past the end are ignored)."""
    reader = open_capture(path)
    wanted = np.array(sorted(frames), np.int64)
    out: list[RawFrame] = []
    if not len(wanted):
        return out
    for buf, _, groups in reader._blocks():
        for recs in groups:
            n = len(recs.offset)
            lo = np.searchsorted(wanted, recs.first_frame)
            hi = np.searchsorted(wanted, recs.first_frame + n)
            for number in wanted[lo:hi].tolist():
                i = number - recs.first_frame
                start = int(recs.data[i])
                caplen = int(recs.caplen[i])
                out.append(
                    RawFrame(
                        frame=number,
                        ts=float(recs.ts[i]),
                        linktype=int(recs.linktype[i]),
                        caplen=caplen,
                        wirelen=int(recs.wirelen[i]),
                        data=buf[start : start + caplen].tobytes(),
                        ts_ns=_exact_ns(recs, i),
                    )
                )
        if out and out[-1].frame >= wanted[-1]:
            break
    return out


def write_pcap(path: str | os.PathLike[str], frames: list[RawFrame]) -> None:
    """Classic nanosecond pcap when all frames share a link type, else pcapng (one IDB per link type)."""
    linktypes: list[int] = []
    for f in frames:
        if f.linktype not in linktypes:
            linktypes.append(f.linktype)
    with open(path, "wb") as out:
        if len(linktypes) <= 1:
            linktype = linktypes[0] if linktypes else 1
            snaplen = max([f.caplen for f in frames] + [fmt.STANDARD_MAX_CAPLEN])
            out.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, snaplen, linktype & 0xFFFF_FFFF))
            for f in frames:
                sec, nsec = _split_ns(f)
                out.write(struct.pack("<IIII", sec, nsec, len(f.data), max(f.wirelen, len(f.data))))
                out.write(f.data)
            return
        out.write(_block(fmt.BT_SHB, struct.pack("<IHHq", fmt.BYTE_ORDER_MAGIC, 1, 0, -1)))
        tsresol = struct.pack("<HHB3x", fmt.IF_TSRESOL, 1, 9) + struct.pack("<HH", 0, 0)
        for linktype in linktypes:
            out.write(_block(fmt.BT_IDB, struct.pack("<HHI", linktype & 0xFFFF, 0, 0) + tsresol))
        for f in frames:
            units = _ns(f) & 0xFFFFFFFFFFFFFFFF
            body = struct.pack(
                "<IIIII", linktypes.index(f.linktype), units >> 32, units & 0xFFFFFFFF, len(f.data),
                max(f.wirelen, len(f.data)),
            )  # fmt: skip
            out.write(_block(fmt.BT_EPB, body + f.data + b"\0" * (fmt.pad4(len(f.data)) - len(f.data))))


def _exact_ns(recs, i: int) -> int | None:
    if recs.sec is None or recs.nsec is None or recs.sec[i] < 0:
        return None
    return int(recs.sec[i]) * 1_000_000_000 + int(recs.nsec[i])


def _ns(frame: RawFrame) -> int:
    if frame.ts_ns is not None:
        return max(0, frame.ts_ns)
    return max(0, round(frame.ts * 1e9)) if frame.ts == frame.ts else 0


def _split_ns(frame: RawFrame) -> tuple[int, int]:
    sec, nsec = divmod(_ns(frame), 1_000_000_000)
    return sec & 0xFFFFFFFF, nsec


def _block(btype: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)
