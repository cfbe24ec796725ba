"""A ladder diagram's packets: packet-table rows read as the dicts of Sighting.ladder, made when read.

    ladder = Ladder(flow[lo:hi], offset)    # rows of one connection at one vantage, its clock offset
    ladder[0]["flags"], len(ladder)         # a read-only sequence of dicts, equal to the list of them
    ladder.tolist()                         # the dicts as a plain list (JSON writers, copies)

An analysis of a large capture has thousands of ladders of up to 17 rows; building their dicts cost more
than the rest of each reset's sighting, and most of them are only ever written as JSON, which
resetlens.report.jsonreport writes straight from the rows (in C). The dicts are made once,
on first read, and kept: from then on the ladder is its list (what a reader changed stays changed, and
the JSON writers write that list).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from resetlens.capture.table import FIELD_INDEX as _I
from resetlens.capture.table import PACKET_DTYPE, flag_letters, halves_to_addr

_FR, _TS, _SH, _SL, _SP = _I["frame"], _I["ts"], _I["src_hi"], _I["src_lo"], _I["sport"]
_DH, _DL, _DP, _FL, _SQ, _AK = _I["dst_hi"], _I["dst_lo"], _I["dport"], _I["flags"], _I["seq"], _I["ack"]
_PL, _TTL, _IPID, _VER, _WIN = _I["payload_len"], _I["ttl"], _I["ip_id"], _I["ipver"], _I["window"]

# Byte offset of each field the C formatter reads (resetlens/report/_jsonrows.c, `ladders`), in its order.
C_FIELDS = ("frame", "ts", "src_hi", "src_lo", "sport", "dst_hi", "dst_lo", "dport", "flags", "seq", "ack",
            "payload_len", "ttl", "ip_id", "ipver", "window")  # fmt: skip
C_OFFSETS = tuple(PACKET_DTYPE.fields[name][1] for name in C_FIELDS)


def ladder_rows(
    rows: np.ndarray, offset: float, names: dict[tuple[int, int], str] | None = None
) -> list[dict[str, Any]]:
    """Each packet row as a plain dict, from one tolist() of the rows; `names` maps (hi, lo) address halves
    to their text (halves_to_addr), filled as addresses are met."""
    names = {} if names is None else names  # a connection has two addresses: format each once
    out = []
    for r in rows.tolist():
        src = names.get((r[_SH], r[_SL]))
        if src is None:
            src = names[(r[_SH], r[_SL])] = halves_to_addr(r[_SH], r[_SL])
        dst = names.get((r[_DH], r[_DL]))
        if dst is None:
            dst = names[(r[_DH], r[_DL])] = halves_to_addr(r[_DH], r[_DL])
        out.append(
            {
                "frame": r[_FR],
                "ts": r[_TS] + offset,
                "src": src,
                "sport": r[_SP],
                "dst": dst,
                "dport": r[_DP],
                "flags": flag_letters(r[_FL]),
                "seq": r[_SQ],
                "ack": r[_AK],
                "len": r[_PL],
                "ttl": r[_TTL],
                "ip_id": r[_IPID] if r[_VER] == 4 else None,
                "window": r[_WIN],
            }
        )
    return out


class Ladder(Sequence[dict[str, Any]]):
    """The ladder_rows dicts of `rows` (PACKET_DTYPE, shown on the reference clock: ts + offset), made on
    first read. `names` may give the texts of (hi, lo) address halves already known (the RST's own two).

    Equal to a list holding the same dicts. A deep copy (dataclasses.asdict makes one) is that plain list;
    a pickle keeps the rows, or the list once it was read."""

    __slots__ = ("_dicts", "names", "offset", "rows")

    def __init__(
        self, rows: np.ndarray, offset: float, names: dict[tuple[int, int], str] | None = None
    ) -> None:
        if rows.dtype != PACKET_DTYPE or rows.ndim != 1:
            raise TypeError("Ladder: rows must be a one-dimensional PACKET_DTYPE array")
        self.rows = rows  # a view of the flow's rows is fine: nothing writes packet tables after pass 1
        self.offset = offset
        self.names = names
        self._dicts: list[dict[str, Any]] | None = None

    def _list(self) -> list[dict[str, Any]]:
        dicts = self._dicts
        if dicts is None:
            names = dict(self.names) if self.names else None
            dicts = self._dicts = ladder_rows(self.rows, self.offset, names)
        return dicts

    @property
    def read(self) -> bool:
        """Whether the dicts were made (then they, not the rows, are the ladder)."""
        return self._dicts is not None

    def tolist(self) -> list[dict[str, Any]]:
        """The dicts as a new list (the dicts themselves are the ladder's)."""
        return list(self._list())

    def __len__(self) -> int:
        return len(self._dicts) if self._dicts is not None else len(self.rows)

    def __getitem__(self, index: Any) -> Any:  # an int gives a dict, a slice a list
        return self._list()[index]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._list())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Ladder):
            return self._list() == other._list()
        if isinstance(other, list):
            return self._list() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable contents, as a list's

    def __repr__(self) -> str:
        return f"Ladder({self._list()!r})"

    def __copy__(self) -> Ladder:
        twin = Ladder(self.rows, self.offset, self.names)
        if self._dicts is not None:
            twin._dicts = list(self._dicts)
        return twin

    def __deepcopy__(self, memo: dict[int, Any]) -> list[dict[str, Any]]:
        return copy.deepcopy(self._list(), memo)

    def __reduce__(self) -> tuple[Any, ...]:
        if self._dicts is not None:
            return (_read_ladder, (self.rows, self.offset, self._dicts))
        return (Ladder, (self.rows, self.offset, self.names))


def _read_ladder(rows: np.ndarray, offset: float, dicts: list[dict[str, Any]]) -> Ladder:
    """A pickled Ladder that had been read: its rows and its (possibly changed) dicts."""
    ladder = Ladder(rows, offset)
    ladder._dicts = dicts
    return ladder
