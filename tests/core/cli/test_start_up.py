"""What a command loads at start: an HTTP library only for the commands that talk HTTP, strictyaml only for a file
libyaml's fast path does not take, rich's console only for what prints with it (docs/benchmarks.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "fleet.yaml"
RUN_AND_LIST_MODULES = """
import sys
from lettafleet.core.cli.app import main
families = set(sys.argv[1].split(","))
try:
    main(sys.argv[2:])
except SystemExit:
    pass
print("loaded:", ",".join(sorted(name for name in sys.modules if name.split(".")[0] in families)))
"""
HTTP = "httpx,httpx_sse"


def _modules_loaded_by(*args: str, families: str = HTTP) -> str:
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, families, *args], capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()[-1].removeprefix("loaded:").strip()


def test_validate_loads_no_http_library() -> None:
    assert _modules_loaded_by("validate", "-f", str(EXAMPLE)) == ""


def test_help_loads_no_http_library() -> None:
    assert _modules_loaded_by("--help") == ""


def test_validate_of_a_plain_file_loads_neither_strictyaml_nor_richs_console() -> None:
    loaded = _modules_loaded_by("validate", "-f", str(EXAMPLE), families="strictyaml,rich")
    assert loaded == ""


def test_a_file_with_a_syntax_error_is_still_explained_by_strictyaml(tmp_path: Path) -> None:
    broken = tmp_path / "fleet.yaml"
    broken.write_text("agents:\n  - name: a\n    description: [unclosed\n")
    done = subprocess.run(
        [sys.executable, "-c", "from lettafleet.core.cli.app import main; main()", "validate", "-f", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert f"{broken}:4:1: invalid YAML: while parsing a flow sequence" in done.stderr
