"""Choose a semantic provider: an explicit name, else CLEARANCE_PROVIDER, else by API key presence."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from typing import Any

from engine.errors import UserError
from engine.providers.base import NullProvider, Provider


class UnknownProviderError(UserError, ValueError):
    """An unknown provider name (``--provider`` or ``CLEARANCE_PROVIDER``): an operator's
    mistake, so a usage error (exit 2); still a ``ValueError`` for callers that catch that."""


def _anthropic(**settings: Any) -> Provider:
    from engine.providers.anthropic import AnthropicProvider

    return AnthropicProvider(**settings)


def _offline(**settings: Any) -> Provider:
    from engine.providers.offline import OfflineProvider

    return OfflineProvider(**settings)


def _scripted(**settings: Any) -> Provider:
    from engine.providers.scripted import ScriptedProvider

    return ScriptedProvider(**settings)


def _none(**settings: Any) -> Provider:
    # every question unclear: gates follow their declared policy for an indeterminate check
    return NullProvider("semantic checks are disabled (provider 'none')")


PROVIDERS: dict[str, Callable[..., Provider]] = {
    "anthropic": _anthropic,
    "offline": _offline,
    "scripted": _scripted,
    "none": _none,
}


def chosen_name(name: str | None = None) -> str:
    """Which provider :func:`make_provider` would build, and nothing else."""
    if name:
        return name.strip().lower()
    env = os.environ.get("CLEARANCE_PROVIDER", "").strip().lower()
    if env:
        return env
    return "anthropic" if os.environ.get("ANTHROPIC_API_KEY") else "offline"


def make_provider(name: str | None = None, **settings: Any) -> Provider:
    """Build a provider. ``settings`` go to its constructor (e.g. ``timeout_s`` or ``max_calls``
    for anthropic, ``default_threshold`` for offline, ``table`` for scripted). An unknown name is
    an operator error and raises :class:`UnknownProviderError` (a ``ValueError`` and a
    ``UserError``) naming the choices and where the name came from."""
    key = chosen_name(name)
    factory = PROVIDERS.get(key)
    if factory is None:
        near = difflib.get_close_matches(key, list(PROVIDERS), n=1)
        hint = f" Did you mean '{near[0]}'?" if near else ""
        source = "" if name else " (from CLEARANCE_PROVIDER)"
        raise UnknownProviderError(
            f"unknown semantic provider '{key}'{source}: expected one of "
            f"{', '.join(PROVIDERS)}.{hint}"
        )
    return factory(**settings)
