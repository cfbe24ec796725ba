"""The record walk: find where each record of a block starts (the only per-packet Python loop).

`walk_pcap` and `walk_pcapng` are the C accelerator (`_cwalk.c`) when it was built and
RESETLENS_PURE_PYTHON is not set; both versions return exactly the same values.
"""

from __future__ import annotations

import os
import struct

import numpy as np
from numpy.lib.stride_tricks import as_strided

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
) -> tuple[np.ndarray, int, bool]:
    """Offsets of complete records in buf[start:limit] -> (offsets, first unconsumed, absurd caplen)."""
    offs: list[int] = []
    append = offs.append
    unpack = _U32[little].unpack_from
    off = start
    last = limit - hdr
    while off <= last:
        (cap,) = unpack(buf, off + 8)
        if cap > maxcap:
            return np.array(offs, np.int64), off, True
        nxt = off + hdr + cap
        if nxt > limit:
            break
        append(off)
        off = nxt
    return np.array(offs, np.int64), off, False


def walk_pcapng_py(buf, start: int, limit: int, little: bool) -> tuple[np.ndarray, dict[int, int], int, int]:
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
                return np.array(offs, np.int64), others, at, STOP_BAD
        elif btype == SPB or btype == PB:
            if length < _MIN_LEN[btype] or length & 3 or length > MAX_BLOCK:
                return np.array(offs, np.int64), others, at, STOP_BAD
            others[at] = btype
        else:
            return np.array(offs, np.int64), others, at, STOP_OTHER
        nxt = at + length
        if nxt > limit:
            if btype != EPB:
                del others[at]
            return np.array(offs, np.int64), others, at, STOP_NEED
        append(at)
        at = nxt
    return np.array(offs, np.int64), others, at, STOP_NEED


try:  # the optional C accelerator (setup.py builds it when a compiler exists)
    from resetlens.capture import _cwalk  # type: ignore[attr-defined]
except ImportError:  # not built: the pure Python walk above
    _cwalk = None


def walk_pcap_c(
    buf, start: int, limit: int, hdr: int, maxcap: int, little: bool
) -> tuple[np.ndarray, int, bool]:
    raw, consumed, absurd = _cwalk.walk_pcap(buf, start, limit, hdr, maxcap, little)
    return np.frombuffer(raw, np.int64), consumed, absurd


def walk_pcapng_c(buf, start: int, limit: int, little: bool) -> tuple[np.ndarray, dict[int, int], int, int]:
    raw, others, at, stop = _cwalk.walk_pcapng(buf, start, limit, little)
    return np.frombuffer(raw, np.int64), others, at, stop


ACCELERATED = _cwalk is not None and os.environ.get("RESETLENS_PURE_PYTHON", "") in ("", "0")
walk_pcap = walk_pcap_c if ACCELERATED else walk_pcap_py
walk_pcapng = walk_pcapng_c if ACCELERATED else walk_pcapng_py


def use_accelerator(enabled: bool) -> bool:
    """Switch between the C and the Python walk (tests compare both); returns the previous state."""
    global ACCELERATED, walk_pcap, walk_pcapng
    previous = ACCELERATED
    ACCELERATED = bool(enabled) and _cwalk is not None
    walk_pcap = walk_pcap_c if ACCELERATED else walk_pcap_py
    walk_pcapng = walk_pcapng_c if ACCELERATED else walk_pcapng_py
    return previous


def header_words(buf: np.ndarray, idx: np.ndarray, width: int, little: bool) -> np.ndarray:
    """The first `width` bytes (a multiple of 4) at each offset as rows of uint32 words."""
    win = as_strided(buf, shape=(len(buf) - width + 1, width), strides=(1, 1), writeable=False)
    raw = win[np.clip(idx, 0, len(win) - 1)]
    return raw.view("<u4" if little else ">u4").astype(np.int64)
