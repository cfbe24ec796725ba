"""The JSON contract writer and reader (../shared/contract.md §3, format 1).

Keys keep the model's field order (contract fields first, extensions after), so two runs over the
same input give byte-identical files.  The write is atomic: a temp file beside the target, renamed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

try:  # connection rows as JSON text in C (built with the package; optional)
    from resetlens.report import _jsonrows
except ImportError:  # the Python path below gives the same text, slower
    _jsonrows = None  # type: ignore[assignment]
try:  # a C JSON encoder: serialises dataclasses without copying them, 5-10x faster than json
    import orjson
except ImportError:  # pragma: no cover - the stdlib path below is complete on its own
    orjson = None

from resetlens.errors import ResetlensError
from resetlens.model import FORMAT, Analysis, Connection


def _plain(value: Any) -> Any:
    """JSON-able copy: NaN/inf become null, numpy scalars/arrays, tuples and sets plain Python."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [_plain(v) for v in sorted(value, key=str)]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "tolist"):  # numpy scalar or array, without importing numpy
        return _plain(value.tolist())
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


# The one list that grows with the capture (a row per TCP connection): streamed row by row, one per line.
STREAMED = "connections"
ROWS_PER_PIECE = 2048  # connection rows per written piece
ITEMS_PER_PIECE = 256  # elements of the other top-level lists (resets, hosts, ...) per written piece


def _connection_row(c: Any, names: tuple[str, ...]) -> str:
    if orjson is not None:
        try:
            return orjson.dumps(c).decode("utf-8")  # NaN/inf become null, field order kept
        except orjson.JSONEncodeError:
            pass  # e.g. a surrogate-escaped (non-UTF-8) name: the stdlib path below escapes it
    row = {}
    for n in names:
        v = getattr(c, n)
        row[n] = v if not isinstance(v, float) or math.isfinite(v) else None
    return json.dumps(row, ensure_ascii=False, allow_nan=False)


def _finite_times(table: Any) -> bool:
    """Whether every start time and duration is finite (the columnar writers cannot write NaN as null)."""
    import numpy as np

    return bool(np.isfinite(table.rows["ts"]).all() and np.isfinite(table.rows["duration"]).all())


def _table_pieces(table: Any) -> Iterator[bytes] | None:
    """Rows of a columnar ConnectionTable as JSON text, ROWS_PER_PIECE rows per piece joined by ",\\n  ",
    without building Connection objects; None when a value needs the general path (a non-finite float)."""
    if not _finite_times(table):
        return None
    if _jsonrows is None:
        return (_utf8(p) for p in _table_pieces_py(table))
    return _table_pieces_c(table)


# Columns handed to the C formatter, in its order (resetlens/report/_jsonrows.c), then the address ids.
_C_COLUMNS = ("idx", "vantage", "ts", "duration", "orig_p", "resp_p", "state", "orig_bytes", "resp_bytes",
              "orig_pkts", "resp_pkts", "first_frame", "last_frame")  # fmt: skip


def _c_args(table: Any, start: int, stop: int, texts: tuple[str, ...]) -> tuple[Any, ...]:
    """Arguments of _jsonrows.rows for rows start..stop: column views (no copies), strings as tuples (which
    nobody can change while the C side reads them without the GIL)."""
    part = table.rows[start:stop]
    orig_ids, resp_ids, _ = table.address_ids()
    cols = (*(part[name] for name in _C_COLUMNS), orig_ids[start:stop], resp_ids[start:stop])
    uids = tuple(table.uid_text[start:stop]) if table.uid_text is not None else None
    return cols, tuple(table.vantages), tuple(table.history[start:stop]), texts, uids


def _table_pieces_c(table: Any) -> Iterator[bytes]:
    texts = tuple(table.address_ids()[2])
    for start in range(0, len(table), ROWS_PER_PIECE):
        stop = min(start + ROWS_PER_PIECE, len(table))
        try:
            yield _jsonrows.rows(*_c_args(table, start, stop, texts))
        except UnicodeError:  # a lone surrogate (non-UTF-8 name): the Python path decides
            yield from (_utf8(p) for p in _table_pieces_py(table, start, stop))


