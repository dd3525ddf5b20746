"""What a command loads at start: an HTTP library only for the commands that talk HTTP (docs/benchmarks.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "fleet.yaml"
RUN_AND_LIST_MODULES = """
import sys
from lettafleet.core.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("loaded:", ",".join(sorted(name for name in sys.modules if name.split(".")[0] in {"httpx", "httpx_sse"})))
"""


def _modules_loaded_by(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, *args], capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()[-1].removeprefix("loaded:").strip()


def test_validate_loads_no_http_library() -> None:
    assert _modules_loaded_by("validate", "-f", str(EXAMPLE)) == ""


def test_help_loads_no_http_library() -> None:
    assert _modules_loaded_by("--help") == ""
