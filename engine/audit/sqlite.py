"""The audit log in one SQLite file (WAL): the default backend, readable with Datasette."""

from __future__ import annotations

import shutil
import sqlite3
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from engine.audit.records import (
    BUSY_TIMEOUT_S,
    CHECKPOINTS,
    FINDINGS,
    GENESIS,
    QUERIES,
    RULESETS,
    SCHEMA_VERSION,
    VALIDATIONS,
    Tx,
    VerifyResult,
    _int_or,
    audit_db_path,
    audit_sync,
    row_hash,
)
from engine.audit.store import CHAIN_VALIDATIONS, AuditStore, _walk, dicts
from engine.errors import ClearanceError, ServiceError, UserError

if TYPE_CHECKING:
    import sqlite_utils

T = TypeVar("T")

# Rollups are derived, per-day totals kept in the same transaction as each record, so that
# auditors' questions over 100,000s of validations and millions of findings stay fast.
_ROLLUPS = """
CREATE TABLE IF NOT EXISTS daily (
  day TEXT PRIMARY KEY, validations INTEGER NOT NULL, passed INTEGER NOT NULL,
  failed INTEGER NOT NULL, indeterminate INTEGER NOT NULL, cache_hits INTEGER NOT NULL,
  duration_ms REAL NOT NULL, llm_calls INTEGER NOT NULL, llm_tokens INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS daily_modules (
  day TEXT NOT NULL, module TEXT NOT NULL, validations INTEGER NOT NULL,
  passed INTEGER NOT NULL, failed INTEGER NOT NULL, indeterminate INTEGER NOT NULL,
  PRIMARY KEY (module, day));
CREATE TABLE IF NOT EXISTS daily_gates (
  day TEXT NOT NULL, gate TEXT NOT NULL, module TEXT NOT NULL, evaluated INTEGER NOT NULL,
  passed INTEGER NOT NULL, failed INTEGER NOT NULL, indeterminate INTEGER NOT NULL,
  waived INTEGER NOT NULL, not_applicable INTEGER NOT NULL,
  PRIMARY KEY (day, gate));
CREATE INDEX IF NOT EXISTS idx_daily_gates_module ON daily_gates (module, day);
"""

_INDEXES: list[tuple[str, list[str]]] = [
    ("validations", ["time"]),
    ("validations", ["doc_sha256", "time"]),
    ("findings", ["validation_id", "seq"]),
    ("checkpoints", ["chain", "id"]),
    ("rulesets", ["id"]),
]


_SQLITE_TYPES = {int: "INTEGER", str: "TEXT", float: "REAL"}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _create_table(
    table: str,
    columns: dict[str, type],
    *,
    pk: tuple[str, ...] = ("id",),
    not_null: tuple[str, ...] = (),
    references: dict[str, tuple[str, str]] | None = None,
) -> str:
    """``CREATE TABLE IF NOT EXISTS`` worded as sqlite-utils words it, so that the schema text
    SQLite keeps (``sqlite_master.sql``) is the same as in logs that sqlite-utils created."""
    refs = references or {}
    defs = []
    for name, kind in columns.items():
        col = f"   {_quote(name)} {_SQLITE_TYPES[kind]}"
        if pk == (name,):
            col += " PRIMARY KEY"
        if name in not_null:
            col += " NOT NULL"
        if name in refs:
            other, other_col = refs[name]
            col += f" REFERENCES {_quote(other)}({_quote(other_col)})"
        defs.append(col)
    if len(pk) > 1:
        defs.append(f"   PRIMARY KEY ({', '.join(_quote(c) for c in pk)})")
    return f"CREATE TABLE IF NOT EXISTS {_quote(table)} (\n" + ",\n".join(defs) + "\n)"


def _create_index(table: str, columns: list[str]) -> str:
    """``CREATE INDEX IF NOT EXISTS`` named and worded as sqlite-utils does."""
    name = _quote(f"idx_{table}_{'_'.join(columns)}")
    cols = ", ".join(_quote(c) for c in columns)
    return f"CREATE INDEX IF NOT EXISTS {name}\n    ON {_quote(table)} ({cols});"


