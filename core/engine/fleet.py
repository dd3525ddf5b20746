"""A validated fleet: its normalized data, and access to the files it refers to (`from_file`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

from lettafleet.core.engine.diagnostics import Diagnostic, Path, Problem
from lettafleet.core.engine.document import FleetDocument
from lettafleet.core.engine.files import UnreadableFile, files_under_inside, list_folder_inside, read_file_inside


@dataclass(frozen=True)
class Fleet:
    """What plugins see of a fleet file: `data` has passed the schema (numbers and booleans converted, defaults
    filled in); `document` keeps positions for messages."""

    document: FleetDocument
    data: Mapping[str, Any]
    unlocated_notes: tuple[Problem, ...] = ()  # remarks on the file that stop nothing (see `Note`), located as `notes`
    # lettactl's template mode (`apply --match GLOB`): the file's first agent is a template for every live agent
    # whose name matches, and is not itself declared as an agent. None: the file is read as written.
    match: str | None = None
    # The values of the options plugins add to `plan` and `apply` (`PlanOption`), by option name: how this run
    # reads the file is theirs to decide (a template's `--sample`). Empty outside those commands.
    options: Mapping[str, Any] = field(default_factory=dict)
    _texts: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    _present: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)  # has_file's answers

    @property
    def notes(self) -> tuple[Diagnostic, ...]:
        """The notes, each at its line: found only when shown (`validate` shows them), as locating reads the file
        again."""
        located = {self.document.diagnostic(note.path, note.message, note.hint) for note in self.unlocated_notes}
        return tuple(sorted(located))

    @property
    def path(self) -> FilePath:
        return self.document.path

    @property
    def name(self) -> str | None:
        """The fleet's `fleet:` name, which everything it creates carries; None when the file gives none."""
        name = self.data.get("fleet")
        return str(name) if name else None

    @property
    def prunes(self) -> bool:
        """Whether the file asks every apply to make the removals that delete data (`prune: true`, meant for CI)."""
        return bool(self.data.get("prune"))

    @property
    def folder(self) -> FilePath:
        """The directory of the fleet file: no file the fleet names may leave it."""
        return self.document.path.parent

    @property
    def root(self) -> FilePath:
        """Where `from_file` paths start: the fleet file's directory, or the `root_path` folder inside it."""
        return self.folder / self.root_path

    @property
    def root_path(self) -> str:
        """lettactl's `root_path`, relative to the fleet file ("" when the file gives none)."""
        return str(self.data.get("root_path") or "")

    def read(self, relative: str) -> str:
        """The text of a file the fleet names, read once and kept, so that checks and plan see the same text.
        Raises UnreadableFile unless it is a regular UTF-8 file inside the fleet's directory (see core.files)."""
        if relative not in self._texts:
            self._texts[relative] = read_file_inside(self.folder, self._from_folder(relative))
        return self._texts[relative]

    def has_file(self, relative: str) -> bool:
        """Whether anything is at `relative` in the fleet's directory, a broken link included: something meant
        as a file, whose problems are to be reported rather than taken for absence. Asked once per path: a fleet
        of thousands of agents names the same tool file thousands of times."""
        if relative not in self._present:
            self._present[relative] = os.path.lexists(self.folder / self._from_folder(relative))
        return self._present[relative]

    def list_folder(self, folder: str) -> list[str]:
        """The paths (`folder/name`) of what `folder` holds, which must be inside the fleet's directory.
        Raises UnreadableFile when the folder leads out of it."""
        return [f"{folder}/{name}" for name in list_folder_inside(self.folder, self._from_folder(folder))]

    def files_under(self, folder: str) -> list[str]:
        """Every regular file under `folder` (links inside it skipped), as paths the fleet can `read`
        (`folder/a/b.md`), sorted. Raises UnreadableFile when the folder leads out of the fleet's directory, is
        missing or is not a folder."""
        base = folder.rstrip("/")
        return [f"{base}/{path}" for path in files_under_inside(self.folder, self._from_folder(base))]

    def _from_folder(self, relative: str) -> str:
        """A path the fleet gives (relative to `root_path`) as a path from the fleet file's directory."""
        return os.path.join(self.root_path, relative) if self.root_path else relative

    def file_problem(self, relative: str, at: Path, label: str = "from_file") -> Problem | None:
        """Why `relative` cannot be read, as `LABEL REASON: RELATIVE` at `at`; None if it can."""
        try:
            self.read(relative)
        except UnreadableFile as error:
            return Problem(at, f"{label} {error.reason}: {relative}", error.hint)
        return None

    def text(self, source: Mapping[str, Any]) -> str:
        """The text of a `value` / `from_file` source. Call it only on a fleet whose checks passed."""
        if "from_file" in source:
            return self.read(source["from_file"])
        return source.get("value") or ""

    def text_problems(self, source: Mapping[str, Any], at: Path) -> list[Problem]:
        """Problems of a `value` / `from_file` source: the file must exist inside the fleet's directory."""
        if "from_file" not in source:
            return []
        problem = self.file_problem(source["from_file"], (*at, "from_file"))
        return [problem] if problem else []