def _write_table_c(table: Any, out: Any) -> bool:
    """All rows of a columnar table into the binary file `out` (as the pieces of _table_pieces joined by
    ",\n  ", without the lead), formatted and written by C without the GIL. False, having written nothing,
    when the general path must do it (no C formatter, a non-finite float, a lone surrogate)."""
    if _jsonrows is None or not hasattr(table, "address_ids") or not len(table) or not _finite_times(table):
        return False
    args = _c_args(table, 0, len(table), tuple(table.address_ids()[2]))
    out.flush()  # what is buffered goes first: C writes to the descriptor itself
    try:
        _jsonrows.rows(*args, out.fileno())
    except UnicodeError:
        return False
    out.seek(0, os.SEEK_END)  # the file object learns where C left the descriptor
    return True


def _table_pieces_py(table: Any, start: int = 0, stop: int | None = None) -> Iterator[str]:
    quoted: dict[str, str] = {}

    def q(text: str) -> str:
        got = quoted.get(text)
        if got is None:
            got = quoted[text] = json.dumps(text, ensure_ascii=False)
        return got

    stop = len(table) if stop is None else min(stop, len(table))
    for lo in range(start, stop, ROWS_PER_PIECE):
        hi = min(lo + ROWS_PER_PIECE, stop)
        cols = table.columns(lo, hi)
        uids = [json.dumps(u, ensure_ascii=False) for u in cols["uid"]]  # unique per row: not worth caching
        rows = zip(
            cols["vantage"], cols["ts"], cols["orig_h"], cols["orig_p"], cols["resp_h"], cols["resp_p"],
            cols["conn_state"], cols["history"], cols["duration"], cols["orig_bytes"], cols["resp_bytes"],
            uids, cols["orig_pkts"], cols["resp_pkts"], cols["first_frame"], cols["last_frame"], strict=True,
        )  # fmt: skip
        yield ",\n  ".join(
            f'{{"vantage":{q(v)},"ts":{ts!r},"orig_h":"{oh}","orig_p":{op},"resp_h":"{rh}","resp_p":{rp},'
            f'"conn_state":"{st}","history":{q(h)},"duration":{du!r},"orig_bytes":{ob},"resp_bytes":{rb},'
            f'"uid":{u},"orig_pkts":{opk},"resp_pkts":{rpk},"first_frame":{ff},"last_frame":{lf}}}'
            for v, ts, oh, op, rh, rp, st, h, du, ob, rb, u, opk, rpk, ff, lf in rows
        )


def _object_pieces(rows: Iterable[Any], names: tuple[str, ...]) -> Iterator[str]:
    """Connection objects as JSON text, ROWS_PER_PIECE rows per piece joined by ",\\n  "."""
    batch: list[str] = []
    for c in rows:
        batch.append(_connection_row(c, names))
        if len(batch) == ROWS_PER_PIECE:
            yield ",\n  ".join(batch)
            batch = []
    if batch:
        yield ",\n  ".join(batch)


def _utf8(json_text: str) -> bytes:
    """JSON text as UTF-8. A lone surrogate (a non-UTF-8 file name, decoded with surrogateescape) can only
    stand inside a JSON string, where backslashreplace writes it as the JSON escape \\udcXX: valid UTF-8,
    and json.loads gives back the same name."""
    return json_text.encode("utf-8", "backslashreplace")


def _orjson_bytes(value: Any, default: Any = _plain) -> bytes | None:
    """`value` as indented JSON by orjson; None without orjson or when it refuses (the stdlib path then)."""
    if orjson is None:
        return None
    try:
        opts = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
        return orjson.dumps(value, default=default, option=opts)
    except (orjson.JSONEncodeError, TypeError):
        return None


def _value_bytes(value: Any) -> bytes:
    """One top-level field as indented JSON, UTF-8."""
    text = _orjson_bytes(value)
    if text is not None:
        return text
    if dataclasses.is_dataclass(value) or isinstance(value, list):
        value = _asdict_list(value)
    return _utf8(json.dumps(_plain(value), indent=2, ensure_ascii=False, allow_nan=False))


# The field whose items hold ladders (Reset.seen_at[].ladder), and the depth of a ladder in one dumped list
# of them: the spaces before its key (list > Reset > seen_at list > Sighting, 2 each).
LADDERS_IN = "resets"
LADDER_INDENT = 8


def _ladder_module() -> Any:
    """resetlens.capture.ladder when ladders can be written by C (orjson, the C formatter, and a Ladder may
    exist at all: the module is imported), else None."""
    module = sys.modules.get("resetlens.capture.ladder")
    if orjson is None or _jsonrows is None or module is None or not hasattr(_jsonrows, "ladders"):
        return None
    return module


