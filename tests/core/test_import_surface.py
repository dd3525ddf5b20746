"""What importing lettafleet loads: the engine and the public API load no command-line library and start no
process, so a program that only plans needs neither (command plugins get the CLI helpers on first use)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

COMMAND_LINE_PACKAGES = {"click", "rich", "rich_click", "subprocess"}


def packages_loaded_by(statement: str) -> set[str]:
    """Top-level packages in sys.modules after `statement`, in a fresh interpreter."""
    script = (
        "import sys\n"
        # httpx loads click and rich for its own command line when they are installed; that is not ours to avoid.
        "sys.modules['httpx._main'] = None\n"
        f"{statement}\n"
        "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    # The interpreter itself may load subprocess at start (site hooks): only what the statement adds counts.
    baseline = subprocess.run([sys.executable, "-c", script.replace(statement, "pass")], capture_output=True, text=True)
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(loaded.stdout.split()) - set(baseline.stdout.split())


@pytest.mark.parametrize(
    "module", ["lettafleet.core.engine.planning", "lettafleet.core.engine.applying", "lettafleet.core"]
)
def test_the_engine_and_the_public_api_load_no_command_line_library(module: str) -> None:
    assert packages_loaded_by(f"import {module}") & COMMAND_LINE_PACKAGES == set()


def test_a_command_plugin_gets_the_cli_helpers_from_the_public_api_on_first_use() -> None:
    assert {"click", "rich_click"} <= packages_loaded_by("from lettafleet.core import server_options, print_table")


# The layers of core, each importing only those after it: the data flows one way, and no arrow runs back up.
LAYERS = ["cli", "render", "engine", "letta"]
CORE = Path(__file__).parents[2] / "core"


def imported_by(path: Path) -> set[str]:
    """The lettafleet modules a file imports at run time (imports for type checking only do not count)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    checking_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for node in ast.walk(block)
    }
    return {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and id(node) not in checking_only
        if node.module.startswith("lettafleet.")
    }


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_of_core_imports_only_the_layers_below_it(layer: str) -> None:
    above = {f"lettafleet.core.{name}" for name in LAYERS[: LAYERS.index(layer)]} | {"lettafleet.plugins"}
    for path in sorted((CORE / layer).glob("*.py")):
        backwards = {module for module in imported_by(path) if any(module.startswith(up) for up in above)}
        assert backwards == set(), f"{path.relative_to(CORE.parent)} imports {sorted(backwards)}"


def test_core_never_imports_a_plugin() -> None:
    for path in sorted(CORE.rglob("*.py")):
        assert not any(module.startswith("lettafleet.plugins") for module in imported_by(path)), path
