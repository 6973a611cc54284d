"""The audit log in PostgreSQL (psycopg 3, ``CLEARANCE_AUDIT_URL=postgresql://...``): many
writers on many hosts append to one verifiable hash chain.

Appends are serialised with a transaction-scoped advisory lock (``pg_advisory_xact_lock``) taken
as the first statement of every write: the next writer reads the chain head only after the
previous one has committed, so the chain cannot fork, and the lock is released by COMMIT or
ROLLBACK, or when a crashed writer's connection drops. Readers never take it: verify reads one
REPEATABLE READ snapshot while writers go on."""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from engine.audit.records import (
    CHECKPOINTS,
    FINDINGS,
    QUERIES,
    RULESETS,
    SCHEMA_VERSION,
    VALIDATIONS,
    Tx,
    _int_or,
    shown_location,
    table_sql,
)
from engine.audit.store import CHAIN_VALIDATIONS, CHAIN_WAIVERS, AuditStore, dicts
from engine.errors import ServiceError, UserError

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

T = TypeVar("T")


def _lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key per chain (any other application's keys are
    unlikely to collide with a hash of these names)."""
    return int.from_bytes(
        hashlib.sha256(f"clearance.audit.{name}".encode()).digest()[:8], "big", signed=True
    )


LOCKS = {
    CHAIN_VALIDATIONS: _lock_key(CHAIN_VALIDATIONS),
    CHAIN_WAIVERS: _lock_key(CHAIN_WAIVERS),
    "schema": _lock_key("schema"),
}
POOL_SIZE = 8
CONNECT_TIMEOUT_S = 10


@lru_cache(maxsize=256)
def _placeholders(sql: str, named: bool) -> str:
    """The shared SQL's placeholders (``?``, ``:name``) as psycopg's (``%s``, ``%(name)s``)."""
    if named:
        return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql)
    return sql.replace("?", "%s")


class PgTx:
    """A psycopg connection inside a transaction, behind :class:`engine.audit.records.Tx`."""

    _names = itertools.count()

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = (), /
    ) -> psycopg.Cursor[Any]:
        named = isinstance(params, Mapping)
        return self.conn.execute(_placeholders(sql, named), params if params else None)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(_placeholders(sql, False), list(rows))

    def pipeline(self) -> AbstractContextManager[Any]:
        return self.conn.pipeline()

    def stream(self, sql: str) -> psycopg.ServerCursor[Any]:
        """A server-side cursor: rows arrive in batches, never all at once."""
        cur = self.conn.cursor(name=f"clearance_{next(self._names)}")
        cur.itersize = 2000
        cur.execute(sql)
        return cur


class PgDatabase:
    """One PostgreSQL database through a connection pool (``psycopg_pool``), shared by the
    threads of a process. See the module docstring for how writers are serialised."""

    dialect = "postgres"

    def __init__(self, url: str, *, readonly: bool = False, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self.location = shown_location(url)
        self.readonly = readonly
        self.pool_size = pool_size
        self._pool: ConnectionPool[Any] | None = None
        self._lock = threading.Lock()

    # -- connections --------------------------------------------------------------------------

    def connect(self) -> psycopg.Connection[Any]:
        """One connection outside the pool (opening, creating the schema), or a clear error."""
        import psycopg

        return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)

    def pool(self) -> ConnectionPool[Any]:
        with self._lock:
            if self._pool is None:
                from psycopg_pool import ConnectionPool

                readonly = self.readonly

                def configure(conn: psycopg.Connection[Any]) -> None:
                    conn.autocommit = True
                    if readonly:  # an auditor's tools cannot change a row by mistake
                        conn.execute("SET default_transaction_read_only = on")

                self._pool = ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self.pool_size,
                    kwargs={"connect_timeout": CONNECT_TIMEOUT_S},
                    configure=configure,
                    timeout=30.0,
                    open=False,
                    name="clearance-audit",
                )
                self._pool.open(wait=False)
            return self._pool

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def guard(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn``; turn driver and pool failures into one clear :class:`ServiceError`."""
        import psycopg
        import psycopg_pool

        try:
            return fn()
        except (psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ServiceError(f"audit log {self.location}: cannot {what}: {detail}") from exc

    # -- transactions -------------------------------------------------------------------------

    def write(self, what: str, fn: Callable[[Tx], T], chain: str = CHAIN_VALIDATIONS) -> T:
        def run() -> T:
            with self.pool().connection() as conn, conn.transaction():
                # First statement: everything after it reads what the last holder committed.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCKS[chain]])
                return fn(PgTx(conn))

        return self.guard(what, run)

    @contextmanager
    def snapshot(self) -> Iterator[Tx]:
        with self.pool().connection() as conn, conn.transaction():
            # One snapshot for every statement: rows, findings and rollups of one moment.
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield PgTx(conn)

    def read(self, what: str, fn: Callable[[Tx], T]) -> T:
        def run() -> T:
            with self.snapshot() as tx:
                return fn(tx)

        return self.guard(what, run)

    def query(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        def run() -> list[dict[str, Any]]:
            with self.pool().connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                cur.execute(PG_QUERIES[name], params)
                return list(cur.fetchall())

        return self.guard("query", run)

    def migrate(self, fn: Callable[[Tx], None]) -> None:
        """Run a schema step under the schema lock: processes starting together (server
        workers, batch workers) never race to create the same table."""

        def run() -> None:
            with self.connect() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCKS["schema"]])
                fn(PgTx(conn))

        self.guard("open", run)

    def tables(self, tx: Tx) -> set[str]:
        return {
            r[0]
            for r in tx.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        }

    def columns(self, tx: Tx, table: str) -> set[str]:
        return {
            r[0]
            for r in tx.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = ?",
                [table],
            )
        }


