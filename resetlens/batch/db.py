"""The batch database (contract §4): one DuckDB file, one writer (the batch's parent process).

Finished bundles are written in one transaction (one bundle, or a small group of them): their old rows
go, their new rows and bundle rows come in, then commit. A run killed at any point leaves every
committed bundle whole and nothing half-written; what was not committed is redone by the next run.
The connection is released after each commit and while idle, so other processes can read the file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from resetlens.errors import ResetlensError

# Bumped when a table changes shape; stored in the `meta` table.
SCHEMA_VERSION = 1
# How long a writer waits for another process's lock on the file before giving up.
LOCK_WAIT_S = 60.0

# (column, DuckDB type, meaning): the tables, declared where they are defined.
BUNDLE_COLUMNS: list[tuple[str, str, str]] = [
    (
        "bundle",
        "VARCHAR PRIMARY KEY",
        "bundle name, unique in the archive (relative folder, @stamp for loose groups)",
    ),
    ("path", "VARCHAR", "absolute folder of the bundle"),
    ("status", "VARCHAR", "ok or failed"),
    ("error", "VARCHAR", "one-line reason when failed, else NULL"),
    ("analyzed_at", "TIMESTAMP", "when this row was written, UTC"),
    ("resets", "INTEGER", "reset events found (NULL when failed)"),
    ("connections", "INTEGER", "connection rows (NULL when failed)"),
    ("captures", "INTEGER", "vantages read"),
    ("content_hash", "VARCHAR", "sha256 over sorted relative paths, sizes and contents"),
    ("duration_s", "DOUBLE", "analysis wall time in the worker"),
    ("kind", "VARCHAR", "manifest or captures (loose captures grouped by name)"),
    ("title", "VARCHAR", "the analysis title"),
    ("verdict", "VARCHAR", "the summary's one-paragraph verdict"),
    ("first_ts", "DOUBLE", "first packet of the bundle, epoch seconds"),
    ("last_ts", "DOUBLE", "last packet of the bundle, epoch seconds"),
    ("json_report", "VARCHAR", "path of the JSON report, or NULL"),
    ("html_report", "VARCHAR", "path of the HTML report, or NULL"),
    ("worker", "VARCHAR", "host:pid of the process that analysed it"),
    ("resetlens_version", "VARCHAR", "version that wrote the analysis"),
]
RESET_COLUMNS: list[tuple[str, str, str]] = [
    ("bundle", "VARCHAR", "bundle name"),
    ("id", "VARCHAR", "reset id within the bundle's analysis"),
    ("ts", "DOUBLE", "first sighting, reference clock, epoch seconds"),
    ("src", "VARCHAR", "source address as written in the RST"),
    ("sport", "INTEGER", "source port"),
    ("dst", "VARCHAR", "destination address"),
    ("dport", "INTEGER", "destination port"),
    ("sender_role", "VARCHAR", "client proxy server middlebox unknown"),
    ("sender_host", "VARCHAR", "host name or address of the sender, or NULL"),
    ("sender_kind", "VARCHAR", "kernel application injected unknown"),
    ("cause", "VARCHAR", "catalog code"),
    ("confidence", "DOUBLE", "0 to 1"),
    ("decision", "VARCHAR", "what to fix"),
    ("seen_at", "VARCHAR", "JSON text: list of {vantage, ts, frame, ttl, ip_id}"),
    ("vantages", "INTEGER", "number of sightings"),
    ("evidence", "VARCHAR", "JSON text: list of {code, text, vantage, frame}"),
    ("logs", "VARCHAR", "JSON text: list of {kind, path, line, ts, text}"),
    ("flow", "VARCHAR", "cross-vantage flow id"),
    ("incident", "VARCHAR", "incident group id"),
    ("effective", "BOOLEAN", "False for a RST that could not have torn the connection down"),
    ("explanation", "VARCHAR", "the cause explained with this reset's evidence"),
]
CONNECTION_COLUMNS: list[tuple[str, str, str]] = [
    ("bundle", "VARCHAR", "bundle name"),
    ("vantage", "VARCHAR", "capture point"),
    ("ts", "DOUBLE", "first packet, reference clock"),
    ("orig_h", "VARCHAR", "originator address"),
    ("orig_p", "INTEGER", "originator port"),
    ("resp_h", "VARCHAR", "responder address"),
    ("resp_p", "INTEGER", "responder port"),
    ("conn_state", "VARCHAR", "Zeek conn_state"),
    ("history", "VARCHAR", "Zeek history letters"),
    ("duration", "DOUBLE", "seconds"),
    ("orig_bytes", "BIGINT", "payload bytes from the originator"),
    ("resp_bytes", "BIGINT", "payload bytes from the responder"),
    ("uid", "VARCHAR", "connection id within the analysis"),
    ("orig_pkts", "BIGINT", "packets from the originator"),
    ("resp_pkts", "BIGINT", "packets from the responder"),
]
CAPTURE_COLUMNS: list[tuple[str, str, str]] = [
    ("bundle", "VARCHAR", "bundle name"),
    ("vantage", "VARCHAR", "capture point"),
    ("path", "VARCHAR", "capture path as given"),
    ("host", "VARCHAR", "host the capture was taken on"),
    ("packets", "BIGINT", "frames read"),
    ("resets", "BIGINT", "TCP segments with RST"),
    ("first_ts", "DOUBLE", "first frame, reference clock"),
    ("last_ts", "DOUBLE", "last frame, reference clock"),
    ("clock_offset", "DOUBLE", "seconds added to this capture's times"),
    ("warnings", "VARCHAR", "JSON text: list of strings"),
]
TABLES: dict[str, list[tuple[str, str, str]]] = {
    "bundles": BUNDLE_COLUMNS,
    "resets": RESET_COLUMNS,
    "connections": CONNECTION_COLUMNS,
    "captures": CAPTURE_COLUMNS,
}


class RunLock:
    """One batch at a time per database: an flock on FILE.duckdb.lock, dropped by the kernel if we die."""

    def __init__(self, db_path: Path) -> None:
        self.path = Path(f"{db_path}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        if not self.path.parent.is_dir():
            raise ResetlensError("folder for the database does not exist", path=str(self.path.parent))
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ResetlensError(f"cannot create the lock file: {e.strerror}", path=str(self.path)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ResetlensError("another batch is running on this database", path=str(self.path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class KnownBundle:
    """What the database remembers of a bundle, for the skip decision."""

    status: str
    content_hash: str | None
    reports: list[str]
    path: str | None = None
    version: str | None = None  # resetlens version that analysed it (another version analyses again)


class BatchDB:
    """The single writer. Open lazily, write one bundle per transaction, release when idle."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._con: duckdb.DuckDBPyConnection | None = None
        if self.path.exists() and self.path.is_dir():
            raise ResetlensError("is a directory, not a database file", path=str(self.path))
        if not self.path.parent.is_dir():
            raise ResetlensError("folder for the database does not exist", path=str(self.path.parent))
        with self.connection() as con:
            self._create(con)
        self.release()

    # -- connection -------------------------------------------------------------------------------

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._con is None:
            self._con = self._connect()
        yield self._con

    def _connect(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as e:
                # another process (a reader) holds the file lock: wait, bounded
                if "lock" not in str(e).lower() or time.monotonic() > deadline:
                    raise ResetlensError(
                        f"cannot open database: {_one_line(e)}", path=str(self.path)
                    ) from None
                time.sleep(0.05)
            except (duckdb.Error, OSError) as e:
                raise ResetlensError(f"cannot open database: {_one_line(e)}", path=str(self.path)) from None

    def release(self) -> None:
        """Close the connection so other processes may open the file (reopened on next write)."""
        if self._con is not None:
            self._con.close()
            self._con = None

    close = release

    def _create(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        for table, columns in TABLES.items():
            cols = ", ".join(f'"{c}" {t}' for c, t, _ in columns)
            con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")
            have = {r[0] for r in con.execute(f"SELECT column_name FROM (DESCRIBE {table})").fetchall()}
            for c, t, _ in columns:
                if c not in have:  # a database from an older resetlens: add the new columns
                    con.execute(f'ALTER TABLE {table} ADD COLUMN "{c}" {t.replace(" PRIMARY KEY", "")}')
        con.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?), ('contract_format', '1')",
            [str(SCHEMA_VERSION)],
        )

    # -- reads ------------------------------------------------------------------------------------

    def known(self) -> dict[str, KnownBundle]:
        with self.connection() as con:
            rows = con.execute(
                "SELECT bundle, status, content_hash, json_report, html_report, path, resetlens_version FROM bundles"
            ).fetchall()
        return {b: KnownBundle(s, h, [p for p in (j, x) if p], path, v) for b, s, h, j, x, path, v in rows}

    # -- writes -----------------------------------------------------------------------------------

    def record(self, row: dict[str, Any], analysis: dict[str, Any] | None, replace: bool = True) -> None:
        """Replace everything about one bundle in one transaction."""
        self.record_many([(row, analysis)], replace={row["bundle"]} if replace else set())

    def record_many(
        self, items: list[tuple[dict[str, Any], dict[str, Any] | None]], replace: set[str]
    ) -> None:
        """Several bundles in one transaction: each bundle is all there or not at all.

        `replace`: the bundles that may already have rows (their old rows are deleted first); skipping
        the delete for new bundles keeps a first run from scanning the growing tables once per bundle.
        """
        if not items:
            return
        tables: dict[str, list[dict[str, Any]]] = {"resets": [], "connections": [], "captures": []}
        for row, analysis in items:
            if analysis is not None:
                for table, rows in _rows_of(row["bundle"], analysis).items():
                    tables[table] += rows
        names = [c for c, _, _ in BUNDLE_COLUMNS]
        bundle_rows = [
            {c: safe_text(v) if isinstance(v := row.get(c), str) else v for c in names} for row, _ in items
        ]
        old = sorted(replace & {row["bundle"] for row, _ in items})
        with self.connection() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                if old:
                    marks = ", ".join("?" * len(old))
                    for table in ("resets", "connections", "captures", "bundles"):
                        con.execute(f"DELETE FROM {table} WHERE bundle IN ({marks})", old)
                for table, rows in tables.items():
                    if rows:
                        arrow = _arrow(rows, TABLES[table])  # noqa: F841 -- read by name in the SQL below
                        con.execute(f"INSERT INTO {table} SELECT * FROM arrow")
                con.executemany(
                    f"INSERT INTO bundles ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                    [[r[c] for c in names] for r in bundle_rows],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def update_path(self, bundle: str, path: str) -> None:
        with self.connection() as con:
            con.execute(
                "UPDATE bundles SET path = ? WHERE bundle = ? AND path IS DISTINCT FROM ?",
                [path, bundle, path],
            )

    def export_parquet(self, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        with self.connection() as con:
            for table in TABLES:
                target = folder / f"{table}.parquet"
                tmp = folder / f".{table}.parquet.tmp"
                con.execute(
                    f"COPY (SELECT * FROM {table} ORDER BY bundle) TO '{_sql_str(tmp)}' (FORMAT PARQUET)"
                )
                tmp.replace(target)
                written.append(target)
        return written


def _rows_of(bundle: str, a: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The analysis JSON flattened into table rows."""
    resets = []
    for r in a.get("resets", []):
        sender = r.get("sender") or {}
        seen = [
            {k: s.get(k) for k in ("vantage", "ts", "frame", "ttl", "ip_id")} for s in r.get("seen_at") or []
        ]
        evidence = [
            {k: e.get(k) for k in ("code", "text", "vantage", "frame")} for e in r.get("evidence") or []
        ]
        logs = [{k: x.get(k) for k in ("kind", "path", "line", "ts", "text")} for x in r.get("logs") or []]
        resets.append(
            {
                "bundle": bundle,
                **{k: r.get(k) for k in ("id", "ts", "src", "sport", "dst", "dport")},
                "sender_role": sender.get("role"),
                "sender_host": sender.get("host"),
                "sender_kind": sender.get("kind"),
                "cause": r.get("cause"),
                "confidence": r.get("confidence"),
                "decision": r.get("decision"),
                "seen_at": json.dumps(seen),
                "vantages": len({s["vantage"] for s in seen}),
                "evidence": json.dumps(evidence),
                "logs": json.dumps(logs),
                **{k: r.get(k) for k in ("flow", "incident", "effective", "explanation")},
            }
        )
    conn_keys = [c for c, _, _ in CONNECTION_COLUMNS if c != "bundle"]
    connections = [{"bundle": bundle, **{k: c.get(k) for k in conn_keys}} for c in a.get("connections", [])]
    captures = []
    for c in a.get("captures", []):
        cap = {k: c.get(k) for k, _, _ in CAPTURE_COLUMNS if k not in ("bundle", "warnings")}
        captures.append({"bundle": bundle, **cap, "warnings": json.dumps(c.get("warnings") or [])})
    return {"resets": resets, "connections": connections, "captures": captures}


# DuckDB type -> arrow type, for building insert tables with exact column types.
_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
}


def _arrow(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> pa.Table:
    schema = pa.schema([(c, _ARROW_TYPES[t.split()[0]]) for c, t, _ in columns])
    try:
        return pa.Table.from_pylist(rows, schema=schema)  # the common case: values already fit
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
        pass
    data = {c: [_coerce(r.get(c), schema.field(c).type) for r in rows] for c, _, _ in columns}
    return pa.table(data, schema=schema)


def _coerce(value: Any, typ: pa.DataType) -> Any:
    """Hostile analysis values made to fit their column (a wrong type becomes NULL or text)."""
    if value is None:
        return None
    if typ == pa.string():
        return safe_text(value) if isinstance(value, str) else json.dumps(value, default=str)
    if typ in (pa.int32(), pa.int64()):
        if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
            return None
        bits = 31 if typ == pa.int32() else 63
        return int(value) if -(2**bits) <= value < 2**bits else None  # out of range: NULL, not an error
    if typ == pa.float64():
        return float(value) if isinstance(value, int | float) else None
    if typ == pa.bool_():
        return bool(value)
    return value


def safe_text(text: str) -> str:
    """Text the database can store: undecodable file-name bytes (lone surrogates) shown as \\xNN."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _sql_str(path: Path) -> str:
    return str(path).replace("'", "''")


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300]