def _unread_ladders(resets: list[Any], ladder_type: type) -> list[Any]:
    """The ladders at their place in these resets (Reset.seen_at[].ladder) not yet read as dicts."""
    from resetlens.model import Reset, Sighting

    return [
        s.ladder
        for r in resets
        if type(r) is Reset and type(r.seen_at) is list
        for s in r.seen_at
        if type(s) is Sighting and type(s.ladder) is ladder_type and not s.ladder.read
    ]


def _ladder_texts(ladders: list[Any], module: Any) -> list[bytes | None]:
    """Each ladder's JSON text at LADDER_INDENT, formatted by C without the GIL (None: orjson must)."""
    from resetlens.capture.table import FLAG_TEXTS  # loaded already: the ladder module imports it

    try:
        return list(
            _jsonrows.ladders(
                tuple((x.rows, x.offset, x.names) for x in ladders),
                module.C_OFFSETS,
                module.PACKET_DTYPE.itemsize,
                FLAG_TEXTS,
                LADDER_INDENT,
            )
        )
    except (TypeError, ValueError):
        return [None] * len(ladders)


# Ladder texts formatted ahead of the write: id -> (ladder, its rows, offset and names then, text).
Ready = dict[int, tuple[Any, Any, Any, Any, bytes]]


def ready_ladders(resets: list[Any]) -> Ready:
    """The JSON text of every unread ladder of these resets, formatted now for a later _resets_bytes: the
    JSON writer's thread does this while it waits for the verdicts. One C call without the GIL for all of
    them (a thread that lets go of the GIL while the other one runs Python waits up to the switch interval
    to get it back: once, not once per batch). Empty when C cannot write ladders."""
    module = _ladder_module()
    ready: Ready = {}
    if module is None:
        return ready
    ladders = _unread_ladders(resets, module.Ladder)
    for x, text in zip(ladders, _ladder_texts(ladders, module), strict=True):
        if text is not None:
            ready[id(x)] = (x, x.rows, x.offset, x.names, text)
    return ready


def _resets_bytes(resets: list[Any], ready: Ready | None = None) -> bytes | None:
    """_value_bytes(resets) with orjson, where the packet rows of each ladder not yet read as dicts
    (resetlens.capture.ladder.Ladder) are formatted by C, without the GIL, and handed to orjson as
    Fragments: no 13-key dict per row. `ready` holds texts formatted earlier (ready_ladders; used ones are
    taken out), each used only if its ladder is still unread and unchanged. None when the general path must
    do it (no orjson or no C, no such ladder, a ladder met anywhere but at its place: a Fragment's
    indentation is fixed)."""
    module = _ladder_module()
    if module is None:
        return None
    ladders = _unread_ladders(resets, module.Ladder)
    if not ladders:
        return None
    texts: list[bytes | None] = [None] * len(ladders)
    todo = []
    for i, x in enumerate(ladders):
        got = ready.pop(id(x), None) if ready else None
        if got is not None and got[0] is x and got[1] is x.rows and got[2] is x.offset and got[3] is x.names:
            texts[i] = got[4]
        else:
            todo.append(i)
    if todo:
        for i, text in zip(todo, _ladder_texts([ladders[i] for i in todo], module), strict=True):
            texts[i] = text
    fragments = {id(x): orjson.Fragment(t) for x, t in zip(ladders, texts, strict=True) if t is not None}
    expected = sum(1 for x in ladders if id(x) in fragments)  # a ladder shared by two sightings counts twice
    used = 0

    def default(value: Any) -> Any:
        nonlocal used
        fragment = fragments.get(id(value))
        if fragment is None:
            return _plain(value)
        used += 1
        return fragment

    text = _orjson_bytes(resets, default)
    return text if used == expected else None  # more: a ladder also stood elsewhere, at another depth


def iter_json(analysis: Analysis) -> Iterator[str]:
    """The analysis as contract JSON text, in pieces (see iter_json_bytes)."""
    for piece in iter_json_bytes(analysis):
        yield piece.decode("utf-8")