class SQLiteDatabase:
    """One SQLite file: a connection per thread (safe to share between threads), WAL,
    ``synchronous=FULL`` unless ``CLEARANCE_AUDIT_SYNC=normal``. A write transaction begins
    IMMEDIATE: it takes the file's write lock before reading a chain head, so no two writers
    (threads or processes) can both extend the same head."""

    dialect = "sqlite"

    def __init__(self, path: Path, *, readonly: bool = False, timeout: float = BUSY_TIMEOUT_S):
        self.path = path
        self.location = str(path)
        self.readonly = readonly
        self.timeout = timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.readonly:
                conn = sqlite3.connect(
                    f"file:{self.path}?mode=ro",
                    uri=True,
                    timeout=self.timeout,
                    check_same_thread=False,
                )
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # Each connection is used by its own thread only; close() may run elsewhere.
                conn = sqlite3.connect(
                    str(self.path), timeout=self.timeout, check_same_thread=False
                )
                # FULL: a recorded validation survives a power cut (an fsync per commit);
                # NORMAL, if asked for, only a crash of the process (WAL).
                conn.execute(f"PRAGMA synchronous={audit_sync().upper()}")
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def guard(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn``; turn storage failures into one clear :class:`ServiceError`."""
        try:
            return fn()
        except (sqlite3.Error, OSError) as exc:
            raise ServiceError(f"audit log {self.path}: cannot {what}: {_explain(exc)}") from exc

    def transaction(self, fn: Callable[[Tx], T]) -> T:
        conn = self.conn()
        # IMMEDIATE takes the write lock before reading the chain head: no two writers can
        # both extend the same head.
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def write(self, what: str, fn: Callable[[Tx], T], chain: str = CHAIN_VALIDATIONS) -> T:
        # One write lock per file covers every chain.
        return self.guard(what, lambda: self.transaction(fn))

    @contextmanager
    def snapshot(self) -> Iterator[Tx]:
        # One read transaction: rows, findings and rollups from the same moment, however many
        # writers commit meanwhile (each statement would otherwise see its own snapshot).
        conn = self.conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def read(self, what: str, fn: Callable[[Tx], T]) -> T:
        def run() -> T:
            with self.snapshot() as tx:
                return fn(tx)

        return self.guard(what, run)

    def query(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self.guard("query", lambda: dicts(self.conn(), QUERIES[name], params))

    def tables(self, tx: Tx) -> set[str]:
        return {r[0] for r in tx.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def columns(self, tx: Tx, table: str) -> set[str]:
        return {r[1] for r in tx.execute(f"PRAGMA table_info({table})")}


class AuditLog(AuditStore):
    """The audit log in one SQLite file (see :class:`SQLiteDatabase`)."""

    db_: SQLiteDatabase

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        readonly: bool = False,
        timeout: float = BUSY_TIMEOUT_S,
    ) -> None:
        self.path = Path(path) if path is not None else audit_db_path()
        self.timeout = timeout
        super().__init__(SQLiteDatabase(self.path, readonly=readonly, timeout=timeout))
        if readonly:
            if not self.path.exists():
                raise UserError(f"no audit log at {self.path} (set CLEARANCE_AUDIT_DB or --db)")
        else:
            self.db_.guard("open", self._init_schema)

    def __enter__(self) -> AuditLog:
        return self

    def db(self) -> sqlite_utils.Database:
        """This thread's connection, as a sqlite_utils Database (tests, benchmarks, tools)."""
        import sqlite_utils  # imported when used: `clearance --help` never loads it

        return sqlite_utils.Database(self.db_.conn())

    def _init_schema(self) -> None:
        from engine.waivers import create_waivers_table

        conn = self.db_.conn()
        # Outside any transaction: the journal mode cannot change inside one.
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=wal")

        def create(tx: Tx) -> None:
            tx.execute(_create_table("meta", {"key": str, "value": str}, pk=("key",)))
            stored = tx.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            upgrading = stored is not None and _int_or(stored[0], SCHEMA_VERSION) < SCHEMA_VERSION
            tx.execute(
                _create_table(
                    "validations",
                    VALIDATIONS,
                    not_null=("time", "doc_sha256", "prev_hash", "row_hash"),
                )
            )
            columns = {r[1] for r in tx.execute("PRAGMA table_info(validations)")}
            # Older logs gain the new columns; their rows keep verifying (a column a row was
            # written without is left out of its hash).
            if "results" not in columns:  # schema 1
                tx.execute("ALTER TABLE validations ADD COLUMN results TEXT")
            if "ruleset_head" not in columns:  # schema 1 and 2
                tx.execute("ALTER TABLE validations ADD COLUMN ruleset_head TEXT")
            tx.execute(
                _create_table(
                    "findings",
                    FINDINGS,
                    not_null=("validation_id", "gate", "status"),
                    references={"validation_id": ("validations", "id")},
                )
            )
            create_waivers_table(tx, "sqlite")
            tx.execute(_create_table("checkpoints", CHECKPOINTS))
            tx.execute(_create_table("rulesets", RULESETS, pk=("gate", "version")))
            if "row_hash" not in {r[1] for r in tx.execute("PRAGMA table_info(rulesets)")}:
                _chain_legacy_rulesets(tx)
            for table, cols in _INDEXES:
                tx.execute(_create_index(table, cols))
            # one statement at a time: executescript() would commit the open transaction
            for statement in _ROLLUPS.split(";"):
                if statement.strip():
                    tx.execute(statement)
            if upgrading:
                # Rollups were never checked before schema 3: rebuild them from the records
                # once, so verify compares like with like from now on.
                rebuild_rollups(tx)
            if stored is None or upgrading:
                tx.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    [str(SCHEMA_VERSION)],
                )

        self.db_.transaction(create)

    def _rebuild_rollups(self, tx: Tx, day: str | None = None) -> None:
        rebuild_rollups(tx, day)

    # -- tamper evidence: a damaged file ------------------------------------------------------

    def verify(self) -> VerifyResult:
        """As :meth:`AuditStore.verify`; a damaged file (truncated, overwritten) is a failed
        verification that names the last row that verified, not an error."""
        try:
            return super().verify()
        except ClearanceError as exc:
            cause = exc.__cause__
            if not _is_damage(cause):
                raise
            assert cause is not None
            return self.db_.guard("verify", lambda: self._verify_damaged(cause))

    def _verify_damaged(self, cause: BaseException) -> VerifyResult:
        """Read what can still be read, from a copy whose header no longer claims the file's
        original size (SQLite then reads the pages that are there and fails at the first one
        that is not), and report the last row that verified."""
        result = VerifyResult()
        detail = _damage_detail(self.path, cause)
        with tempfile.TemporaryDirectory(prefix="clearance-verify-") as tmp:
            copy = Path(tmp) / "copy.db"
            shutil.copyfile(self.path, copy)
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists():
                shutil.copyfile(wal, Path(tmp) / "copy.db-wal")
            _forget_header_size(copy)
            conn = sqlite3.connect(copy)
            try:
                _walk(self.db_, conn, result)
                stopped = "yet every row read verified up to the damage"
            except sqlite3.DatabaseError as exc:
                stopped = f"reading stopped there: {exc}"
            finally:
                conn.close()
        last = (
            f"validations #{result.last_good_id} (row_hash {result.last_good_hash})"
            if result.last_good_id is not None
            else "none"
        )
        result.problems.insert(
            0, f"the database file is damaged ({detail}); {stopped}; last good row: {last}"
        )
        result.derived = None  # figures from part of a file are not figures
        return result