# -- schema --------------------------------------------------------------------------------

_ROLLUPS = [
    """CREATE TABLE IF NOT EXISTS daily (
  day TEXT COLLATE "C" PRIMARY KEY, validations BIGINT NOT NULL, passed BIGINT NOT NULL,
  failed BIGINT NOT NULL, indeterminate BIGINT NOT NULL, cache_hits BIGINT NOT NULL,
  duration_ms DOUBLE PRECISION NOT NULL, llm_calls BIGINT NOT NULL, llm_tokens BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS daily_modules (
  day TEXT COLLATE "C" NOT NULL, module TEXT COLLATE "C" NOT NULL, validations BIGINT NOT NULL,
  passed BIGINT NOT NULL, failed BIGINT NOT NULL, indeterminate BIGINT NOT NULL,
  PRIMARY KEY (module, day))""",
    """CREATE TABLE IF NOT EXISTS daily_gates (
  day TEXT COLLATE "C" NOT NULL, gate TEXT COLLATE "C" NOT NULL, module TEXT COLLATE "C" NOT NULL,
  evaluated BIGINT NOT NULL, passed BIGINT NOT NULL, failed BIGINT NOT NULL,
  indeterminate BIGINT NOT NULL, waived BIGINT NOT NULL, not_applicable BIGINT NOT NULL,
  PRIMARY KEY (day, gate))""",
    "CREATE INDEX IF NOT EXISTS idx_daily_gates_module ON daily_gates (module, day)",
]
_INDEXES: list[tuple[str, list[str]]] = [
    ("validations", ["time"]),
    ("validations", ["doc_sha256", "time"]),
    ("findings", ["validation_id", "seq"]),
    ("checkpoints", ["chain", "id"]),
    ("rulesets", ["id"]),
]


def _schema_3(tx: Tx) -> None:
    """The schema SQLite reached at version 3, created at once (PostgreSQL starts there)."""
    from engine.waivers import create_waivers_table

    tx.execute(
        table_sql(
            "validations",
            VALIDATIONS,
            "postgres",
            not_null=("time", "doc_sha256", "prev_hash", "row_hash"),
        )
    )
    findings = table_sql(
        "findings", FINDINGS, "postgres", not_null=("validation_id", "gate", "status")
    )
    findings = findings.replace(
        "id BIGINT PRIMARY KEY", "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    ).replace(
        "validation_id BIGINT NOT NULL", "validation_id BIGINT NOT NULL REFERENCES validations (id)"
    )
    tx.execute(findings)
    create_waivers_table(tx, "postgres")
    tx.execute(table_sql("checkpoints", CHECKPOINTS, "postgres"))
    tx.execute(table_sql("rulesets", RULESETS, "postgres", pk=("gate", "version")))
    for table, cols in _INDEXES:
        tx.execute(
            f"CREATE INDEX IF NOT EXISTS idx_{table}_{'_'.join(cols)} ON {table} ({', '.join(cols)})"
        )
    for ddl in _ROLLUPS:
        tx.execute(ddl)


