"""Measure abandoned work on a real `clearance serve`: 4 requests needing ~40 s of CPU each
against a 2 s limit; how long the server keeps computing after the last 504, and audit rows.

Not a test (slow): ``python tests/reliability/measure_abandoned.py TREE LABEL`` with TREE a
source tree of Clearance; it builds its gate module and 1 MB document in a temporary folder."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

GATES = (
    'module dot { title "D" version "1" }\ngate DOT-1 any_char { title "t" cite "x" '
    'forbid regex /[a-z ]/ example pass "1." example fail "a" }\n'
)


def main(tree: str, label: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="abandon."))
    (work / "dot").mkdir()
    (work / "dot" / "m.gates").write_text(GATES, encoding="utf-8")
    text = ("lorem ipsum dolor sit amet consectetur " * 27000)[:1_000_000]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "CLEARANCE_HOME": str(work / "home"),
        "CLEARANCE_PROVIDER": "none",
        "CLEARANCE_SERVE_TIMEOUT": "2",
        "PYTHONPATH": tree,
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))",
            "serve",
            "--no-auth",
            "--port",
            str(port),
            "--gates",
            str(work / "dot"),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=tree,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(url + "/healthz", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)

    def cpu() -> float:
        f = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    codes: list[tuple[int, float]] = []

    def post() -> None:
        t = time.monotonic()
        r = httpx.post(
            url + "/v1/validate",
            json={"text": text, "name": "big.txt", "modules": ["dot"]},
            timeout=300,
        )
        codes.append((r.status_code, round(time.monotonic() - t, 1)))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answered = time.monotonic()
    last, busy_until = cpu(), answered
    while time.monotonic() - answered < 150:  # busy: over 0.2 s of CPU in a second
        time.sleep(1.0)
        now = cpu()
        if now - last > 0.2:
            busy_until = time.monotonic()
        elif time.monotonic() - busy_until > 3:
            break
        last = now
    with sqlite3.connect(work / "home" / "audit.db") as conn:
        rows = conn.execute("SELECT count(*) FROM validations").fetchone()[0]
    print(
        f"{label}: answers {sorted(codes)}; server busy {busy_until - answered:.1f} s after "
        f"the last answer; audit rows {rows}; server CPU total {cpu():.1f} s"
    )
    proc.terminate()
    proc.wait(10)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
