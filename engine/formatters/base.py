"""One small interface for report formats; one file per format (text, json, sarif, ...)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from engine.report import Report


class Formatter(ABC):
    name: ClassVar[str]
    #: file extension for --output defaults
    suffix: ClassVar[str] = ".txt"

    @abstractmethod
    def render(self, reports: list[Report]) -> str:
        """Render one or more documents' reports as one output."""


_REGISTRY: dict[str, type[Formatter]] = {}


def register(cls: type[Formatter]) -> type[Formatter]:
    _REGISTRY[cls.name] = cls
    return cls


def get_formatter(name: str) -> Formatter:
    _discover()
    try:
        return _REGISTRY[name]()
    except KeyError:
        from engine.errors import UserError

        raise UserError(f"unknown format '{name}' (expected one of: {', '.join(formats())})") from None


def formats() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def _discover() -> None:
    import importlib
    import pkgutil

    import engine.formatters as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "base":
            importlib.import_module(f"engine.formatters.{info.name}")
