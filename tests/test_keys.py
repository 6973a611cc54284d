"""API keys: created, listed and revoked through the CLI; only their sha256 is stored."""

from __future__ import annotations

import json

from engine.audit import AuditLog, audit_db_path
from engine.keys import PREFIX, KeyStore, hash_key


def _db_bytes() -> bytes:
    path = audit_db_path()
    return b"".join(
        p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists()
    )


def test_create_list_revoke(run_cli):
    AuditLog().close()  # keys share the audit database, whichever creates it first
    code, out, err = run_cli("keys", "create", "--role", "auditor", "--name", "carol")
    assert code == 0 and "shown only once" in err
    raw = out.strip()
    assert raw.startswith(PREFIX) and len(raw) > 40

    code, out, _ = run_cli("keys", "list")
    assert code == 0 and "carol" in out and "auditor" in out and raw not in out
    listed = json.loads(run_cli("keys", "list", "-f", "json")[1])
    assert listed == [
        {
            "id": 1,
            "name": "carol",
            "role": "auditor",
            "key_prefix": raw[:8],
            "created": listed[0]["created"],
            "revoked": None,
        }
    ]

    store = KeyStore()
    key = store.authenticate(raw)
    assert key is not None and key.name == "carol" and key.allows("auditor")
    assert not key.allows("validator") and not key.allows("admin")
    assert store.authenticate(raw + "x") is None and store.authenticate(None) is None

    data = _db_bytes()
    assert raw.encode() not in data and raw[len(PREFIX) :].encode() not in data
    assert hash_key(raw).encode() in data

    code, out, _ = run_cli("keys", "revoke", "1")
    assert code == 0 and "revoked" in out
    assert store.authenticate(raw) is None
    assert "revoked" in run_cli("keys", "list")[1]
    store.close()


def test_admin_implies_every_role_and_bad_input(run_cli):
    store = KeyStore()
    key, raw = store.create("root", "admin")
    assert all(key.allows(r) for r in ("validator", "auditor", "admin"))
    assert store.authenticate(raw) == key
    store.close()
    code, _, err = run_cli("keys", "create", "--role", "boss", "--name", "x")
    assert code == 2 and "validator, auditor, admin" in err
    code, _, err = run_cli("keys", "revoke", "99")
    assert code == 2 and "no API key with id 99" in err
    # The audit log opens (and verifies) with the keys table in its file.
    with AuditLog() as log:
        assert log.verify().ok
