"""Names and imports (issue 19): the built-in library resolves by name from any module folder,
in every command; the library search path (--lib, CLEARANCE_LIB_PATH, lib-path in
clearance.toml) is searched in its documented order; regulation-style gate codes are valid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, write
from engine.api import Engine
from engine.config import load_config
from engine.errors import UserError
from engine.loader import BUILTIN_LIB, LIB_PATH_ENV, Registry, library_search_path

OUTSIDE_MODULE = r"""import common

module pci { title "Card data storage" version "1.0" }

gate PCI-3.4 pan_masked {
  title "Stored card numbers are masked"
  cite  "PCI DSS v4.0 Req. 3.4"
  forbid regex /\b4[0-9]{15}\b/
  example pass "Card ending 1111 on file."
  example fail "Card 4111111111111111 on file."
}

gate CCPA-1798.120 opt_out_link {
  title "The notice links to the opt-out page"
  cite  "Cal. Civ. Code 1798.120"
  require web_address
  example pass "Opt out at https://acme.example/opt-out."
  example fail "Write to us to opt out."
}

gate HIPAA-164.514(b) de_identified {
  title "The data set says it is de-identified"
  cite  "45 CFR 164.514(b)"
  require phrase("de-identified")
  example pass "This data set is de-identified."
  example fail "This data set holds patient records."
}
"""


@pytest.fixture(autouse=True)
def no_library_env(monkeypatch):
    monkeypatch.delenv(LIB_PATH_ENV, raising=False)


#: runs each command line given (one per argument, split on spaces) through the real CLI entry
#: point in one child process (one interpreter start-up, not three), marking where each ends
_RUN_ALL = """
import sys
from engine.cli import main
for line in sys.argv[1:]:
    rc = main(line.split())
    sys.stdout.flush()
    sys.stderr.flush()
    print(f"=== exit {rc}", flush=True)
"""


def clearance(cwd: Path, *command_lines: str) -> list[tuple[int, str]]:
    """Run ``clearance`` command lines from ``cwd`` in a child process: (exit code, output)."""
    done = subprocess.run(
        [sys.executable, "-c", _RUN_ALL, *command_lines],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    parts = done.stdout.split("=== exit ")
    out = [(int(nxt.split("\n", 1)[0]), text) for text, nxt in zip(parts, parts[1:], strict=False)]
    assert len(out) == len(command_lines), done.stdout
    return out


def test_module_outside_the_repository_lints_tests_and_validates(tmp_path):
    """The issue's "done when": `import common` and dotted codes, outside modules/."""
    assert ROOT not in tmp_path.parents
    write(tmp_path / "policies" / "pci" / "storage.gates", OUTSIDE_MODULE)
    write(tmp_path / "notice.txt", "We store card 4111111111111111. This set is de-identified.\n")

    (lint_rc, lint), (test_rc, test), (run_rc, run) = clearance(
        tmp_path,
        "lint policies/pci",
        "test policies/pci -v",
        "validate notice.txt -g policies/pci -m pci",
    )
    assert lint_rc == 0, lint
    assert "0 error(s), 0 warning(s) in 3 gates" in lint
    assert test_rc == 0, test
    assert "6 passed, 0 failed" in test
    assert "ok   HIPAA-164.514(b)::example[1] (pass)" in test
    assert run_rc == 1, run  # the card number fails PCI-3.4
    assert "PCI-3.4" in run and "CCPA-1798.120" in run


def _tag_lib(folder: Path, word: str) -> Path:
    """A library ``tag`` whose one definition says which folder it came from."""
    write(folder / "tag.gates", f'define tag = phrase("{word}")\n')
    return folder


def _tag_source(registry: Registry) -> str:
    """Which ``tag`` library a module importing it compiled against."""
    module, diags, _ = registry.compile(registry.module_ids()[0])
    assert module is not None, [d.render() for d in diags]
    return module.gates[0].requires[0].check.phrases[0]


