"""Streaming capture reader: classic pcap (µs/ns, both byte orders), pcapng, optionally gzip-compressed.

The file is read in large blocks with `readinto` into one reusable buffer (memory stays bounded,
pipes and gzip work, nothing is mapped). Per block, a tight walk finds where every record starts
(`walk.py`, or the optional C accelerator), numpy gathers the record headers, and `decode.py`
gathers the link/IP/TCP fields of all frames at once. With the C accelerator, classic pcap blocks
and pcapng runs of enhanced packet blocks skip all that: one C call without the GIL walks and decodes
them into finished table rows (`decode.pcap_block`, `decode.pcapng_run`; the same values bit for bit).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from resetlens.capture import formats as fmt
from resetlens.capture import walk
from resetlens.capture.decode import (
    STOP_CHECK,
    STOP_PACKET,
    Decoded,
    PcapBlock,
    decode_block,
    pcap_block,
    pcap_block_available,
    pcapng_run,
)
from resetlens.capture.linktypes import SUPPORTED, linktype_name
from resetlens.capture.table import DIR_IN, DIR_OUT, PACKET_DTYPE
from resetlens.errors import CaptureError

BLOCK_SIZE = 4 << 20  # bytes read per block: small enough to stay in the CPU cache while it is decoded
SLACK = 64  # spare bytes after the data so clipped 8-byte gathers stay inside the buffer
MAX_RECORD = 64 << 20  # a record or block larger than this is corruption, not a packet
IFACE_MAX = 0xFFFF  # the table's iface column is 16-bit: later interfaces share the last value
GZIP_WBITS = 31  # zlib window bits that select the gzip container
GZIP_READ = 1 << 20  # compressed bytes read per step


@dataclass
class Interface:
    """One capture interface (classic pcap has exactly one)."""

    id: int  # global index over all pcapng sections, as the table's `iface` column
    linktype: int
    linktype_name: str
    tsresol: float  # seconds per timestamp tick
    name: str | None = None
    snaplen: int = 0
    section: int = 0
    ticks: int = fmt.DEFAULT_TSRESOL  # ticks per second (exact)
    tsoffset: int = 0  # if_tsoffset seconds


@dataclass
class CaptureInfo:
    """What the reader learnt about a capture; complete once `chunks()` is exhausted."""

    path: str
    format: str  # "pcap", "pcap-ns", "pcapng", with "+gzip" when compressed
    link_types: list[str] = field(default_factory=list)
    interfaces: list[Interface] = field(default_factory=list)
    packets: int = 0  # all frames
    tcp_packets: int = 0  # frames that gave a table row
    bytes: int = 0  # capture stream bytes consumed (after decompression)
    first_ts: float | None = None
    last_ts: float | None = None
    warnings: list[str] = field(default_factory=list)
    snaplen: int = 0  # classic pcap header snaplen (0 for pcapng)
    fragments_skipped: int = 0  # non-first IP fragments (no TCP header)


@dataclass
class PacketChunk:
    """One block's TCP rows (frame order) and the raw segments of its RST rows (frame -> bytes)."""

    table: np.ndarray
    segments: dict[int, bytes] = field(default_factory=dict)


@dataclass
class Records:
    """The frames of one block that share a byte order: where they are and their record headers."""

    offset: np.ndarray  # record header offset in the block buffer
    data: np.ndarray  # packet data offset in the block buffer
    caplen: np.ndarray
    wirelen: np.ndarray
    ts: np.ndarray
    iface: np.ndarray
    linktype: np.ndarray  # -1 when the record names no known interface
    direction: np.ndarray  # from pcapng epb_flags (DIR_*), 0 otherwise
    first_frame: int
    sec: np.ndarray | None = None  # exact time: whole seconds (for rewriting frames losslessly)
    nsec: np.ndarray | None = None  # and nanoseconds


class _GzipSource:
    """Incremental gzip decompression (multi-member) that keeps every byte before a corruption."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self.inflate = zlib.decompressobj(GZIP_WBITS)
        self.tail = b""  # compressed input not yet consumed
        self.error: str | None = None

    def readinto(self, mv: memoryview) -> int:
        want = len(mv)
        got = 0
        while got < want and self.error is None:
            if self.inflate.eof:  # end of one member: another may follow
                rest = self.inflate.unused_data or self.raw.read(GZIP_READ)
                if not rest.strip(b"\0"):
                    break
                if not rest.startswith(fmt.GZIP_MAGIC):
                    self.error = "garbage after the compressed stream"
                    break
                self.inflate = zlib.decompressobj(GZIP_WBITS)
                self.tail = rest
                continue
            data = self.tail or self.raw.read(GZIP_READ)
            if not data:
                self.error = "compressed stream ends before its end marker"
                break
            try:
                out = self.inflate.decompress(data, want - got)
            except zlib.error as exc:
                self.error = f"corrupt compressed data ({exc})"
                break
            self.tail = self.inflate.unconsumed_tail
            mv[got : got + len(out)] = out
            got += len(out)
        return got


class _Stream:
    """A readinto source over a plain or gzip file that turns read errors into a warning."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.raw = open(path, "rb", buffering=0)  # closed by close()
        except OSError as exc:
            raise CaptureError(f"cannot open: {exc.strerror or exc}", path=path) from None
        try:
            head = os.pread(self.raw.fileno(), 2, 0)
        except OSError as exc:
            self.raw.close()
            raise CaptureError(f"cannot read: {exc.strerror or exc}", path=path) from None
        self.gzip = head == fmt.GZIP_MAGIC
        self.src = _GzipSource(self.raw) if self.gzip else self.raw
        self.pos = 0  # stream bytes delivered
        self.error: str | None = None

    def readinto(self, mv: memoryview) -> int:
        """Fill mv as far as the stream goes; returns the bytes read (short only at the end)."""
        got = 0
        while got < len(mv) and self.error is None:
            try:
                n = self.src.readinto(mv[got:])
            except OSError as exc:
                self.error = f"file unreadable after byte {self.pos + got}: {exc.strerror or exc}"
                break
            got += n or 0
            if self.gzip and self.src.error:
                self.error = f"{self.src.error} (after {self.pos + got} decompressed bytes)"
            if not n:
                break
        self.pos += got
        return got

    def close(self) -> None:
        self.raw.close()