def iter_json_bytes(analysis: Analysis) -> Iterator[bytes]:
    """The analysis as contract JSON, UTF-8, in pieces (stable key order; connections one row per line), so
    a capture with a million connections is never held as one dict or one string. The text is the same as
    one indented dump of the whole analysis. Bytes all the way: no decode and re-encode of 100 MB."""
    names = _FIELD_NAMES
    yield b"{\n"
    for i, name in enumerate(names):
        yield from _field_pieces(analysis, name, i == len(names) - 1)
    yield b"}\n"


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Analysis))
_CONN_NAMES = tuple(f.name for f in dataclasses.fields(Connection))


def _field_pieces(analysis: Analysis, name: str, last: bool, ready: Ready | None = None) -> Iterator[bytes]:
    """One top-level field of the analysis as JSON, with its key, indent and separator (see iter_json_bytes);
    `ready`: ladder texts formatted ahead (ready_ladders)."""
    sep = b"\n" if last else b",\n"
    key = json.dumps(name).encode("utf-8")
    if name == STREAMED:
        rows = getattr(analysis, name)
        if not rows:
            yield b" " + key + b": []" + sep
            return
        yield b" " + key + b": [\n"
        pieces = _table_pieces(rows) if hasattr(rows, "columns") else None
        if pieces is None:
            pieces = (_utf8(p) for p in _object_pieces(rows, _CONN_NAMES))
        # one piece per ROWS_PER_PIECE rows: one write per row would cost more than the rows themselves
        lead = b"  "
        for piece in pieces:
            yield lead + piece
            lead = b",\n  "
        yield b"\n"
        yield b" ]" + sep
        return
    value = getattr(analysis, name)
    if isinstance(value, list) and value:  # ITEMS_PER_PIECE at a time: never the whole list as one string
        yield b" " + key + b": [\n"
        for start in range(0, len(value), ITEMS_PER_PIECE):
            items = value[start : start + ITEMS_PER_PIECE]
            text = _resets_bytes(items, ready) if name == LADDERS_IN else None
            more = start + ITEMS_PER_PIECE < len(value)
            yield _deeper(text or _value_bytes(items), b",\n" if more else b"\n")
        yield b" ]" + sep
        return
    yield b" " + key + b": " + _value_bytes(value).replace(b"\n", b"\n ") + sep


def _deeper(dumped: bytes, tail: bytes) -> bytes:
    """The items of a dumped list ("[\n" and "\n]" cut off), every line one space deeper (the file's top
    level is indented by one), then `tail`: in one pass in C when built (the text of the resets is half of
    the file's)."""
    if _jsonrows is not None and hasattr(_jsonrows, "reindent"):
        return _jsonrows.reindent(dumped, 2, len(dumped) - 2, b" ", tail)
    return b" " + dumped[2:-2].replace(b"\n", b"\n ") + tail


def _asdict_list(value: Any) -> Any:
    if isinstance(value, list):
        return [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]
    return dataclasses.asdict(value)


def dumps(analysis: Analysis) -> str:
    """The analysis as contract JSON text (UTF-8 safe, stable key order, trailing newline)."""
    return "".join(iter_json(analysis))


def write_json(analysis: Analysis, path_or_dash: str | os.PathLike[str]) -> None:
    """Write the analysis as contract JSON to a file (atomically) or to stdout for '-', streamed."""
    if str(path_or_dash) == "-":
        out = getattr(sys.stdout, "buffer", None)  # a text-only stream (some test harnesses) gets str
        if out is None:
            for text in iter_json(analysis):
                sys.stdout.write(text)
            sys.stdout.flush()
            return
        sys.stdout.flush()
        for piece in iter_json_bytes(analysis):
            out.write(piece)
        out.flush()
        return
    atomic_write_stream(Path(path_or_dash), iter_json_bytes(analysis))


class _Aborted(Exception):
    """The analysis failed before it was complete: the early-written file is dropped."""


