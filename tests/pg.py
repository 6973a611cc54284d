"""A throwaway PostgreSQL server from the machine's own binaries (initdb, pg_ctl), for the tests,
the audit benchmark and `make pg`.

The server lives in one temporary folder (data directory, unix socket, log) and is reachable
only through that folder's socket unless a TCP port is asked for. PostgreSQL refuses to run as
root, so when this process is root (CI is) the binaries run as the ``postgres`` user, which
then owns the folder.

    make pg                                         # = python tests/pg.py start --dir data/runtime/pg
    python tests/pg.py start [--dir DIR] [--tcp]   # prints the CLEARANCE_AUDIT_URL to use
    python tests/pg.py stop --dir DIR               # or: make pg PG=stop
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The tests throw the data away: no fsync (a crash of the test machine loses nothing we keep).
# The benchmark passes durable=True and measures the settings a real server runs with.
FAST = ("-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off")


class PostgresUnavailable(RuntimeError):
    """The machine has no PostgreSQL binaries, or the server would not start."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TempPostgres:
    """One PostgreSQL cluster in ``root`` (a new temporary folder by default)."""

    def __init__(
        self, root: Path | None = None, *, durable: bool = False, tcp: bool = False
    ) -> None:
        # A short path: a unix socket's path must fit in 107 bytes.
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="clr-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.log = self.root / "server.log"
        self.durable = durable
        self.tcp = tcp
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0

    # -- running the binaries -----------------------------------------------------------------

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        exe = shutil.which(args[0])
        if exe is None:
            raise PostgresUnavailable(f"{args[0]} is not on PATH (install the PostgreSQL server)")
        cmd = [exe, *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise PostgresUnavailable(
                f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip()}\n{log}"
            )
        return done

    def start(self) -> str:
        """Create and start the cluster; returns the URL of its ``postgres`` database."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(exist_ok=True)
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
        if not (self.data / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                *(() if self.durable else ("--no-sync",)),
            )
        opts = [
            f"-p {self.port}",
            f"-k {self.sock}",
            "-c listen_addresses=" + ("127.0.0.1" if self.tcp else "''"),
            "-c max_connections=200",
            *(() if self.durable else FAST),
        ]
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o", " ".join(opts), "start"
        )
        return self.url()

    def stop(self) -> None:
        """Stop the server (immediately: the data is thrown away) and delete the folder."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(PostgresUnavailable):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    # -- databases ----------------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        if self.tcp:
            return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"
        return f"postgresql://postgres@/{dbname}?host={self.sock}&port={self.port}"

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def wait(self, timeout: float = 30) -> None:
        import psycopg

        until = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > until:
                    raise
                time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Start or stop a throwaway PostgreSQL server.")
    ap.add_argument("action", choices=("start", "stop"))
    ap.add_argument(
        "--dir", type=Path, default=Path("data/runtime/pg"), help="cluster folder (data/runtime/pg)"
    )
    ap.add_argument("--tcp", action="store_true", help="also listen on 127.0.0.1 (a free port)")
    args = ap.parse_args(argv)
    server = TempPostgres(args.dir.resolve(), durable=True, tcp=args.tcp)
    if args.action == "stop":
        server.stop()
        print(f"stopped; removed {server.root}")
        return 0
    try:
        server.start()
        server.create_database("clearance")
    except PostgresUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"PostgreSQL running in {server.root} (log: {server.log})")
    print(f"export CLEARANCE_AUDIT_URL='{server.url('clearance')}'")
    print(f"psql: psql '{server.url('clearance')}'")
    print(f"stop it with: python tests/pg.py stop --dir {args.dir}  (or: make pg PG=stop)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