def _chain_legacy_rulesets(db: Tx) -> None:
    """Schema 3: give the rows an older log stored their place in the rulesets chain (in the
    order they were written). Whatever they hold now is what the chain vouches for from here."""
    for column in ("id INTEGER", "prev_hash TEXT", "row_hash TEXT"):
        db.execute(f"ALTER TABLE rulesets ADD COLUMN {column}")
    prev = GENESIS
    old = db.execute("SELECT rowid, gate, version, module, source FROM rulesets ORDER BY rowid")
    for n, (rowid, gate, version, module, source) in enumerate(old.fetchall(), start=1):
        row = {
            "id": n,
            "gate": gate,
            "version": version,
            "module": module,
            "source": source,
            "prev_hash": prev,
        }
        prev = row_hash("rulesets", row)
        db.execute(
            "UPDATE rulesets SET id = ?, prev_hash = ?, row_hash = ? WHERE rowid = ?",
            [n, row["prev_hash"], prev, rowid],
        )


_DAMAGE = ("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_IOERR_SHORT_READ")


def _is_damage(exc: BaseException | None) -> bool:
    """Whether SQLite failed because the file's bytes are wrong (not busy, not permissions)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(_DAMAGE) or "malformed" in str(exc) or "not a database" in str(exc)


_MAGIC = b"SQLite format 3\x00"


def _header(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(100)


def _damage_detail(path: Path, cause: BaseException) -> str:
    size = path.stat().st_size
    head = _header(path)
    if len(head) < 100 or not head.startswith(_MAGIC):
        return f"{cause}; the file is {size:,} bytes and has no SQLite header"
    page = struct.unpack(">H", head[16:18])[0]
    page = 65536 if page == 1 else page
    pages = struct.unpack(">I", head[28:32])[0]
    if head[24:28] == head[92:96] and pages * page > size:
        return f"{cause}; the file is {size:,} bytes, its header says {pages * page:,}: truncated"
    return str(cause)


def _forget_header_size(path: Path) -> None:
    """Make SQLite take a copy's size from the file, not from its header: the header's page
    count only counts while bytes 92-95 equal the change counter at 24-27."""
    head = _header(path)
    if len(head) < 100 or not head.startswith(_MAGIC):
        return
    counter = struct.unpack(">I", head[24:28])[0]
    with path.open("r+b") as fh:
        fh.seek(92)
        fh.write(struct.pack(">I", (counter + 1) & 0xFFFFFFFF))


def rebuild_rollups(db: Tx, day: str | None = None) -> None:
    """Recompute the per-day rollups from the records (after a bulk load, an upgrade), or
    only one day's (after a prune cut into it). Runs inside the caller's transaction."""
    only = "WHERE substr(v.time, 1, 10) = :day" if day else ""
    for table in ("daily", "daily_modules", "daily_gates"):
        db.execute(f"DELETE FROM {table}" + (" WHERE day = :day" if day else ""), {"day": day})
    db.execute(
        f"""
    INSERT INTO daily SELECT substr(v.time, 1, 10), count(*), sum(v.verdict = 'pass'),
      sum(v.verdict = 'fail'), sum(v.verdict IN ('indeterminate', 'review')), sum(v.cache_hit),
      total(v.duration_ms), total(v.llm_calls),
      total(v.llm_input_tokens) + total(v.llm_output_tokens)
      FROM validations v {only} GROUP BY 1""",
        {"day": day},
    )
    # Each module once per validation, as record() counts them.
    db.execute(
        f"""
    INSERT INTO daily_modules SELECT day, module, count(*), sum(verdict = 'pass'),
      sum(verdict = 'fail'), sum(verdict IN ('indeterminate', 'review'))
      FROM (SELECT DISTINCT v.id, substr(v.time, 1, 10) AS day, v.verdict,
              substr(m.value, 1, instr(m.value || '@', '@') - 1) AS module
            FROM validations v, json_each(v.modules) m {only})
      GROUP BY day, module""",
        {"day": day},
    )
    db.execute(
        f"""
    INSERT INTO daily_gates SELECT day, gate, max(module), count(*),
      sum(status = 'pass'), sum(status = 'fail'), sum(status = 'indeterminate'),
      sum(status = 'waived'), sum(status = 'not_applicable')
      FROM (SELECT substr(v.time, 1, 10) AS day, f.gate, f.module, f.status
              FROM findings f JOIN validations v ON v.id = f.validation_id {only}
            UNION ALL
            SELECT substr(v.time, 1, 10), json_extract(r.value, '$[1]'),
              json_extract(r.value, '$[3]'), json_extract(r.value, '$[4]')
              FROM validations v, json_each(v.results) r {only})
      GROUP BY day, gate""",
        {"day": day},
    )


def _explain(exc: BaseException) -> str:
    text = str(exc)
    low = text.lower()
    if "full" in low:
        return f"{text} (the disk or the database's size limit is full; free space and retry)"
    if "readonly" in low or "read-only" in low or isinstance(exc, PermissionError):
        return f"{text} (the file or its directory is read-only)"
    if "locked" in low or "busy" in low:
        return f"{text} (another process held the log longer than {BUSY_TIMEOUT_S:.0f} s)"
    return text
