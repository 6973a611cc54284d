"""Bounded failure handling for remote providers: backoff, a circuit breaker and a call/token budget."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def backoff_delay(
    attempt: int, base: float, cap: float, rng: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with jitter for retry ``attempt`` (0 = first retry). The jitter takes
    off up to a quarter so a crowd of clients does not retry in lock-step."""
    return min(cap, base * (2.0**attempt)) * (1.0 - 0.25 * rng())


class CircuitBreaker:
    """Closed until ``failure_threshold`` consecutive failures, then open (every call refused at
    once) for ``cooldown_s``; then half-open: exactly one probe goes through, and its outcome
    closes the breaker or opens it for another cool-down. Thread-safe; the clock is injectable
    so tests need not sleep."""

    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = max(1, failure_threshold)
        self.cooldown_s = cooldown_s
        self.clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._probing or self.clock() - self._opened_at >= self.cooldown_s:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """May a request go out now? In half-open state only the first caller gets a yes."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "half-open" and not self._probing:
                self._probing = True
                return True
            return False

    def retry_in(self) -> float:
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.cooldown_s - (self.clock() - self._opened_at))

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probing = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._probing or self._failures >= self.failure_threshold:
                self._opened_at = self.clock()
            self._probing = False


@dataclass
class Budget:
    """A per-validation allowance of API calls and tokens (``None`` = unlimited)."""

    max_calls: int | None = None
    max_tokens: int | None = None
    calls: int = 0
    tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def refusal(self, estimated_tokens: int = 0) -> str | None:
        """Why a call estimated at ``estimated_tokens`` may not be made, or None if it may; a
        call that is allowed is reserved at once so concurrent chunks cannot overspend."""
        with self._lock:
            if self.max_calls is not None and self.calls >= self.max_calls:
                return f"call budget exhausted ({self.calls} of {self.max_calls} calls used)"
            if self.max_tokens is not None and self.tokens + estimated_tokens > self.max_tokens:
                return (
                    f"token budget exhausted ({self.tokens} of {self.max_tokens} tokens used, "
                    f"next call needs about {estimated_tokens})"
                )
            self.calls += 1
            self.tokens += estimated_tokens
            return None

    def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        """Replace a reservation by what the call really used."""
        with self._lock:
            self.tokens += actual_tokens - estimated_tokens

    def release(self, estimated_tokens: int) -> None:
        """Give back a reservation for a call that was never made."""
        with self._lock:
            self.calls -= 1
            self.tokens -= estimated_tokens

    def reset(self, max_calls: int | None = None, max_tokens: int | None = None) -> None:
        with self._lock:
            self.max_calls, self.max_tokens = max_calls, max_tokens
            self.calls = self.tokens = 0