class EarlyWrite:
    """The JSON file of `analyze` in two steps, in a thread. As soon as the pipeline has built the Analysis
    (its `on_built` hook is `start`), everything up to and including the connections is written to the temp
    file; the connection rows (half the file) are formatted and written by C without the GIL, on the core
    the single-threaded judging leaves idle. `finish()` says the analysis is complete: the rest follows and
    the temp file is renamed over the target, as write_json does. The bytes are write_json's: the fields
    written early are serialised again at the end and, if anything in them changed meanwhile, the whole
    file is written over the ordinary way. `wait()` re-raises the writer's exception, if any."""

    WAIT_STEP = 0.5  # seconds per wait for finish(); the thread gives up once the main thread has ended

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import threading

        self.path = Path(path)
        self.error: BaseException | None = None
        self._go = threading.Event()
        self.early_done = threading.Event()  # set once the early part is written (or found not writable)
        self.wrote_early = False  # whether the connections went out early (else all is written at the end)
        self._aborted = False
        self._thread: threading.Thread | None = None

    @staticmethod
    def usable(path: str | os.PathLike[str]) -> bool:
        """Whether the target is a regular file (or none yet); '-', a device or a FIFO go through write_json."""
        if str(path) == "-":
            return False
        try:
            target = Path(path)
            return not target.exists() or target.is_file()
        except (OSError, ValueError):
            return False

    def start(self, analysis: Analysis) -> None:
        """Begin writing (the pipeline calls this with the Analysis as soon as it is built)."""
        import threading

        if self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(analysis,), name="resetlens-json")
            self._thread.start()

    def finish(self, analysis: Analysis) -> None:
        """The analysis is complete: write the rest (everything, if start was never called)."""
        self.start(analysis)
        self._go.set()

    def abort(self) -> None:
        """The analysis failed: stop and leave no file behind (neither the target nor a temp file)."""
        self._aborted = True
        self._go.set()
        if self._thread is not None:
            self._thread.join(timeout=60)  # bounded: at most the C write in progress is left to finish

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self.error is not None:
            raise self.error

    def _finished(self) -> bool:
        """Wait for finish() or abort(); False when aborted or the main thread is gone."""
        import threading

        main = threading.main_thread()
        while not self._go.wait(self.WAIT_STEP):
            if not main.is_alive():
                return False
        return not self._aborted

    def _run(self, analysis: Analysis) -> None:
        try:
            with _atomic_file(self.path) as out:
                try:
                    early = self._write_early(analysis, out)
                    self.wrote_early = early is not None
                finally:
                    self.early_done.set()
                # the ladders are final once the resets are built: their text now, while the verdicts are made
                ready = ready_ladders(analysis.resets) if early is not None else None
                if not self._finished():
                    raise _Aborted
                if early is not None and early == _early_mark(analysis):
                    rest = _FIELD_NAMES[_FIELD_NAMES.index(STREAMED) + 1 :]
                    for i, name in enumerate(rest):
                        for piece in _field_pieces(analysis, name, i == len(rest) - 1, ready):
                            out.write(piece)
                    out.write(b"}\n")
                else:  # nothing written early, or something written early changed since: all of it anew
                    out.seek(0)
                    out.truncate()
                    for piece in iter_json_bytes(analysis):
                        out.write(piece)
        except _Aborted:
            pass
        except BaseException as exc:  # handed to wait()
            self.error = exc
        finally:
            self.early_done.set()

    def _write_early(self, analysis: Analysis, out: Any) -> tuple[Any, ...] | None:
        """The fields up to and including the connections, when these are a columnar table the C formatter
        writes; what they were (for _early_mark), or None when nothing was written."""
        conns = analysis.connections
        if _jsonrows is None or not hasattr(conns, "address_ids") or not len(conns):
            return None
        mark = _early_mark(analysis)
        upto = _FIELD_NAMES.index(STREAMED)
        out.write(mark[0])
        out.write(b" " + json.dumps(STREAMED).encode("utf-8") + b": [\n  ")
        if not _write_table_c(conns, out):
            out.seek(0)
            out.truncate()
            return None
        out.write(b"\n ]" + (b"\n" if upto == len(_FIELD_NAMES) - 1 else b",\n"))
        return mark


def _early_mark(analysis: Analysis) -> tuple[Any, ...]:
    """The fields before the connections as bytes, and what identifies the connection rows and their
    contents (a checksum of the columns, from which the address texts derive: a clock shift after the early
    write would change it)."""
    import zlib

    upto = _FIELD_NAMES.index(STREAMED)
    head = b"{\n" + b"".join(
        piece for name in _FIELD_NAMES[:upto] for piece in _field_pieces(analysis, name, False)
    )
    t = analysis.connections
    rows = getattr(t, "rows", None)
    if rows is None:
        return (head, id(t), len(t))
    checksum = zlib.crc32(rows if rows.flags.c_contiguous else rows.tobytes())
    return (
        head,
        id(t),
        len(t),
        id(rows),
        checksum,
        id(t.history),
        len(t.history),
        id(t.uid_text),
        tuple(t.vantages),
    )


