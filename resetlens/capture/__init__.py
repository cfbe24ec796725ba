"""Capture reader: pcap / pcapng (optionally gzip) -> the columnar packet table of TCP segments."""

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
