"""API keys for the HTTP server: random `clr_` keys, stored only as sha256 in the audit database."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from engine.errors import ClearanceError, UserError

PREFIX = "clr_"
ROLES = ("validator", "auditor", "admin")
BUSY_TIMEOUT_S = 30.0
T = TypeVar("T")

# The key table lives in the audit database so that one file holds who may act and what they
# did; it is created here (not by engine.audit) and shares nothing with it but the path.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  key_prefix TEXT NOT NULL,
  key_hash TEXT NOT NULL UNIQUE,
  created TEXT NOT NULL,
  revoked TEXT
);
"""


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    id: int
    name: str
    role: str
    key_prefix: str
    created: str
    revoked: str | None = None

    def allows(self, role: str) -> bool:
        """Whether this key may act as ``role``; admin implies every role."""
        return self.revoked is None and (self.role == role or self.role == "admin")


def hash_key(raw: str) -> str:
    # A plain sha256 is enough: the keys carry 256 bits of randomness, so there is nothing for a
    # slow password hash to protect against, and every request must be checked cheaply.
    return hashlib.sha256(raw.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _row(r: sqlite3.Row | tuple) -> ApiKey:
    return ApiKey(id=r[0], name=r[1], role=r[2], key_prefix=r[3], created=r[4], revoked=r[5])


class KeyStore:
    """The ``api_keys`` table of one SQLite file; one connection per thread."""

    def __init__(self, path: Path | str | None = None) -> None:
        if path is None:
            from engine.audit import audit_db_path

            path = audit_db_path()
        self.path = Path(path)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._guard("open", lambda: self._conn().executescript(_SCHEMA))

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                str(self.path),
                timeout=BUSY_TIMEOUT_S,
                check_same_thread=False,
                isolation_level=None,
            )
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _guard(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (sqlite3.Error, OSError) as exc:
            raise ClearanceError(f"key store {self.path}: cannot {what}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            c.close()
        self._local = threading.local()

    def create(self, name: str, role: str) -> tuple[ApiKey, str]:
        """A new key; returns it and the raw secret, which is never stored or shown again."""
        if role not in ROLES:
            raise UserError(f"unknown role '{role}' (expected one of: {', '.join(ROLES)})")
        if not name.strip():
            raise UserError("a key needs a name (it is recorded as the principal in the audit log)")
        raw = PREFIX + secrets.token_urlsafe(32)
        created = _now()

        def insert() -> int:
            cur = self._conn().execute(
                "INSERT INTO api_keys (name, role, key_prefix, key_hash, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, role, raw[:8], hash_key(raw), created),
            )
            return int(cur.lastrowid or 0)

        kid = self._guard("create a key", insert)
        return ApiKey(kid, name, role, raw[:8], created), raw

    def list_keys(self, include_revoked: bool = True) -> list[ApiKey]:
        sql = "SELECT id, name, role, key_prefix, created, revoked FROM api_keys"
        if not include_revoked:
            sql += " WHERE revoked IS NULL"
        return [
            _row(r)
            for r in self._guard("list keys", lambda: self._conn().execute(sql + " ORDER BY id"))
        ]

    def revoke(self, key_id: int) -> ApiKey:
        def update() -> ApiKey:
            conn = self._conn()
            conn.execute(
                "UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL", (_now(), key_id)
            )
            r = conn.execute(
                "SELECT id, name, role, key_prefix, created, revoked FROM api_keys WHERE id = ?",
                (key_id,),
            ).fetchone()
            if r is None:
                raise UserError(f"no API key with id {key_id} (see `clearance keys list`)")
            return _row(r)

        return self._guard("revoke a key", update)

    def authenticate(self, raw: str | None) -> ApiKey | None:
        """The active key whose secret is ``raw``, else None."""
        if not raw or not raw.startswith(PREFIX) or len(raw) > 200:
            return None
        digest = hash_key(raw)
        r = self._guard(
            "check a key",
            lambda: (
                self._conn()
                .execute(
                    "SELECT id, name, role, key_prefix, created, revoked, key_hash FROM api_keys "
                    "WHERE key_hash = ?",
                    (digest,),
                )
                .fetchone()
            ),
        )
        # The lookup is by hash, so timing says nothing about the secret; compare_digest keeps
        # the final check constant-time all the same.
        if r is None or not hmac.compare_digest(r[6], digest) or r[5] is not None:
            return None
        return _row(r)
