"""Project settings: `clearance.toml` (or `[tool.clearance]` in pyproject.toml), found from the
working directory upwards as ruff and Vale find theirs, and the jurisdictions modules declare."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any

from dsl.ast import DOC_TYPES, Severity
from dsl.diagnostics import did_you_mean
from engine.batch import glob_match
from engine.errors import UserError

CONFIG_NAMES = ("clearance.toml", ".clearance.toml")


class UntypedPolicy(str, Enum):
    """What a validation does when no document type was given and none could be inferred."""

    #: the default: never pass silently; verdict `review`, exit 3, unless a universal gate fails
    review = "review"
    #: block the release: verdict `fail`, exit 1
    fail = "fail"
    #: run only the gates that need no type and let them decide (an explicit, reported opt-in)
    universal = "universal"


_KEYS = ("modules", "jurisdictions", "fail-on", "untyped", "gates", "doc-types", "lib-path")


@dataclass
class Config:
    """Settings from a project file; every field may also be given on the command line, which
    wins. ``path`` is the file they came from (None: built-in defaults)."""

    path: Path | None = None
    modules: list[str] | None = None
    jurisdictions: list[str] | None = None
    fail_on: Severity | None = None
    untyped: UntypedPolicy = UntypedPolicy.review
    gates: list[Path] = field(default_factory=list)
    #: (glob relative to the config file's folder, document type), first match wins
    doc_types: list[tuple[str, str]] = field(default_factory=list)
    #: library folders `import NAME` searches (relative to the config file's folder), after
    #: --lib and CLEARANCE_LIB_PATH, before the lib/ folders beside the modules
    lib_path: list[Path] = field(default_factory=list)

    def doc_type_for(self, path: str | Path | None) -> tuple[str, str] | None:
        """The (type, glob) the project assigns to a document path, if any glob matches."""
        if path is None or not self.doc_types:
            return None
        p = Path(path)
        base = self.path.parent if self.path else Path.cwd()
        try:
            rel = PurePosixPath(p.resolve().relative_to(base.resolve()).as_posix())
        except (ValueError, OSError):
            rel = PurePosixPath(p.as_posix())
        for glob, doc_type in self.doc_types:
            if glob_match(rel, glob):
                return doc_type, glob
        return None


def find_config(start: Path | None = None) -> Path | None:
    """The nearest `clearance.toml` / `.clearance.toml`, or a pyproject.toml with a
    `[tool.clearance]` table, from ``start`` (default: the working directory) upwards."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        for name in CONFIG_NAMES:
            if (folder / name).is_file():
                return folder / name
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and _tool_table(pyproject) is not None:
            return pyproject
    return None


def _tool_table(pyproject: Path) -> dict[str, Any] | None:
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    table = data.get("tool", {}).get("clearance")
    return table if isinstance(table, dict) else None