def open_capture(path: str | os.PathLike[str], block_size: int = BLOCK_SIZE) -> CaptureReader:
    """Open a capture and check its file header; raises CaptureError when nothing is usable."""
    return CaptureReader(os.fspath(path), block_size)


class CaptureReader:
    """Streams a capture as PacketChunks; `info` is filled as the stream is read."""

    def __init__(self, path: str, block_size: int = BLOCK_SIZE) -> None:
        self.path = path
        self.block_size = max(64, block_size)
        self._sections: list[tuple[int, bool, int]] = []  # pcapng: (SHB stream offset, little, iface base)
        self._complete = False  # a chunks() pass ran to its end (read_at needs its interfaces)
        self.info = CaptureInfo(path=path, format="")
        stream = _Stream(path)
        try:
            head = bytearray(fmt.SHB_MIN)
            got = stream.readinto(memoryview(head))
            self._probe(bytes(head[:got]), stream)
        finally:
            stream.close()

    def _probe(self, head: bytes, stream: _Stream) -> None:
        suffix = "+gzip" if stream.gzip else ""
        if not head:
            raise CaptureError(stream.error or "empty file", path=self.path, offset=0)
        magic = head[:4]
        if magic in fmt.PCAP_MAGICS:
            if len(head) < fmt.PCAP_HEADER:
                raise CaptureError("truncated pcap file header", path=self.path, offset=len(head))
            endian, nano, _ = fmt.PCAP_MAGICS[magic]
            self.kind = "pcap"
            self.info.format = ("pcap-ns" if nano else "pcap") + suffix
            linktype = struct.unpack_from(endian + "I", head, 20)[0] & fmt.PCAP_LINKTYPE_MASK
            if linktype not in SUPPORTED:
                raise CaptureError(
                    f"unsupported link type {linktype} ({linktype_name(linktype)})", path=self.path, offset=20
                )
        elif magic == struct.pack("<I", fmt.BT_SHB):
            if len(head) < fmt.SHB_MIN:
                raise CaptureError("truncated pcapng section header", path=self.path, offset=len(head))
            bom = head[8:12]
            if bom not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                raise CaptureError("bad pcapng byte-order magic", path=self.path, offset=8)
            self.kind = "pcapng"
            self.info.format = "pcapng" + suffix
        else:
            hexed = " ".join(f"{b:02x}" for b in magic)
            raise CaptureError(f"not a pcap or pcapng file (magic {hexed})", path=self.path, offset=0)

    # -- streaming -------------------------------------------------------------------------------

    def chunks(self) -> Iterator[PacketChunk]:
        """Decode the whole capture block by block (each call starts again from the beginning)."""
        self.info = CaptureInfo(path=self.path, format=self.info.format)
        self._sections = []
        self._complete = False
        self._first_fragment: int | None = None
        unknown: dict[int, list[int]] = {}  # linktype -> [frames, first stream offset]
        for buf, base, parts in self._blocks(fused=True):
            tables = []
            segments: dict[int, bytes] = {}
            for recs in parts:
                if isinstance(recs, PcapBlock):  # walked and decoded in one C call
                    self._note_block(recs, unknown)
                    tables.append(recs.table)
                    segments.update(recs.segments)
                    continue
                n = len(recs.offset)
                if not n:
                    continue
                self.info.packets += n
                self._note_ts(recs.ts)
                good = np.isin(recs.linktype, list(SUPPORTED))
                if not good.all():
                    self._note_unknown(recs, good, base, unknown)
                    idx = np.flatnonzero(good)
                else:
                    idx = None
                dec = self._decode(buf, recs, idx)
                table = _table(dec, recs, idx, base)
                self.info.fragments_skipped += dec.fragments_skipped
                if dec.first_fragment >= 0 and self._first_fragment is None:
                    pos = dec.first_fragment if idx is None else int(idx[dec.first_fragment])
                    self._first_fragment = base + int(recs.offset[pos])
                for rec, seg in dec.segments.items():
                    pos = rec if idx is None else int(idx[rec])
                    segments[recs.first_frame + pos] = seg
                tables.append(table)
            if tables:
                table = tables[0] if len(tables) == 1 else np.concatenate(tables)
                self.info.tcp_packets += len(table)
                yield PacketChunk(table, segments)
        self._finish(unknown)
        self._complete = True

    # -- pass 2: random access -----------------------------------------------------------------

    def read_at(self, offsets: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, dict[int, bytes]]:
        """Table rows of only the records at these stream offsets, numbered with these frames.

        For a second pass: keep `offset` and `frame` of the rows you need from the first pass (after
        `chunks()` is exhausted), then re-read just those records with pread instead of the whole
        file. Gzip captures cannot seek, so for them the stream is decoded again and filtered.
        """
        if not getattr(self, "_complete", False):
            raise RuntimeError("read_at() needs a completed chunks() pass first")  # a caller's bug
        offsets = np.asarray(offsets, np.int64)
        frames = np.asarray(frames, np.int64)
        order = np.argsort(offsets, kind="stable")
        offsets, frames = offsets[order], frames[order]
        if not len(offsets):
            return np.zeros(0, PACKET_DTYPE), {}
        if self.info.format.endswith("+gzip"):
            return self._filter_pass(frames)
        stream = _Stream(self.path)
        try:
            groups = self._pread_groups(stream.raw.fileno(), offsets)
        except OSError as exc:
            raise CaptureError(f"cannot re-read records: {exc.strerror or exc}", path=self.path) from None
        finally:
            stream.close()
        tables = []
        segments: dict[int, bytes] = {}
        for parser, buf, at, picked in groups:
            npbuf = np.frombuffer(buf, np.uint8)
            if isinstance(parser, _PcapParser):
                recs = parser._records(npbuf, at)
            else:
                btype = struct.Struct("<I" if parser.little else ">I").unpack_from
                others = {a: btype(buf, a)[0] for a in at.tolist()}  # SPB / PB records by position
                others = {a: t for a, t in others.items() if t != fmt.BT_EPB}
                recs = parser._records(
                    npbuf, [(at, parser.little, parser.section_base, parser.section_ifaces)], others
                )
            good = np.isin(recs.linktype, list(SUPPORTED))
            idx = None if good.all() else np.flatnonzero(good)
            dec = self._decode(npbuf, recs, idx)
            table = _table(dec, recs, idx, 0)
            pos = table["frame"].astype(np.int64) - recs.first_frame
            table["frame"] = frames[picked[pos]]
            table["offset"] = offsets[picked[pos]]
            for rec, seg in dec.segments.items():
                i = rec if idx is None else int(idx[rec])
                segments[int(frames[picked[i]])] = seg
            tables.append(table)
        if not tables:
            return np.zeros(0, PACKET_DTYPE), segments
        table = np.concatenate(tables)
        return table[np.argsort(table["frame"], kind="stable")], segments

    def _filter_pass(self, frames: np.ndarray) -> tuple[np.ndarray, dict[int, bytes]]:
        tables = []
        segments: dict[int, bytes] = {}
        wanted = set(frames.tolist())
        saved = self.info
        for chunk in self.chunks():
            keep = np.isin(chunk.table["frame"], frames)
            if keep.any():
                tables.append(chunk.table[keep])
                segments.update({f: s for f, s in chunk.segments.items() if f in wanted})
        self.info = saved
        self._complete = True
        return (np.concatenate(tables) if tables else np.zeros(0, PACKET_DTYPE)), segments

    def _pread_groups(self, fd: int, offsets: np.ndarray) -> list:
        """Copy the wanted records into one small buffer per byte-order section, with a parser for it."""
        quiet = CaptureReader.__new__(CaptureReader)  # collects warnings of this pass nowhere
        quiet.info = CaptureInfo(path=self.path, format=self.info.format, interfaces=self.info.interfaces)
        if self.kind == "pcap":
            parser: _Parser = _PcapParser(quiet, _NoStream(self._pcap_header(fd)))
            parser.header()
            sections = [(0, parser, lambda blob: parser.hdr + parser.caplen_at.unpack_from(blob, 8)[0])]
        else:
            sections = []
            bases = [base for _, _, base in self._sections] + [len(self.info.interfaces)]
            for k, (start, little, base) in enumerate(self._sections):
                ng = _PcapngParser(quiet, None)
                ng.little, ng.section_base = little, base
                ng.section_ifaces = bases[k + 1] - base
                unpack = struct.Struct("<I" if little else ">I").unpack_from
                sections.append((start, ng, lambda blob, u=unpack: u(blob, 4)[0]))
        starts = np.array([start for start, _, _ in sections], np.int64)
        which = np.searchsorted(starts, offsets, side="right") - 1
        groups = []
        for k in np.unique(which[which >= 0]).tolist():
            _, parser, size_of = sections[k]
            picked = np.flatnonzero(which == k)
            blobs: list[bytes] = []
            at: list[int] = []
            kept: list[int] = []
            pos = 0
            for i in picked.tolist():
                off = int(offsets[i])
                blob = os.pread(fd, 2048, off)
                if len(blob) < 16:
                    continue
                need = size_of(blob)
                if need > MAX_RECORD:
                    continue
                if need > len(blob):
                    blob += os.pread(fd, need - len(blob), off + len(blob))
                if len(blob) < need:
                    continue
                blobs.append(blob[:need])
                at.append(pos)
                kept.append(i)
                pos += need
            if blobs:
                buf = bytearray(b"".join(blobs)) + bytearray(SLACK)
                groups.append((parser, buf, np.array(at, np.int64), np.array(kept, np.int64)))
        return groups

    def _pcap_header(self, fd: int) -> bytes:
        return os.pread(fd, fmt.PCAP_HEADER, 0)

    def _decode(self, buf: np.ndarray, recs: Records, idx: np.ndarray | None) -> Decoded:
        if idx is None:
            return decode_block(buf, recs.data, recs.caplen, recs.wirelen, recs.linktype)
        return decode_block(buf, recs.data[idx], recs.caplen[idx], recs.wirelen[idx], recs.linktype[idx])

    def _note_block(self, block: PcapBlock, unknown: dict[int, list[int]]) -> None:
        """What a C walk + decode found, as chunks() notes it for Records."""
        info = self.info
        info.packets += block.packets
        if block.unknown is not None and len(block.unknown):
            _count_unknown(unknown, block.unknown[:, 0], block.unknown[:, 1])
        if block.packets:  # never NaN: EPB and classic pcap times are whole numbers scaled
            self._note_span(block.first_ts, block.last_ts)
        info.fragments_skipped += block.fragments_skipped
        if block.first_fragment >= 0 and self._first_fragment is None:
            self._first_fragment = block.first_fragment

    def _note_ts(self, ts: np.ndarray) -> None:
        if len(ts) and not np.isnan(ts).all():
            self._note_span(float(np.nanmin(ts)), float(np.nanmax(ts)))

    def _note_span(self, lo: float, hi: float) -> None:
        """Widen the capture's first/last timestamp to include lo..hi."""
        info = self.info
        info.first_ts = lo if info.first_ts is None else min(info.first_ts, lo)
        info.last_ts = hi if info.last_ts is None else max(info.last_ts, hi)

    def _note_unknown(self, recs: Records, good: np.ndarray, base: int, unknown: dict) -> None:
        bad = np.flatnonzero(~good)
        _count_unknown(unknown, recs.linktype[bad], base + recs.offset[bad])

    def _finish(self, unknown: dict[int, list[int]]) -> None:
        info = self.info
        for code, (count, first) in sorted(unknown.items()):
            if code < 0:
                info.warnings.append(
                    f"skipped {count} frames naming an undefined pcapng interface (first at byte {first})"
                )
            else:
                info.warnings.append(
                    f"skipped {count} frames of unsupported link type {code} ({linktype_name(code)}),"
                    f" first at byte {first}"
                )
        if info.fragments_skipped:
            info.warnings.append(
                f"skipped {info.fragments_skipped} non-first IP fragments (no TCP header),"
                f" first at byte {self._first_fragment}"
            )
        names = []
        for iface in info.interfaces:
            if iface.linktype_name not in names:
                names.append(iface.linktype_name)
        info.link_types = names
        usable = [i for i in info.interfaces if i.linktype in SUPPORTED]
        if info.packets and not usable and self.kind == "pcapng":
            raise CaptureError(
                "no interface has a supported link type: " + ", ".join(names or ["none defined"]),
                path=self.path,
            )

    # -- block loop --------------------------------------------------------------------------------

    def _blocks(self, fused: bool = False) -> Iterator[tuple[np.ndarray, int, list[Records | PcapBlock]]]:
        """Yield (buffer as uint8, stream offset of buffer[0], record groups) per block.

        fused: classic pcap blocks come as one PcapBlock (table rows already decoded) when the C
        accelerator can do it, instead of Records for decode_block.
        """
        stream = _Stream(self.path)
        try:
            if self.kind == "pcap":
                parser: _Parser = _PcapParser(self, stream, fused)
            else:
                parser = _PcapngParser(self, stream, fused)
            yield from _block_loop(self, stream, parser)
        finally:
            self.info.bytes = stream.pos
            stream.close()

    def warn(self, message: str) -> None:
        self.info.warnings.append(message)


