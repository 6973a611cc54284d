"""Locust users posting a mix of ~2 KB sample documents to POST /v1/validate."""

from __future__ import annotations

import os
import random
from pathlib import Path

from locust import FastHttpUser, constant, constant_throughput, task

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
TARGET_BYTES = 2048


def sized(text: str, target: int = TARGET_BYTES) -> str:
    """The document repeated to about ``target`` bytes, cut at a line end."""
    out = text
    while len(out.encode()) < target:
        out += "\n" + text
    cut = out.encode()[:target].decode("utf-8", "ignore")
    return cut[: cut.rfind("\n") + 1] if "\n" in cut else cut


def documents() -> list[dict[str, str]]:
    """One ~2 KB request body per sample document (text formats only)."""
    docs = []
    for path in sorted(SAMPLES.glob("*")):
        if path.is_file() and path.suffix in (".md", ".txt"):
            docs.append({"text": sized(path.read_text(encoding="utf-8")), "name": path.name})
    return docs


DOCS = documents()
#: requests per second each user aims for; 0 sends the next request as soon as one answers.
RATE = float(os.environ.get("CLEARANCE_LOAD_RATE", "5"))


class Validator(FastHttpUser):
    wait_time = constant_throughput(RATE) if RATE > 0 else constant(0)

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {os.environ['CLEARANCE_LOAD_KEY']}"}

    @task
    def validate(self) -> None:
        doc = random.choice(DOCS)
        with self.client.post("/v1/validate", json=doc, headers=self.headers,
                              name="/v1/validate", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}: {(r.text or '')[:200]}")
            elif b'"verdict"' not in (r.content or b""):
                r.failure("no report in the response")
