"""Per-validation budgets: a deadline that the work checks between steps, and the span caps.

A thread cannot be killed, so a validation that runs past its time limit is stopped
cooperatively: whoever starts it opens a :func:`deadline_scope`, and the steps that take time
(ingestion, each gate, each check, the wait for semantic answers) call :func:`check` or read
:func:`remaining`. Past the deadline they raise :class:`DeadlineExceeded`, and nothing after
that point (the report, the cache entry, the audit row) is produced."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from engine.errors import DeadlineExceeded, UserError

#: spans listed per finding (gate) and per report; the rest are counted, not listed.
DEFAULT_MAX_SPANS_PER_FINDING = 100
DEFAULT_MAX_SPANS_PER_REPORT = 1000
#: a span's ``check`` label longer than this is cut: it names the check, it is not its source.
MAX_LABEL_CHARS = 120


__all__ = [
    "DeadlineExceeded",
    "Deadline",
    "deadline_scope",
    "current",
    "check",
    "bounded",
    "short_label",
    "span_limits",
]


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point on the monotonic clock by which one validation must be done."""

    at: float  # time.monotonic() value: what engine.ingest's ``deadline=`` takes
    seconds: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds, seconds)

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def check(self, where: str = "") -> None:
        """Raise :class:`DeadlineExceeded` when the deadline has passed."""
        if time.monotonic() >= self.at:
            at = f" ({where})" if where else ""
            raise DeadlineExceeded(
                f"the validation took longer than its {self.seconds:g} s limit and was stopped{at}"
            )


_current: ContextVar[Deadline | None] = ContextVar("clearance_deadline", default=None)


@contextlib.contextmanager
def deadline_scope(deadline: Deadline | None) -> Iterator[Deadline | None]:
    """Work started in this block (in this thread or the tasks it creates) obeys ``deadline``."""
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


def current() -> Deadline | None:
    return _current.get()


def check(where: str = "") -> None:
    """Raise :class:`DeadlineExceeded` if the current validation is past its deadline."""
    d = _current.get()
    if d is not None:
        d.check(where)


def bounded(timeout: float) -> float:
    """``timeout`` shortened to what is left of the current deadline (for waits such as the
    semantic provider's, which are bounded by ``asyncio.wait_for``)."""
    d = _current.get()
    return timeout if d is None else min(timeout, d.remaining())


def short_label(label: str) -> str:
    """A check label short enough to repeat on every span: a 44 KB pattern copied onto each of
    25,610 spans made a report SQLite refused to store."""
    if len(label) <= MAX_LABEL_CHARS:
        return label
    tail = f"\u2026 (+{len(label):,} chars)"  # at most 20 characters: room for a long head
    head = MAX_LABEL_CHARS - len(tail)
    return f"{label[:head]}\u2026 (+{len(label) - head:,} chars)"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"{name} must be a whole number, got '{raw}'") from None
    if value < 0:
        raise UserError(f"{name} must be 0 or more, got {value}")
    return value


def span_limits() -> tuple[int, int]:
    """(per finding, per report) from ``CLEARANCE_MAX_SPANS`` and
    ``CLEARANCE_MAX_REPORT_SPANS``."""
    return (
        _env_int("CLEARANCE_MAX_SPANS", DEFAULT_MAX_SPANS_PER_FINDING),
        _env_int("CLEARANCE_MAX_REPORT_SPANS", DEFAULT_MAX_SPANS_PER_REPORT),
    )