#: (version reached, step): applied in order to a database below that version, under the
#: schema lock. A later schema appends its step (ALTER TABLE ..., a rollup rebuild), as the
#: SQLite backend's upgrades do.
MIGRATIONS: list[tuple[int, Callable[[Tx], None]]] = [(3, _schema_3)]


def migrate(tx: Tx) -> None:
    """Bring the database to SCHEMA_VERSION (in one transaction: all steps or none)."""
    tx.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
    got = tx.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    stored = _int_or(got[0], 0) if got else 0
    if stored > SCHEMA_VERSION:
        raise ServiceError(
            f"the audit database is at schema version {stored}, newer than this Clearance "
            f"(version {SCHEMA_VERSION}): upgrade Clearance before writing to it"
        )
    for version, step in MIGRATIONS:
        if version > stored:
            step(tx)
    if stored < SCHEMA_VERSION:
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [str(SCHEMA_VERSION)],
        )


# -- queries -------------------------------------------------------------------------------

_SUMS = (
    "coalesce(sum(validations), 0)::bigint AS validations,"
    " coalesce(sum(passed), 0)::bigint AS passed,"
    " coalesce(sum(failed), 0)::bigint AS failed,"
    " coalesce(sum(indeterminate), 0)::bigint AS indeterminate"
)
_GATE_SUMS = (
    "gate, min(module) AS module, sum(evaluated)::bigint AS evaluated,"
    " sum(passed)::bigint AS passed, sum(failed)::bigint AS failed,"
    " sum(indeterminate)::bigint AS indeterminate, sum(waived)::bigint AS waived,"
    " sum(not_applicable)::bigint AS not_applicable"
)
# PostgreSQL's sum() of a BIGINT is NUMERIC, and a bare column beside an aggregate is an error:
# these say what SQLite's versions mean, with the same names and types in the answer.
_DIALECT: dict[str, str] = {
    "stats": (
        f"SELECT {_SUMS}, coalesce(sum(cache_hits), 0)::bigint AS cache_hits,"
        " coalesce(sum(duration_ms), 0)::float8 AS duration_ms,"
        " coalesce(sum(llm_calls), 0)::bigint AS llm_calls,"
        " coalesce(sum(llm_tokens), 0)::bigint AS llm_tokens FROM daily WHERE day >= :since"
    ),
    "stats_module": f"SELECT {_SUMS} FROM daily_modules WHERE module = :module AND day >= :since",
    "by_gate": f"SELECT {_GATE_SUMS} FROM daily_gates WHERE day >= :since GROUP BY gate ORDER BY gate",
    "by_gate_module": (
        f"SELECT {_GATE_SUMS} FROM daily_gates WHERE module = :module AND day >= :since"
        " GROUP BY gate ORDER BY gate"
    ),
    "top_failing": (
        "SELECT gate, min(module) AS module, sum(failed)::bigint AS failed,"
        " sum(evaluated)::bigint AS evaluated,"
        " round(100.0 * sum(failed) / greatest(sum(evaluated), 1), 1)::float8 AS fail_pct"
        " FROM daily_gates WHERE day >= :since GROUP BY gate HAVING sum(failed) > 0"
        " ORDER BY failed DESC, gate LIMIT :limit"
    ),
    "trends": (
        "SELECT day, validations, passed, failed, indeterminate, cache_hits,"
        " round((duration_ms / greatest(validations, 1))::numeric, 1)::float8 AS avg_ms"
        " FROM daily WHERE day >= :since ORDER BY day"
    ),
}
PG_QUERIES: dict[str, str] = {
    name: _placeholders(_DIALECT.get(name, sql), True) for name, sql in QUERIES.items()
}