def _count_unknown(unknown: dict[int, list[int]], codes: np.ndarray, offsets: np.ndarray) -> None:
    """Add records of undecodable link types (code and stream offset each, in stream order) to
    `unknown`: link type -> [records, stream offset of the first]."""
    kinds, first = np.unique(codes, return_index=True)  # first: the lowest index per code
    counts = np.bincount(np.searchsorted(kinds, codes))
    for code, at, count in zip(kinds.tolist(), first.tolist(), counts.tolist(), strict=True):
        entry = unknown.setdefault(int(code), [0, int(offsets[at])])
        entry[0] += count


class _Parser:
    """One walk over a buffer: returns record groups, bytes consumed and whether to stop."""

    first_frame = 1
    base = 0  # stream offset of the buffer's first byte, set by the block loop before each walk

    def header(self) -> int:
        raise NotImplementedError

    def finish(self) -> None:
        """Called once at the end of the stream."""

    def walk(
        self, buf: bytearray, npbuf: np.ndarray, limit: int, eof: bool
    ) -> tuple[list[Records], int, int]:
        """-> (groups, consumed, need): need > 0 asks for a bigger buffer, -1 says stop."""
        raise NotImplementedError


def _block_loop(reader: CaptureReader, stream: _Stream, parser: _Parser):
    size = reader.block_size
    buf = bytearray(size + SLACK)
    npbuf = np.frombuffer(buf, np.uint8)
    filled = 0
    base = parser.header()
    eof = False
    while True:
        if not eof:
            got = stream.readinto(memoryview(buf)[filled:size])
            eof = filled + got < size
            filled += got
        parser.base = base
        groups, consumed, need = parser.walk(buf, npbuf, filled, eof)
        if groups:
            yield npbuf, base, groups
        stop = need < 0
        if need > 0 and need <= MAX_RECORD and not eof:
            if need > size:  # one record larger than the buffer: grow it once, copy the tail
                size = need
                grown = bytearray(size + SLACK)
                grown[: filled - consumed] = buf[consumed:filled]
                buf, npbuf = grown, np.frombuffer(grown, np.uint8)
                base += consumed
                filled -= consumed
                continue
        elif need > MAX_RECORD:
            reader.warn(f"record of {need} bytes at byte {base + consumed} is absurd; reading stopped there")
            stop = True
        if stop:
            break
        if consumed:
            rest = filled - consumed
            buf[:rest] = buf[consumed:filled]
            base += consumed
            filled = rest
        if eof:
            if filled:
                reader.warn(
                    f"truncated last record at byte {base}: {filled} bytes left after the last complete one"
                )
            break
    parser.finish()
    if stream.error:
        reader.warn(stream.error)