def atomic_write_stream(path: Path, pieces: Iterable[bytes]) -> None:
    """Like atomic_write, for data produced piece by piece (never all in memory).

    A target that exists and is not a regular file (/dev/null, /dev/stdout, a FIFO) is written straight
    through: renaming a temp file over it would replace the device itself."""
    try:
        special = path.exists() and not path.is_file()
    except OSError:
        special = False
    if special:
        try:
            with open(path, "wb") as out:
                for piece in pieces:
                    out.write(piece)
        except OSError as exc:
            raise ResetlensError(f"cannot write: {exc.strerror or exc}", path=str(path)) from None
        return
    with _atomic_file(path) as out:
        for piece in pieces:
            out.write(piece)


@contextmanager
def _atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file that becomes `path` (by a rename) only when the block ends normally; on any exception
    the temp file beside it is removed, and an OSError becomes a ResetlensError naming the target."""
    tmp: str | None = None
    try:
        folder = path.parent if str(path.parent) else Path(".")
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb", buffering=1 << 20) as out:
            yield out
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise ResetlensError(f"cannot write: {exc.strerror or exc}", path=str(path)) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def atomic_write(path: Path, data: bytes) -> None:
    """Write data to path through a temp file in the same folder and a rename (no half-written file)."""
    atomic_write_stream(path, (data,))


def load_json(path: str | os.PathLike[str]) -> Analysis:
    """Read a saved analysis; a missing, non-JSON or other-format file is a ResetlensError."""
    name = str(path)
    try:
        raw = sys.stdin.buffer.read() if name == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise ResetlensError(f"cannot read: {exc.strerror or exc}", path=name) from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ResetlensError(
            "not UTF-8 text, not a resetlens analysis", path=name, offset=exc.start
        ) from None
    except json.JSONDecodeError as exc:
        offset = len(raw.decode("utf-8")[: exc.pos].encode("utf-8"))
        raise ResetlensError(
            f"not JSON ({exc.msg}), not a resetlens analysis", path=name, offset=offset
        ) from None
    except RecursionError:
        raise ResetlensError("JSON nested too deeply, not a resetlens analysis", path=name) from None
    if not isinstance(data, dict) or "format" not in data or "resets" not in data:
        raise ResetlensError("not a resetlens analysis (no 'format' and 'resets' keys)", path=name)
    if data["format"] != FORMAT:
        raise ResetlensError(
            f"analysis format {data['format']!r}, this resetlens reads format {FORMAT}", path=name
        )
    try:
        analysis = Analysis.from_dict(data)
    except (TypeError, AttributeError, ValueError, KeyError) as exc:
        raise ResetlensError(f"malformed resetlens analysis: {exc}", path=name) from None
    problem = _type_problem(analysis, "analysis")
    if problem:
        raise ResetlensError(f"malformed resetlens analysis: {problem}", path=name)
    return analysis


# Python types a JSON value may have for each annotation the model uses (bool is an int, allowed).
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str | None": (str, type(None)),
    "int | None": (int, type(None)),
    "float | None": (int, float, type(None)),
    "list[str]": (list,),
    "list[int]": (list,),
    "dict[str, Any]": (dict,),
    "list[dict[str, Any]]": (list,),
}


def _type_problem(obj: Any, where: str) -> str:
    """First field whose JSON value has the wrong type, as 'where.field: got type' ('' when none)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        allowed = _JSON_TYPES.get(str(f.type))
        if allowed is not None and not isinstance(value, allowed):
            return f"{where}.{f.name} is {type(value).__name__}"
        if isinstance(value, list):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    problem = _type_problem(item, f"{where}.{f.name}[{i}]")
                    if problem:
                        return problem
                elif str(f.type) == "list[str]" and not isinstance(item, str):
                    return f"{where}.{f.name}[{i}] is {type(item).__name__}"
                elif str(f.type) == "list[dict[str, Any]]" and not isinstance(item, dict):
                    return f"{where}.{f.name}[{i}] is {type(item).__name__}"
        elif dataclasses.is_dataclass(value):
            problem = _type_problem(value, f"{where}.{f.name}")
            if problem:
                return problem
    return ""
