"""The example fleets the docs show, and the files they name, for the tests that validate and fuzz them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
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