class _NoStream:
    """Stands in for a stream when a parser only needs the file header (pass-2 reads)."""

    def __init__(self, header: bytes) -> None:
        self.header = header

    def readinto(self, mv: memoryview) -> int:
        n = min(len(mv), len(self.header))
        mv[:n] = self.header[:n]
        return n


class _PcapParser(_Parser):
    def __init__(self, reader: CaptureReader, stream: _Stream, fused: bool = False) -> None:
        self.reader = reader
        self.stream = stream
        self.fused = fused

    def header(self) -> int:
        head = bytearray(fmt.PCAP_HEADER)
        self.stream.readinto(memoryview(head))
        endian, nano, hdr = fmt.PCAP_MAGICS[bytes(head[:4])]
        snaplen, linktype = struct.unpack_from(endian + "II", head, 16)
        linktype &= fmt.PCAP_LINKTYPE_MASK
        self.little = endian == "<"
        self.scale = 1e-9 if nano else 1e-6
        self.hdr = hdr
        self.linktype = linktype
        self.maxcap = min(max(snaplen, fmt.STANDARD_MAX_CAPLEN), MAX_RECORD)
        self.caplen_at = struct.Struct(endian + "I")
        self.fused = self.fused and linktype in SUPPORTED and pcap_block_available()
        info = self.reader.info
        info.snaplen = snaplen
        info.interfaces = [
            Interface(
                0, linktype, linktype_name(linktype), self.scale, None, snaplen, 0, 10**9 if nano else 10**6
            )
        ]
        return fmt.PCAP_HEADER

    def walk(self, buf, npbuf, limit, eof):
        if self.fused:
            block = pcap_block(
                buf,
                limit,
                self.hdr,
                self.maxcap,
                self.little,
                self.scale,
                self.linktype,
                self.base,
                self.first_frame,
            )
            self.first_frame += block.packets
            groups: list = [block] if block.packets else []
            return groups, *self._stop(buf, limit, eof, block.consumed, block.absurd, block.packets)
        offs, consumed, absurd = walk.walk_pcap(buf, 0, limit, self.hdr, self.maxcap, self.little)
        groups = [self._records(npbuf, offs)] if len(offs) else []
        return groups, *self._stop(buf, limit, eof, consumed, absurd, len(offs))

    def _stop(self, buf, limit: int, eof: bool, consumed: int, absurd: bool, walked: int) -> tuple[int, int]:
        """(consumed, need) after a walk that stopped at `consumed` having found `walked` records."""
        need = 0
        if absurd:
            cap = self.caplen_at.unpack_from(buf, consumed + 8)[0]
            self.reader.warn(
                f"absurd caplen {cap} in record at byte {self.base + consumed}; reading stopped there"
            )
            need = -1
        elif not walked and consumed + self.hdr <= limit and not eof:
            need = self.hdr + self.caplen_at.unpack_from(buf, consumed + 8)[0]
        return consumed, need

    def _records(self, npbuf: np.ndarray, off: np.ndarray) -> Records:
        words = walk.header_words(npbuf, off, 16, self.little)
        sec = words[:, 0]
        frac = words[:, 1]
        caplen = words[:, 2]
        wirelen = words[:, 3]
        n = len(off)
        recs = Records(
            offset=off,
            data=off + self.hdr,
            caplen=caplen,
            wirelen=wirelen,
            ts=sec.astype(np.float64) + frac.astype(np.float64) * self.scale,
            iface=np.zeros(n, np.int64),
            linktype=np.full(n, self.linktype, np.int64),
            direction=np.zeros(n, np.uint8),
            first_frame=self.first_frame,
            sec=sec,
            nsec=frac if self.scale == 1e-9 else frac * 1000,
        )
        self.first_frame += n
        return recs


