"""A validated fleet: its normalized data, and access to the files it refers to (`from_file`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

from lettafleet.core.diagnostics import Path, Problem
from lettafleet.core.document import FleetDocument


@dataclass(frozen=True)
class Fleet:
    """What plugins see of a fleet file: `data` has passed the schema (numbers and booleans converted, defaults
    filled in); `document` keeps positions for messages."""

    document: FleetDocument
    data: Mapping[str, Any]

    @property
    def path(self) -> FilePath:
        return self.document.path

    @property
    def root(self) -> FilePath:
        """`from_file` paths are relative to the directory of the fleet file and may not leave it."""
        return self.document.path.parent

    def file_problem(self, relative: str, at: Path) -> Problem | None:
        """Why `relative` cannot be read as a `from_file` source, or None if it can."""
        candidate = FilePath(relative)
        if candidate.is_absolute():
            return Problem(
                at,
                f"from_file must be relative to the fleet file, not absolute: {relative}",
                "write the path relative to the fleet file's directory",
            )
        resolved = (self.root / candidate).resolve()
        if not resolved.is_relative_to(self.root.resolve()):
            return Problem(
                at,
                f"from_file leaves the fleet file's directory: {relative}",
                "keep referenced files inside the directory tree of the fleet file",
            )
        if not resolved.is_file():
            return Problem(
                at, f"from_file not found: {relative} (looked for {resolved})", "create the file or correct the path"
            )
        try:
            resolved.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            return Problem(at, f"from_file cannot be read as UTF-8 text: {relative}: {error}")
        return None

    def text(self, source: Mapping[str, Any]) -> str:
        """The text of a `value` / `from_file` source. Call it only on a fleet whose checks passed."""
        if "from_file" in source:
            return (self.root / source["from_file"]).resolve().read_text(encoding="utf-8")
        return source.get("value") or ""

    def text_problems(self, source: Mapping[str, Any], at: Path) -> list[Problem]:
        """Problems of a `value` / `from_file` source: the file must exist inside the fleet's directory."""
        if "from_file" not in source:
            return []
        problem = self.file_problem(source["from_file"], (*at, "from_file"))
        return [problem] if problem else []
