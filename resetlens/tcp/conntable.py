"""Connections as columns: the contract's `connections[]` (one row per TCP connection per vantage, Zeek
conn.log terms) kept as one numpy structured array plus the history strings.

A 1 GB capture holds ~150 k connections. As Connection objects they cost ~1 s to build and ~60 MB to
keep; as rows here they cost a few MB and no Python objects until someone asks for one. Iterating the
table yields Connection objects equal to what the engines used to return, so readers that want objects
still get them; the hot readers (JSON writer, host roles, batch database) read the columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import numpy as np

from resetlens.model import Connection

STATE_CODES = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH")
STATE_INDEX = {code: i for i, code in enumerate(STATE_CODES)}

# (field, numpy type, meaning) -- the schema, documented where it is defined.
CONNECTION_FIELDS: list[tuple[str, str, str]] = [
    ("idx", "i8", "creation index at its vantage: the uid is C{idx+1}@{vantage}"),
    ("vantage", "u2", "index into ConnectionTable.vantages"),
    ("ts", "f8", "first packet, seconds since the epoch (reference clock once the offset is applied)"),
    ("duration", "f8", "last packet minus first packet, seconds"),
    ("orig_hi", "u8", "originator address, high 64 bits (the packet table's halves; IPv4 mapped)"),
    ("orig_lo", "u8", "originator address, low 64 bits"),
    ("resp_hi", "u8", "responder address, high 64 bits"),
    ("resp_lo", "u8", "responder address, low 64 bits"),
    ("orig_p", "u2", "originator port"),
    ("resp_p", "u2", "responder port"),
    ("state", "u1", "Zeek conn_state as an index into STATE_CODES"),
    ("orig_bytes", "i8", "payload bytes from the originator (sequence-number based, like Zeek)"),
    ("resp_bytes", "i8", "payload bytes from the responder"),
    ("orig_pkts", "i8", "packets from the originator"),
    ("resp_pkts", "i8", "packets from the responder"),
    ("first_frame", "i8", "frame number of the connection's first packet in its capture"),
    ("last_frame", "i8", "frame number of its last packet"),
]

CONNECTION_DTYPE = np.dtype([(name, typ) for name, typ, _ in CONNECTION_FIELDS])


def address_ids(hi: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per element an id of its (hi, lo) address, and the distinct addresses (hi, lo) by id, in order."""
    if len(hi) == 0:
        empty = np.zeros(0, dtype=np.uint64)
        return np.zeros(0, dtype=np.int64), empty, empty
    if not (hi != hi[0]).any():  # one high half (all IPv4, or one IPv6 /64): the low half decides
        ulo, inv = np.unique(lo, return_inverse=True)
        return inv.reshape(-1), np.full(len(ulo), hi[0], dtype=np.uint64), ulo
    order = np.lexsort((lo, hi))  # two integer keys: far faster than sorting a structured array
    h, v = hi[order], lo[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (h[1:] != h[:-1]) | (v[1:] != v[:-1])
    ids = np.empty(len(order), dtype=np.int64)
    ids[order] = np.cumsum(new) - 1
    return ids, h[new], v[new]


def address_texts(hi: np.ndarray, lo: np.ndarray) -> list[str]:
    """Address text per element; each distinct address is formatted once."""
    ids, uhi, ulo = address_ids(hi, lo)
    texts = distinct_texts(uhi, ulo)
    return [texts[j] for j in ids.tolist()]


def distinct_texts(hi: np.ndarray, lo: np.ndarray) -> list[str]:
    """The text of each address given as (hi, lo) halves (address_ids' distinct addresses)."""
    from resetlens.capture.table import halves_to_addr

    return [halves_to_addr(h, v) for h, v in zip(hi.tolist(), lo.tolist(), strict=True)]


class ConnectionTable(Sequence[Connection]):
    """Connections of one or more vantages as columns; a read-only sequence of Connection objects."""

    def __init__(
        self, vantages: list[str], rows: np.ndarray, history: list[str], uid_text: list[str] | None = None
    ) -> None:
        if rows.dtype != CONNECTION_DTYPE:
            raise TypeError(f"rows must be CONNECTION_DTYPE, not {rows.dtype}")
        if len(rows) != len(history):
            raise ValueError(f"{len(rows)} rows but {len(history)} history strings")
        self.vantages = vantages
        self.rows = rows
        self.history = history
        self.uid_text = (
            uid_text  # uids that do not follow C{idx+1}@{vantage} (read back from JSON), else None
        )
        self._text: dict[str, list[str]] = {}  # side -> address text per row, built once
        self._ids: tuple[np.ndarray, np.ndarray, list[str]] | None = None

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def empty(cls) -> ConnectionTable:
        return cls([], np.zeros(0, dtype=CONNECTION_DTYPE), [])

    @classmethod
    def from_connections(cls, connections: Iterable[Connection]) -> ConnectionTable:
        """Rows from Connection objects (the pure-Python engine, a JSON file read back, tests)."""
        from resetlens.capture.table import addr_to_halves

        conns = list(connections)
        vantages: dict[str, int] = {}
        odd_uid = False
        rows = np.zeros(len(conns), dtype=CONNECTION_DTYPE)
        halves: dict[str, tuple[int, int]] = {}
        for i, c in enumerate(conns):
            v = vantages.setdefault(c.vantage, len(vantages))
            oh = halves.get(c.orig_h) or halves.setdefault(c.orig_h, addr_to_halves(c.orig_h))
            rh = halves.get(c.resp_h) or halves.setdefault(c.resp_h, addr_to_halves(c.resp_h))
            idx = _uid_index(c.uid, c.vantage)
            if idx is None:
                idx, odd_uid = i, True
            rows[i] = (
                idx, v, c.ts, c.duration, oh[0], oh[1], rh[0], rh[1], c.orig_p, c.resp_p,
                STATE_INDEX.get(c.conn_state, STATE_INDEX["OTH"]), c.orig_bytes, c.resp_bytes, c.orig_pkts,
                c.resp_pkts, c.first_frame, c.last_frame,
            )  # fmt: skip
        uid_text = [c.uid for c in conns] if odd_uid else None
        return cls(list(vantages), rows, [c.history for c in conns], uid_text)

    @classmethod
    def concat(cls, tables: Iterable[ConnectionTable]) -> ConnectionTable:
        """One table over several (vantage indexes renumbered)."""
        tables = [t for t in tables if len(t)]
        if not tables:
            return cls.empty()
        if len(tables) == 1:
            return tables[0]
        vantages: dict[str, int] = {}
        parts = []
        history: list[str] = []
        uid_text: list[str] = []
        odd_uid = any(t.uid_text is not None for t in tables)
        for t in tables:
            remap = np.array([vantages.setdefault(v, len(vantages)) for v in t.vantages], dtype=np.uint16)
            rows = t.rows.copy()
            rows["vantage"] = remap[rows["vantage"]] if len(remap) else rows["vantage"]
            parts.append(rows)
            history.extend(t.history)
            if odd_uid:
                uid_text.extend(t.uids())
        return cls(list(vantages), np.concatenate(parts), history, uid_text if odd_uid else None)

    # -- reading -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, i: int) -> Connection: ...
    @overload
    def __getitem__(self, i: slice) -> list[Connection]: ...
    def __getitem__(self, i: int | slice) -> Connection | list[Connection]:
        if isinstance(i, slice):
            return [self._connection(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._connection(i)

    def __iter__(self) -> Iterator[Connection]:
        for i in range(len(self)):
            yield self._connection(i)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ConnectionTable | list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def _connection(self, i: int) -> Connection:
        r = self.rows[i]
        vantage = self.vantages[int(r["vantage"])]
        return Connection(
            vantage=vantage,
            ts=float(r["ts"]),
            orig_h=self.text("orig")[i],
            orig_p=int(r["orig_p"]),
            resp_h=self.text("resp")[i],
            resp_p=int(r["resp_p"]),
            conn_state=STATE_CODES[int(r["state"])],
            history=self.history[i],
            duration=float(r["duration"]),
            orig_bytes=int(r["orig_bytes"]),
            resp_bytes=int(r["resp_bytes"]),
            uid=self.uid_text[i] if self.uid_text is not None else f"C{int(r['idx']) + 1}@{vantage}",
            orig_pkts=int(r["orig_pkts"]),
            resp_pkts=int(r["resp_pkts"]),
            first_frame=int(r["first_frame"]),
            last_frame=int(r["last_frame"]),
        )

    def text(self, side: str) -> list[str]:
        """Address text per row for side "orig" or "resp" (formatted once, then cached)."""
        got = self._text.get(side)
        if got is None:
            orig, resp, texts = self.address_ids()
            got = self._text[side] = [texts[j] for j in (orig if side == "orig" else resp).tolist()]
        return got

    def address_ids(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Per row an id for its originator and for its responder address, and each id's text (cached)."""
        if self._ids is None:
            r = self.rows
            n = len(r)
            ids, uhi, ulo = address_ids(
                np.concatenate([r["orig_hi"], r["resp_hi"]]), np.concatenate([r["orig_lo"], r["resp_lo"]])
            )
            self._ids = (ids[:n], ids[n:], distinct_texts(uhi, ulo))
        return self._ids

    def uids(self) -> list[str]:
        return self.uid_text if self.uid_text is not None else self._uids(self.rows)

    def _uids(self, rows: np.ndarray) -> list[str]:
        names = self.vantages
        return [
            f"C{i + 1}@{names[v]}"
            for i, v in zip(rows["idx"].tolist(), rows["vantage"].tolist(), strict=True)
        ]

    def of_vantage(self, vantage: str) -> ConnectionTable:
        """The rows of one vantage."""
        if vantage not in self.vantages:
            return ConnectionTable.empty()
        mask = self.rows["vantage"] == self.vantages.index(vantage)
        return self.select(mask)

    def select(self, mask: np.ndarray) -> ConnectionTable:
        """The rows where mask is true (a new table; vantage names kept)."""
        keep = np.flatnonzero(mask)
        ids = keep.tolist()
        uid_text = [self.uid_text[j] for j in ids] if self.uid_text is not None else None
        return ConnectionTable(self.vantages, self.rows[keep], [self.history[j] for j in ids], uid_text)

    def shift(self, vantage: str, offset: float) -> None:
        """Add a clock offset to every start time of one vantage (in place)."""
        if vantage in self.vantages and offset:
            mask = self.rows["vantage"] == self.vantages.index(vantage)
            self.rows["ts"][mask] += offset

    def columns(self, start: int = 0, stop: int | None = None) -> dict[str, Any]:
        """The contract's fields as columns (lists) for rows start..stop, for JSON rows and database
        inserts (ask in slices to keep the Python objects of a huge table few at a time)."""
        stop = len(self) if stop is None else min(stop, len(self))
        r = self.rows[start:stop]
        names = self.vantages
        codes = np.array(STATE_CODES, dtype=object)
        return {
            "vantage": [names[v] for v in r["vantage"].tolist()],
            "ts": r["ts"].tolist(),
            "orig_h": self.text("orig")[start:stop],
            "orig_p": r["orig_p"].tolist(),
            "resp_h": self.text("resp")[start:stop],
            "resp_p": r["resp_p"].tolist(),
            "conn_state": codes[r["state"]].tolist() if len(r) else [],
            "history": self.history[start:stop],
            "duration": r["duration"].tolist(),
            "orig_bytes": r["orig_bytes"].tolist(),
            "resp_bytes": r["resp_bytes"].tolist(),
            "uid": self.uid_text[start:stop] if self.uid_text is not None else self._uids(r),
            "orig_pkts": r["orig_pkts"].tolist(),
            "resp_pkts": r["resp_pkts"].tolist(),
            "first_frame": r["first_frame"].tolist(),
            "last_frame": r["last_frame"].tolist(),
        }


def _uid_index(uid: str, vantage: str) -> int | None:
    """The creation index in a uid "C{n}@{vantage}", or None for any other form."""
    head, _, rest = uid.partition("@")
    if (
        rest == vantage
        and head[:1] == "C"
        and head[1:].isascii()
        and head[1:].isdigit()
        and int(head[1:]) > 0
    ):
        return int(head[1:]) - 1
    return None


__all__ = [
    "CONNECTION_DTYPE",
    "CONNECTION_FIELDS",
    "STATE_CODES",
    "ConnectionTable",
    "address_ids",
    "address_texts",
    "distinct_texts",
]