def load_config(path: Path) -> Config:
    """Read and check a settings file; any mistake is a :class:`UserError` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the settings file ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("clearance", {})
    return _parse(data, path)


def _parse(data: dict[str, Any], path: Path) -> Config:
    def bad(key: str, what: str) -> UserError:
        return UserError(f"{path}: '{key}' {what}")

    for key in data:
        if key not in _KEYS:
            raise UserError(
                f"{path}: unknown setting '{key}' (expected one of: "
                f"{', '.join(_KEYS)}).{did_you_mean(key, _KEYS)}"
            )

    def strings(key: str) -> list[str] | None:
        v = data.get(key)
        if v is None:
            return None
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise bad(key, "must be a list of strings")
        return v

    cfg = Config(path=path, modules=strings("modules"))
    if (js := strings("jurisdictions")) is not None:
        cfg.jurisdictions = normalise_jurisdictions(js, where=f"{path}: 'jurisdictions'")
    if "fail-on" in data:
        try:
            cfg.fail_on = Severity(data["fail-on"])
        except ValueError:
            raise bad("fail-on", f"must be one of {', '.join(s.value for s in Severity)}") from None
    if "untyped" in data:
        cfg.untyped = parse_untyped(data["untyped"], f"{path}: 'untyped'")
    cfg.gates = [(path.parent / g) for g in strings("gates") or []]
    lib = data.get("lib-path")
    for folder in [lib] if isinstance(lib, str) else strings("lib-path") or []:
        if not (path.parent / folder).is_dir():
            raise bad("lib-path", f"names '{folder}', which is not a folder")
        cfg.lib_path.append(path.parent / folder)
    types = data.get("doc-types", {})
    if not isinstance(types, dict):
        raise bad("doc-types", 'must be a table of "glob" = "document type"')
    for glob, doc_type in types.items():
        if doc_type not in DOC_TYPES:
            raise bad(
                "doc-types",
                f"maps '{glob}' to unknown document type '{doc_type}' "
                f"(expected one of: {', '.join(DOC_TYPES)}).{did_you_mean(str(doc_type), DOC_TYPES)}",
            )
        cfg.doc_types.append((glob, doc_type))
    return cfg


def parse_untyped(value: Any, where: str = "--untyped") -> UntypedPolicy:
    try:
        return UntypedPolicy(value)
    except ValueError:
        names = [p.value for p in UntypedPolicy]
        raise UserError(
            f"{where}: unknown policy '{value}' (expected one of: "
            f"{', '.join(names)}).{did_you_mean(str(value), names)}"
        ) from None


def resolve_config(explicit: Path | None = None, *, search: bool = True) -> Config:
    """The settings a CLI or server run uses: the file given, else the nearest one found, else
    the defaults."""
    if explicit is not None:
        if not explicit.is_file():
            raise UserError(f"{explicit}: no such settings file")
        return load_config(explicit)
    found = find_config() if search else None
    return load_config(found) if found else Config()


# -- jurisdictions ---------------------------------------------------------------------------

#: names people write for a jurisdiction, and the code it stands for
_ALIASES = {
    "european union": "eu",
    "eea": "eu",
    "united kingdom": "uk",
    "gb": "uk",
    "great britain": "uk",
    "united states": "us",
    "usa": "us",
    "california": "us-ca",
}
_CODE = re.compile(r"^[a-z]{2}(-[a-z0-9]{1,3})?$")


def normalise_jurisdictions(values: list[str], where: str = "--jurisdiction") -> list[str]:
    """Codes like ``us``, ``us-ca``, ``eu``, ``uk`` (ISO 3166 style, lower case); a sub-division
    brings its country (``us-ca`` -> ``us``)."""
    out: list[str] = []
    for raw in values:
        for part in re.split(r"[,\s]+", raw.strip()):
            if not part:
                continue
            code = _ALIASES.get(part.lower(), part.lower())
            if not _CODE.match(code):
                raise UserError(
                    f"{where}: '{part}' is not a jurisdiction code (use codes like "
                    "us, us-ca, eu, uk, de)"
                )
            for c in (code, code.split("-")[0]):
                if c not in out:
                    out.append(c)
    return out


def module_jurisdictions(declared: str | None) -> list[str]:
    """A module header's ``jurisdiction "EU / UK"`` as codes; empty: the module applies in any
    jurisdiction (the secrets module, say)."""
    if not declared or declared.strip().lower() in ("any", "all", "global", "universal"):
        return []
    parts = [p for p in re.split(r"\s*[/,;&]\s*|\s+and\s+", declared.strip()) if p]
    return normalise_jurisdictions(parts, where="module jurisdiction")


#: EU law binds the member states' own codes too
_EU = {
    "at",
    "be",
    "bg",
    "hr",
    "cy",
    "cz",
    "dk",
    "ee",
    "fi",
    "fr",
    "de",
    "gr",
    "hu",
    "ie",
    "it",
    "lv",
    "lt",
    "lu",
    "mt",
    "nl",
    "pl",
    "pt",
    "ro",
    "sk",
    "si",
    "es",
    "se",
    "is",
    "li",
    "no",
}


def module_applies(declared: list[str], wanted: list[str]) -> tuple[bool, str]:
    """Whether a module with jurisdictions ``declared`` applies to a document under ``wanted``,
    and why, in words for the report."""
    if not declared:
        return True, "applies in every jurisdiction"
    if not wanted:
        return True, "no jurisdiction set: every module applies"
    expanded = set(wanted) | ({"eu"} if set(wanted) & _EU else set())
    hit = [j for j in declared if j in expanded]
    if hit:
        return True, f"declares {', '.join(declared)}; the document is under {', '.join(hit)}"
    return False, f"declares {', '.join(declared)}; the document is under {', '.join(wanted)}"
