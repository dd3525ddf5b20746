"""The fleets the docs show validate as written, with the files they name, so the docs cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from lettafleet.core.cli import main

ROOT = Path(__file__).parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def example_fleets() -> list[tuple[str, str]]:
    """Every YAML block of the docs that is a fleet (it has a top-level `agents:`), named by file and number."""
    found = []
    for document in DOCUMENTS:
        blocks = re.findall(r"```ya?ml\n(.*?)```", document.read_text(encoding="utf-8"), re.S)
        fleets = [block for block in blocks if re.search(r"^agents:", block, re.M)]
        found += [(f"{document.name}#{number}", fleet) for number, fleet in enumerate(fleets, 1)]
    return found


def tool_source(name: str) -> str:
    docstring = '    """Look it up.\n\n    Args:\n        order_id: the order.\n    """\n'
    return f"def {name}(order_id: str) -> str:\n{docstring}    return order_id\n"


def write_named_files(fleet: str, folder: Path) -> None:
    """The files the example names: text for `from_file`, a tool of the entry's name for a `.py`, and one tool
    file when it lists `tools/*`."""
    defined = dict(re.findall(r"name: (\w+)\s+# [^\n]*\n\s+from_file: (\S+\.py)", fleet))
    for relative in re.findall(r"from_file: ([^\s,}]+)", fleet):
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        python_tool = {path: name for name, path in defined.items()}.get(relative)
        target.write_text(tool_source(python_tool) if python_tool else "Some text.\n", encoding="utf-8")
    if '"tools/*"' in fleet:
        (folder / "tools").mkdir(exist_ok=True)
        (folder / "tools" / "lookup_order.py").write_text(tool_source("lookup_order"), encoding="utf-8")


def test_the_docs_show_at_least_the_readme_and_fleet_file_examples():
    names = [name for name, _ in example_fleets()]
    assert "README.md#1" in names and "fleet-file.md#1" in names


@pytest.mark.parametrize(("name", "fleet"), example_fleets(), ids=[name for name, _ in example_fleets()])
def test_an_example_fleet_in_the_docs_validates(tmp_path, name, fleet):
    write_named_files(fleet, tmp_path)
    path = tmp_path / "fleet.yaml"
    path.write_text(fleet, encoding="utf-8")

    result = CliRunner().invoke(main, ["validate", str(path)])

    assert result.exit_code == 0, result.output