def _table(dec: Decoded, recs: Records, idx: np.ndarray | None, base: int) -> np.ndarray:
    rec = dec.rec if idx is None else idx[dec.rec]
    if dec.table is not None:  # the C decoder filled the header columns
        table = dec.table
        table["frame"] = recs.first_frame + rec
        table["offset"] = base + recs.offset[rec]
        table["ts"] = recs.ts[rec]
        table["iface"] = np.minimum(recs.iface[rec], IFACE_MAX)
        link_dir = table["direction"]
        table["direction"] = np.where(link_dir != 0, link_dir, recs.direction[rec])
        return table
    table = np.zeros(len(rec), PACKET_DTYPE)
    if not len(rec):
        return table
    table["frame"] = recs.first_frame + rec
    table["offset"] = base + recs.offset[rec]
    table["ts"] = recs.ts[rec]
    table["iface"] = np.minimum(recs.iface[rec], IFACE_MAX)
    for name, col in dec.cols.items():
        table[name] = col
    link_dir = dec.direction[dec.rec]
    table["direction"] = np.where(link_dir != 0, link_dir, recs.direction[rec])
    table["ifindex"] = dec.ifindex[dec.rec]
    return table


class _PcapngParser(_Parser):
    """Block walk over pcapng sections; packet blocks are gathered per byte-order run."""

    def __init__(self, reader: CaptureReader, stream: _Stream | None, fused: bool = False) -> None:
        self.reader = reader
        self.stream = stream
        self.fused = fused and pcap_block_available()  # EPB runs walked and decoded by one C call
        self._iface_arrays: tuple[int, tuple] = (-1, ())
        self.section = -1
        self.little = True
        self.section_base = 0  # global id of the section's interface 0
        self.section_ifaces = 0
        self.unknown_blocks: dict[int, list[int]] = {}
        self.last_ts = float("nan")

    def header(self) -> int:
        return 0  # the first SHB is walked like any other block

    def walk(self, buf, npbuf, limit, eof):
        # Packet-block runs between other blocks are gathered into one group for the whole buffer,
        # each run remembering its section's byte order and interfaces (IDBs only add interfaces).
        runs: list[tuple[np.ndarray, bool, int, int]] = []
        run_words: list[np.ndarray] = []  # each run's block headers as uint32 words, in its byte order
        kinds: dict[int, int] = {}
        fused: list[PcapBlock] = []  # EPB runs decoded in C, all before the runs above
        at = 0
        need = 0
        use_fused = self.fused
        while True:
            if use_fused:
                block, stop = self._fused_run(buf, at, limit)
                if block.packets:
                    fused.append(block)
                at = block.consumed
                if stop == STOP_PACKET:  # an SPB or PB (or no IDB yet): the general walk does the rest
                    use_fused = False
                    continue
                if stop == STOP_CHECK:
                    self.reader.warn(self._check_message(buf, at))
                    need = -1
                    break
            else:
                offs, others, at, stop = walk.walk_pcapng(buf, at, limit, self.little)
            if not use_fused and len(offs):
                words = walk.header_words(npbuf, offs, 28, self.little)
                bad = self._check(npbuf, offs, others, words)
                if bad is not None:
                    k, message = bad
                    at = int(offs[k])
                    offs, words = offs[:k], words[:k]
                    others = {a: t for a, t in others.items() if a < at}
                    self.reader.warn(message)
                    stop, need = None, -1
                if len(offs):
                    runs.append((offs, self.little, self.section_base, self.section_ifaces))
                    run_words.append(words)
                    kinds.update(others)
                if stop is None:
                    break
            if stop == walk.STOP_NEED:
                if at == 0 and at + 12 <= limit and not eof:
                    need = self._block_length(buf, at)  # one block larger than the buffer
                break
            if stop == walk.STOP_BAD:
                length = struct.unpack_from("<I" if self.little else ">I", buf, at + 4)[0]
                self._bad_length(at, length)
                need = -1
                break
            # STOP_OTHER: a non-packet block, complete in the buffer
            result = self._other_block(buf, at, limit)
            if result is None:
                need = -1
                break
            if result == 0:
                if not eof and at == 0:
                    need = self._block_length(buf, at)
                break
            at += result
        groups: list = fused + ([self._records(npbuf, runs, kinds, run_words)] if runs else [])
        return groups, at, need

    def _fused_run(self, buf: bytearray, at: int, limit: int) -> tuple[PcapBlock, int]:
        ifaces = self.reader.info.interfaces
        if self._iface_arrays[0] != len(ifaces):  # IDBs only add interfaces
            arrays = (
                np.array([i.linktype for i in ifaces], np.int64),
                np.array([i.ticks for i in ifaces], np.uint64),
                np.array([i.tsoffset for i in ifaces], np.float64),
                np.array([i.linktype in SUPPORTED for i in ifaces], np.uint8),
            )
            self._iface_arrays = (len(ifaces), arrays)
        section = (self.section_base, self.section_ifaces)
        block, stop = pcapng_run(
            buf, at, limit, self.little, self._iface_arrays[1], section, self.base, self.first_frame
        )
        self.first_frame += block.packets
        if block.packets:
            self.last_ts = block.final_ts
        return block, stop

    def _check_message(self, buf: bytearray, at: int) -> str:
        """_check's warning for the packet block at `at` (pcapng_run stopped there)."""
        e = "<" if self.little else ">"
        length = struct.unpack_from(e + "I", buf, at + 4)[0]
        trailing = struct.unpack_from(e + "I", buf, at + length - 4)[0]
        if trailing != length:
            why = f"length {length} but trailing length {trailing}"
        else:
            why = f"caplen {struct.unpack_from(e + 'I', buf, at + 20)[0]} does not fit block length {length}"
        return f"pcapng packet block at byte {self.base + at}: {why}; reading stopped there"

    def _check(self, npbuf: np.ndarray, off: np.ndarray, others: dict[int, int], words: np.ndarray):
        """First packet block whose trailing length or caplen is impossible: (index, warning)."""
        length = words[:, 1]
        trailing = walk.header_words(npbuf, off + length - 4, 4, self.little)[:, 0]
        fixed = np.full(len(off), fmt.EPB_FIXED, np.int64)
        if others:
            pos = np.searchsorted(off, np.fromiter(others.keys(), np.int64, len(others)))
            spb = np.fromiter(others.values(), np.int64, len(others)) == fmt.BT_SPB
            fixed[pos[spb]] = 0  # an SPB's caplen is derived from its length: it always fits
        bad = (trailing != length) | ((fixed > 0) & (words[:, 5] > length - fixed))
        if not bad.any():
            return None
        k = int(np.argmax(bad))
        where = self.base + int(off[k])
        if trailing[k] != length[k]:
            why = f"length {int(length[k])} but trailing length {int(trailing[k])}"
        else:
            why = f"caplen {int(words[k, 5])} does not fit block length {int(length[k])}"
        return k, f"pcapng packet block at byte {where}: {why}; reading stopped there"

    def _block_length(self, buf: bytearray, at: int) -> int:
        little = self.little
        if struct.unpack_from("<I", buf, at)[0] == fmt.BT_SHB:
            little = bytes(buf[at + 8 : at + 12]) == b"\x4d\x3c\x2b\x1a"
        return struct.unpack_from("<I" if little else ">I", buf, at + 4)[0]

    def _bad_length(self, at: int, length: int) -> None:
        self.reader.warn(
            f"pcapng block at byte {self.base + at} has an impossible length {length}; reading stopped there"
        )

    def _other_block(self, buf: bytearray, at: int, limit: int) -> int | None:
        """Handle one non-EPB block at `at`; returns its length, 0 if incomplete, None to stop."""
        if at + 12 > limit:
            return 0
        btype = struct.unpack_from("<I", buf, at)[0]
        if btype == fmt.BT_SHB:
            bom = bytes(buf[at + 8 : at + 12])
            if bom == b"\x4d\x3c\x2b\x1a":
                little = True
            elif bom == b"\x1a\x2b\x3c\x4d":
                little = False
            else:
                self.reader.warn(f"pcapng section header at byte {self.base + at} has a bad byte-order magic")
                return None
            e = "<" if little else ">"
            length = struct.unpack_from(e + "I", buf, at + 4)[0]
            if length < fmt.SHB_MIN or length & 3 or length > MAX_RECORD:
                self._bad_length(at, length)
                return None
            if at + length > limit:
                return 0
            if not self._trailer_ok(buf, at, length, e):
                return None
            major = struct.unpack_from(e + "H", buf, at + 12)[0]
            if major != 1:
                self.reader.warn(
                    f"pcapng section at byte {self.base + at} has version {major}; reading stopped"
                )
                return None
            self.little = little
            self.section += 1
            self.section_base = len(self.reader.info.interfaces)
            self.section_ifaces = 0
            self.reader._sections.append((self.base + at, little, self.section_base))
            return length
        e = "<" if self.little else ">"
        btype, length = struct.unpack_from(e + "II", buf, at)
        if length < 12 or length & 3 or length > MAX_RECORD:
            self._bad_length(at, length)
            return None
        if at + length > limit:
            return 0
        if not self._trailer_ok(buf, at, length, e):
            return None
        if self.section < 0:
            self.reader.warn(f"pcapng file does not start with a section header (byte {self.base + at})")
            return None
        if btype == fmt.BT_IDB:
            if length < fmt.IDB_FIXED:
                self._bad_length(at, length)
                return None
            self._idb(buf, at, length, e)
        elif btype in fmt.PACKET_BLOCKS:
            return length  # packet blocks are gathered by the walk; never reached for them
        elif btype not in fmt.KNOWN_NON_PACKET:
            entry = self.unknown_blocks.setdefault(btype, [0, self.base + at])
            entry[0] += 1
        return length

    def _trailer_ok(self, buf: bytearray, at: int, length: int, e: str) -> bool:
        trailing = struct.unpack_from(e + "I", buf, at + length - 4)[0]
        if trailing != length:
            self.reader.warn(
                f"pcapng block at byte {self.base + at}: length {length} but trailing length {trailing};"
                " reading stopped there"
            )
            return False
        return True

    def _idb(self, buf: bytearray, at: int, length: int, e: str) -> None:
        linktype, _, snaplen = struct.unpack_from(e + "HHI", buf, at + 8)
        ticks = fmt.DEFAULT_TSRESOL
        tsoffset = 0
        name = None
        for code, value in fmt.iter_options(memoryview(buf)[at + 16 : at + length - 4], e):
            if code == fmt.IF_TSRESOL and value:
                got = fmt.tsresol_ticks(value[0])
                if got is None:
                    self.reader.warn(f"interface at byte {self.base + at}: unusable if_tsresol {value[0]}")
                else:
                    ticks = got
            elif code == fmt.IF_TSOFFSET and len(value) >= 8:
                tsoffset = struct.unpack_from(e + "q", value)[0]
            elif code == fmt.IF_NAME:
                name = value.decode("utf-8", "replace").rstrip("\0")
        info = self.reader.info
        info.interfaces.append(
            Interface(
                id=len(info.interfaces),
                linktype=linktype,
                linktype_name=linktype_name(linktype),
                tsresol=1.0 / ticks,
                name=name,
                snaplen=snaplen,
                section=self.section,
                ticks=ticks,
                tsoffset=tsoffset,
            )
        )
        self.section_ifaces += 1

    def _records(
        self,
        npbuf: np.ndarray,
        runs: list[tuple[np.ndarray, bool, int, int]],
        kinds: dict[int, int],
        run_words: list[np.ndarray] | None = None,
    ):
        """Record headers of the packet blocks of these runs (offsets, byte order, iface base, iface count)."""
        off = runs[0][0] if len(runs) == 1 else np.concatenate([r[0] for r in runs])
        n = len(off)
        counts = [len(r[0]) for r in runs]
        little = np.repeat(np.array([r[1] for r in runs], bool), counts)
        base = np.repeat(np.array([r[2] for r in runs], np.int64), counts)
        limit = np.repeat(np.array([r[3] for r in runs], np.int64), counts)
        if run_words is None:
            words = _words(npbuf, off, 28, little)
        else:
            words = run_words[0] if len(run_words) == 1 else np.concatenate(run_words)
        length = words[:, 1]
        btype = np.full(n, fmt.BT_EPB, np.int64)
        if kinds:
            pos = np.searchsorted(off, np.fromiter(kinds.keys(), np.int64, len(kinds)))
            btype[pos] = np.fromiter(kinds.values(), np.int64, len(kinds))
        epb = btype != fmt.BT_SPB
        iface = words[:, 2]
        if not epb.all() or (btype == fmt.BT_PB).any():
            pb = btype == fmt.BT_PB
            iface16 = np.where(little, iface & 0xFFFF, iface >> 16)  # the PB's 16-bit interface id
            iface = np.where(pb, iface16, np.where(epb, iface, 0))
        wirelen = np.where(epb, words[:, 6], words[:, 2])
        data = off + np.where(epb, 28, 12)
        ifaces = self.reader.info.interfaces
        local_ok = iface < limit
        gid = np.where(local_ok, base + iface, 0)
        column = _IfaceColumns(ifaces, gid)
        snap = column("snaplen", np.int64, 0)
        spb_cap = np.minimum(wirelen, length - fmt.SPB_FIXED)
        spb_cap = np.where(snap > 0, np.minimum(spb_cap, snap), spb_cap)
        caplen = np.where(epb, words[:, 5], np.maximum(spb_cap, 0))
        linktype = np.where(local_ok, column("linktype", np.int64, -1), -1)
        ticks = column("ticks", np.uint64, fmt.DEFAULT_TSRESOL)
        tsoff = column("tsoffset", np.float64, 0)
        hi = words[:, 3].astype(np.uint64)
        lo = words[:, 4].astype(np.uint64)
        units = (hi << np.uint64(32)) | lo
        sec = units // ticks
        frac = units - sec * ticks
        part = frac.astype(np.float64) / ticks.astype(np.float64)
        ts = sec.astype(np.float64) + part + tsoff
        ts = np.where(epb, ts, np.nan)
        whole = sec.astype(np.int64) + tsoff.astype(np.int64)
        nsec = np.minimum(np.round(part * 1e9).astype(np.int64), 999_999_999)
        if not epb.all():
            ts = self._fill_ts(ts, self.base + int(off[np.argmin(epb)]))
        direction = self._epb_direction(npbuf, off, length, caplen, epb, little)
        recs = Records(
            offset=off,
            data=data,
            caplen=caplen,
            wirelen=wirelen,
            ts=ts,
            iface=np.where(local_ok, gid, 0),
            linktype=linktype,
            direction=direction,
            first_frame=self.first_frame,
            sec=np.where(epb, whole, -1),  # -1: no exact time (simple packet block)
            nsec=np.where(epb, nsec, 0),
        )
        self.first_frame += n
        if len(ts) and not np.isnan(ts[-1]):
            self.last_ts = float(ts[-1])
        return recs

    def _fill_ts(self, ts: np.ndarray, first_at: int) -> np.ndarray:
        """Simple packet blocks have no timestamp: carry the previous packet's forward."""
        if not getattr(self, "_spb_warned", False):
            self._spb_warned = True
            self.reader.warn(
                "simple packet blocks carry no timestamp: the previous packet's time is used"
                f" (first at byte {first_at})"
            )
        idx = np.where(np.isnan(ts), -1, np.arange(len(ts)))
        idx = np.maximum.accumulate(idx)
        filled = np.where(idx >= 0, ts[np.maximum(idx, 0)], self.last_ts)
        return np.where(np.isnan(filled), 0.0, filled)

    def _epb_direction(self, npbuf, off, length, caplen, epb, little) -> np.ndarray:
        """Direction bits of the epb_flags option, when an EPB has options."""
        n = len(off)
        direction = np.zeros(n, np.uint8)
        at = off + 28 + ((caplen + 3) & ~3)
        stop = off + length - 4
        rows = np.flatnonzero(epb & (at + 4 <= stop))
        if not len(rows):
            return direction
        at = at[rows]
        stop = stop[rows]
        for _ in range(8):
            live = at + 4 <= stop
            rows, at, stop = rows[live], at[live], stop[live]
            if not len(rows):
                break
            opt = _words(npbuf, at, 8, little[rows])
            head = opt[:, 0]
            code = np.where(little[rows], head & 0xFFFF, head >> 16)
            olen = np.where(little[rows], head >> 16, head & 0xFFFF)
            hit = (code == fmt.EPB_FLAGS) & (olen == 4) & (at + 8 <= stop)
            bits = opt[:, 1] & 3
            direction[rows[hit]] = np.where(bits[hit] == 1, DIR_IN, np.where(bits[hit] == 2, DIR_OUT, 0))
            more = (code != fmt.OPT_ENDOFOPT) & ~hit
            rows, at, stop, olen = rows[more], at[more], stop[more], olen[more]
            at = at + 4 + ((olen + 3) & ~3)
        return direction

    def finish(self) -> None:
        for btype, (count, first) in sorted(self.unknown_blocks.items()):
            self.reader.warn(
                f"skipped {count} pcapng blocks of unknown type 0x{btype:08x}, first at byte {first}"
            )
        self.unknown_blocks = {}


