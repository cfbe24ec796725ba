"""Capture reader: pcap / pcapng (optionally gzip) -> the columnar packet table of TCP segments.

    reader = open_capture(path)             # checks the file header; CaptureError if nothing is usable
    for chunk in reader.chunks():           # one chunk per 4 MiB block, frame order
        chunk.table                         # PACKET_DTYPE rows, one per TCP segment (table.py)
        chunk.segments                      # frame -> TCP header + captured payload, RST rows only
    reader.info                             # CaptureInfo, complete once chunks() is exhausted
    rows, segs = reader.read_at(offsets, frames)  # second pass: pread only those records

    table, segments, info = read_table(path)      # the whole capture at once
    frames = extract_frames(path, {12, 40})       # raw frames (for report snippets) ...
    write_pcap(out, frames)                       # ... written as ns pcap, or pcapng for mixed link types

Frame numbers are 1-based over all frames, as Wireshark counts. The `iface` column is a global
interface index over all pcapng sections (CaptureInfo.interfaces[i].id). Bad input never raises
anything but CaptureError (only when nothing is usable); otherwise problems become one-line
`info.warnings` naming the byte offset, and the valid part is kept.

Speed: `_cwalk.c` (built by setup.py when a C compiler exists; RESETLENS_PURE_PYTHON=1 disables it)
does the record walk and header decode; without it, a Python offset walk plus numpy gathers give the
same table, bit for bit.
"""

from resetlens.capture.frames import RawFrame, extract_frames, write_pcap
from resetlens.capture.reader import (
    CaptureInfo,
    CaptureReader,
    Interface,
    PacketChunk,
    open_capture,
    read_table,
)

__all__ = [
    "CaptureInfo",
    "CaptureReader",
    "Interface",
    "PacketChunk",
    "RawFrame",
    "extract_frames",
    "open_capture",
    "read_table",
    "write_pcap",
]
