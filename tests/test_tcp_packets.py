"""Hand-built packet tables for the resetlens.tcp unit tests (helpers only; no tests here)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from resetlens.capture.table import ACK, FIN, OPT_TS, PACKET_DTYPE, RST, SYN, addr_to_halves

S, A, F, R = SYN, ACK, FIN, RST
CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.2", 80)


@dataclass
class Chunk:
    table: np.ndarray
    segments: dict[int, bytes] = field(default_factory=dict)


class Trace:
    """Append segments in capture order; `chunk()` gives what open_capture(...).chunks() would yield."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.segments: dict[int, bytes] = {}

    def add(
        self,
        ts: float,
        src: tuple[str, int],
        dst: tuple[str, int],
        flags: int,
        seq: int,
        ack: int = 0,
        plen: int = 0,
        *,
        window: int = 29200,
        ttl: int = 64,
        ip_id: int | None = None,
        df: bool = True,
        opts: int = OPT_TS,
        payload: bytes | None = None,
        captured: int | None = None,
    ) -> int:
        frame = len(self.rows) + 1
        sh, sl = addr_to_halves(src[0])
        dh, dl = addr_to_halves(dst[0])
        if payload is not None:
            plen = len(payload)
        self.rows.append(
            dict(
                frame=frame, ts=ts, ipver=4, src_hi=sh, src_lo=sl, dst_hi=dh, dst_lo=dl, sport=src[1],
                dport=dst[1], flags=flags, seq=seq & 0xFFFFFFFF, ack=ack & 0xFFFFFFFF, window=window, ttl=ttl,
                ip_id=frame if ip_id is None else ip_id, df=df, payload_len=plen,
                captured_len=plen if captured is None else captured, opts=opts,
            )
        )  # fmt: skip
        if flags & RST:
            hdr = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, ack, 5 << 4, flags & 0xFF, window, 0, 0)
            self.segments[frame] = hdr + (payload or b"")
        return frame

    def chunk(self) -> Chunk:
        table = np.zeros(len(self.rows), dtype=PACKET_DTYPE)
        for name in PACKET_DTYPE.names:
            table[name] = [r.get(name, 0) for r in self.rows]
        return Chunk(table, dict(self.segments))


def handshake(tr: Trace, t: float = 1000.0, cseq: int = 100, sseq: int = 5000) -> None:
    tr.add(t, CLIENT, SERVER, S, cseq)
    tr.add(t + 0.01, SERVER, CLIENT, S | A, sseq, cseq + 1)
    tr.add(t + 0.02, CLIENT, SERVER, A, cseq + 1, sseq + 1)