def _module(root: Path) -> Path:
    return write(
        root / "mods" / "m" / "g.gates",
        'import tag\nmodule m { title "m" }\n'
        'gate M-1 g { title "t" cite "c" require tag example pass "x" example fail "y" }\n',
    )


def test_search_order_is_lib_then_env_then_config_then_beside_then_builtin(tmp_path, monkeypatch):
    _module(tmp_path)
    flag = _tag_lib(tmp_path / "flag", "from --lib")
    env = _tag_lib(tmp_path / "env", "from the environment")
    conf = _tag_lib(tmp_path / "conf", "from clearance.toml")
    _tag_lib(tmp_path / "mods" / "lib", "from beside the modules")
    monkeypatch.setenv(LIB_PATH_ENV, str(env))

    def source(explicit: list[Path], configured: list[Path]) -> str:
        path = library_search_path(explicit, configured)
        return _tag_source(Registry([tmp_path / "mods"], include_builtin=False, lib_paths=path))

    assert source([flag], [conf]) == "from --lib"
    assert source([], [conf]) == "from the environment"
    monkeypatch.delenv(LIB_PATH_ENV)
    assert source([], [conf]) == "from clearance.toml"
    assert source([], []) == "from beside the modules"


def test_builtin_library_is_searched_last_from_anywhere(tmp_path):
    registry = Registry([tmp_path], include_builtin=False)
    registry.sources()
    assert registry._libs == [BUILTIN_LIB.resolve()]


def test_config_lib_path_is_relative_to_the_settings_file(tmp_path, run_cli, monkeypatch):
    _module(tmp_path)
    _tag_lib(tmp_path / "shared" / "words", "from clearance.toml")
    write(tmp_path / "clearance.toml", 'lib-path = ["shared/words"]\n')
    assert load_config(tmp_path / "clearance.toml").lib_path == [tmp_path / "shared" / "words"]
    monkeypatch.chdir(tmp_path)
    # without the settings file's library, `import tag` is not found
    rc, out, err = run_cli("lint", "mods/m", "--no-examples")
    assert rc == 0, err
    (tmp_path / "clearance.toml").unlink()
    rc, out, err = run_cli("lint", "mods/m", "--no-examples")
    assert rc == 2 and "error[DSL130]: cannot find import 'tag'" in err
    rc, out, err = run_cli("lint", "mods/m", "--no-examples", "--lib", "shared/words")
    assert rc == 0, err


def test_a_library_folder_that_does_not_exist_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="--lib: no such library folder"):
        Engine(cache=None, audit=None, lib_paths=[tmp_path / "nope"])
    monkeypatch.setenv(LIB_PATH_ENV, str(tmp_path / "nope"))
    with pytest.raises(UserError, match=f"{LIB_PATH_ENV}: no such library folder"):
        Engine(cache=None, audit=None)
    monkeypatch.delenv(LIB_PATH_ENV)
    write(tmp_path / "clearance.toml", 'lib-path = "missing"\n')
    with pytest.raises(UserError, match="'lib-path' names 'missing', which is not a folder"):
        load_config(tmp_path / "clearance.toml")


def test_a_regulation_style_code_is_addressable_over_http(tmp_path):
    """Codes may hold '.' and '(...)' because they stay usable as a URL path segment."""
    from fastapi.testclient import TestClient

    from engine.server import Settings, create_app

    write(tmp_path / "policies" / "pci" / "storage.gates", OUTSIDE_MODULE)
    engine = Engine(gate_paths=[tmp_path / "policies" / "pci"], cache=None, audit=None)
    with TestClient(create_app(engine, settings=Settings(auth=False))) as client:
        for path in ("HIPAA-164.514(b)", "HIPAA-164.514%28b%29", "CCPA-1798.120"):
            r = client.get(f"/v1/gates/{path}")
            assert r.status_code == 200, r.text
        assert client.get("/v1/gates/HIPAA-164.514(b)").json()["code"] == "HIPAA-164.514(b)"
