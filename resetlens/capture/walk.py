"""The record walk: find where each record of a block starts (the only per-packet Python loop).

`walk_pcap` and `walk_pcapng` are replaced by the C accelerator (`_cwalk`) when it was built; both
versions return exactly the same values.
"""

from __future__ import annotations

import struct

import numpy as np

STOP_NEED = 0  # the next block is incomplete in the buffer (or the buffer ended)
STOP_OTHER = 1  # the next block is not a packet block: the caller handles it
STOP_BAD = 2  # the next packet block has an impossible length

EPB, SPB, PB = 6, 3, 2  # pcapng packet block types
MAX_BLOCK = 64 << 20  # same bound as reader.MAX_RECORD
_MIN_LEN = {EPB: 32, SPB: 16, PB: 32}  # smallest valid block length per type

_U32 = {True: struct.Struct("<I"), False: struct.Struct(">I")}
_U32X2 = {True: struct.Struct("<II"), False: struct.Struct(">II")}


def walk_pcap_py(
    buf, start: int, limit: int, hdr: int, maxcap: int, little: bool
) -> tuple[list[int], int, bool]:
    """Offsets of complete records in buf[start:limit] -> (offsets, first unconsumed, absurd caplen)."""
    offs: list[int] = []
    append = offs.append
    unpack = _U32[little].unpack_from
    off = start
    last = limit - hdr
    while off <= last:
        (cap,) = unpack(buf, off + 8)
        if cap > maxcap:
            return offs, off, True
        nxt = off + hdr + cap
        if nxt > limit:
            break
        append(off)
        off = nxt
    return offs, off, False


def walk_pcapng_py(buf, start: int, limit: int, little: bool) -> tuple[list[int], dict[int, int], int, int]:
    """Offsets of complete packet blocks -> (offsets, {offset: type} for non-EPB, stop offset, STOP_*)."""
    offs: list[int] = []
    others: dict[int, int] = {}
    append = offs.append
    unpack = _U32X2[little].unpack_from
    at = start
    last = limit - 12
    while at <= last:
        btype, length = unpack(buf, at)
        if btype == EPB:
            if length < 32 or length & 3 or length > MAX_BLOCK:
                return offs, others, at, STOP_BAD
        elif btype == SPB or btype == PB:
            if length < _MIN_LEN[btype] or length & 3 or length > MAX_BLOCK:
                return offs, others, at, STOP_BAD
            others[at] = btype
        else:
            return offs, others, at, STOP_OTHER
        nxt = at + length
        if nxt > limit:
            if btype != EPB:
                del others[at]
            return offs, others, at, STOP_NEED
        append(at)
        at = nxt
    return offs, others, at, STOP_NEED


try:  # the optional C accelerator; the Python walk above is the reference
    from resetlens.capture import _cwalk  # type: ignore[attr-defined]

    walk_pcap = _cwalk.walk_pcap
    walk_pcapng = _cwalk.walk_pcapng
    ACCELERATED = True
except ImportError:  # not built: pure Python
    walk_pcap = walk_pcap_py
    walk_pcapng = walk_pcapng_py
    ACCELERATED = False

_AR2 = np.arange(2, dtype=np.int64)
_AR4 = np.arange(4, dtype=np.int64)


def gather_u32_le(buf: np.ndarray, idx: np.ndarray) -> np.ndarray:
    at = np.clip(idx, 0, len(buf) - 4)[:, None] + _AR4
    return buf[at].view("<u4").ravel().astype(np.int64)


def gather_u32_be(buf: np.ndarray, idx: np.ndarray) -> np.ndarray:
    at = np.clip(idx, 0, len(buf) - 4)[:, None] + _AR4
    return buf[at].view(">u4").ravel().astype(np.int64)


def gather_u16_le(buf: np.ndarray, idx: np.ndarray) -> np.ndarray:
    at = np.clip(idx, 0, len(buf) - 2)[:, None] + _AR2
    return buf[at].view("<u2").ravel().astype(np.int64)


def gather_u16_be(buf: np.ndarray, idx: np.ndarray) -> np.ndarray:
    at = np.clip(idx, 0, len(buf) - 2)[:, None] + _AR2
    return buf[at].view(">u2").ravel().astype(np.int64)