def rebuild_rollups(tx: Tx, day: str | None = None) -> None:
    """As :func:`engine.audit.sqlite.rebuild_rollups`, in PostgreSQL's SQL (jsonb)."""
    only = "WHERE substr(v.time, 1, 10) = :day" if day else ""
    params = {"day": day} if day else {}
    for table in ("daily", "daily_modules", "daily_gates"):
        tx.execute(f"DELETE FROM {table}" + (" WHERE day = :day" if day else ""), params)

    def n(cond: str) -> str:
        return f"count(*) FILTER (WHERE {cond})"

    tx.execute(
        f"""
    INSERT INTO daily SELECT substr(v.time, 1, 10), count(*), {n("v.verdict = 'pass'")},
      {n("v.verdict = 'fail'")}, {n("v.verdict IN ('indeterminate', 'review')")},
      coalesce(sum(v.cache_hit), 0), coalesce(sum(v.duration_ms), 0),
      coalesce(sum(v.llm_calls), 0),
      coalesce(sum(v.llm_input_tokens), 0) + coalesce(sum(v.llm_output_tokens), 0)
      FROM validations v {only} GROUP BY 1""",
        params,
    )
    # Each module once per validation, as record() counts them.
    tx.execute(
        f"""
    INSERT INTO daily_modules SELECT day, module, count(*), {n("verdict = 'pass'")},
      {n("verdict = 'fail'")}, {n("verdict IN ('indeterminate', 'review')")}
      FROM (SELECT DISTINCT v.id, substr(v.time, 1, 10) AS day, v.verdict,
              split_part(m.value, '@', 1) AS module
            FROM validations v, jsonb_array_elements_text(v.modules::jsonb) AS m(value) {only}) x
      GROUP BY day, module""",
        params,
    )
    tx.execute(
        f"""
    INSERT INTO daily_gates SELECT day, gate, max(module), count(*),
      {n("status = 'pass'")}, {n("status = 'fail'")}, {n("status = 'indeterminate'")},
      {n("status = 'waived'")}, {n("status = 'not_applicable'")}
      FROM (SELECT substr(v.time, 1, 10) AS day, f.gate, f.module, f.status
              FROM findings f JOIN validations v ON v.id = f.validation_id {only}
            UNION ALL
            SELECT substr(v.time, 1, 10), r.value ->> 1, r.value ->> 3, r.value ->> 4
              FROM validations v, jsonb_array_elements(v.results::jsonb) AS r(value) {only}) x
      GROUP BY day, gate""",
        params,
    )


class PostgresAuditLog(AuditStore):
    """The audit log in one PostgreSQL database (see :class:`PgDatabase`)."""

    db_: PgDatabase

    def __init__(self, url: str, *, readonly: bool = False, pool_size: int = POOL_SIZE) -> None:
        super().__init__(PgDatabase(url, readonly=readonly, pool_size=pool_size))
        if readonly:
            self.db_.guard("open", self._check_exists)
        else:
            self.db_.migrate(migrate)

    def __enter__(self) -> PostgresAuditLog:
        return self

    def _check_exists(self) -> None:
        with self.db_.connect() as conn:
            found = conn.execute("SELECT to_regclass('validations') IS NOT NULL").fetchone()
        if not found or not found[0]:
            raise UserError(
                f"no audit log in {self.location} (its tables are missing; a writer creates "
                "them: `clearance validate` with CLEARANCE_AUDIT_URL set)"
            )

    def _rebuild_rollups(self, tx: Tx, day: str | None = None) -> None:
        rebuild_rollups(tx, day)

    def schema_version(self) -> int:
        def read(tx: Tx) -> int:
            got = tx.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            return _int_or(got[0], 0) if got else 0

        return self.db_.read("read the schema version", read)

    def table_rows(self, sql: str) -> list[dict[str, Any]]:
        """Rows of a read-only query (tests and tools)."""
        return self.db_.read("query", lambda tx: dicts(tx, sql))