def _words(npbuf: np.ndarray, off: np.ndarray, width: int, little: np.ndarray) -> np.ndarray:
    """header_words with a byte order per record (pcapng sections may differ)."""
    if little.all():
        return walk.header_words(npbuf, off, width, True)
    if not little.any():
        return walk.header_words(npbuf, off, width, False)
    le = walk.header_words(npbuf, off, width, True)
    be = walk.header_words(npbuf, off, width, False)
    return np.where(little[:, None], le, be)


class _IfaceColumns:
    """Interface attributes per record; O(records) whatever the number of interfaces."""

    def __init__(self, ifaces: list[Interface], gid: np.ndarray) -> None:
        self.ifaces = ifaces
        self.n = len(gid)
        if self.n and gid.min() == gid.max():  # the usual case: one interface
            self.used, self.inverse = gid[:1], None
        else:
            self.used, self.inverse = np.unique(gid, return_inverse=True)

    def __call__(self, name: str, dtype, default) -> np.ndarray:
        values = [
            getattr(self.ifaces[g], name) if g < len(self.ifaces) else default for g in self.used.tolist()
        ]
        if self.inverse is None:
            return np.full(self.n, values[0] if values else default, dtype)
        return np.array(values, dtype)[self.inverse.ravel()]


def read_table(
    path: str | os.PathLike[str], block_size: int = BLOCK_SIZE
) -> tuple[np.ndarray, dict[int, bytes], CaptureInfo]:
    """The whole capture as one table, its RST segments and its info."""
    reader = open_capture(path, block_size)
    tables = []
    segments: dict[int, bytes] = {}
    for chunk in reader.chunks():
        tables.append(chunk.table)
        segments.update(chunk.segments)
    if not tables:
        table = np.zeros(0, PACKET_DTYPE)
    elif len(tables) == 1:
        table = tables[0]
    else:
        table = np.concatenate(tables)
    return table, segments, reader.info
