"""Writing an export: the fleet file as YAML that lettafleet's own parser reads back (a new file, or entries
appended to the lists of an existing one, whose text is kept as it is), and the files it refers to, all or nothing
overwritten."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lettafleet.core.cli.output import to_yaml
from lettafleet.core.engine.document import FleetDocument, load_document
from lettafleet.core.engine.exporting import ExportedFleet, ExportError
from lettafleet.core.engine.files import UnreadableFile, resolve_inside

_ITEM = re.compile(r"^(\s*)-(?:\s|$)")


def write_export(exported: ExportedFleet, out: Path, *, force: bool = False) -> list[Path]:
    """Write the fleet file `out` and its files beside it; return the paths written. Nothing is written when any
    of them exists already, unless `force`."""
    return PendingWrite.of(exported, out, to_yaml(exported.document), force=force, new_fleet_file=True).write()


def appended_export(exported: ExportedFleet, fleet_file: Path, *, force: bool = False) -> PendingWrite:
    """`fleet_file` with the export's list entries (agents, shared blocks) appended to its lists, its own text,
    comments and order kept (a shared block it declares already is not added again), and the files beside it;
    refused (ExportError) when one of those files exists already, unless `force`. Nothing is written yet."""
    document = load_document(fleet_file)
    text = fleet_file.read_text(encoding="utf-8")
    for key, items in exported.document.items():
        declared = {str(item.get("name")) for item in document.data.get(key) or [] if isinstance(item, Mapping)}
        new = [item for item in items if str(item.get("name")) not in declared]
        if new:
            text = _appended(text, document, key, new)
    return PendingWrite.of(exported, fleet_file, text, force=force, new_fleet_file=False)


@dataclass(frozen=True)
class PendingWrite:
    """The texts of a fleet file and the files beside it, checked and ready to be written."""

    texts: dict[Path, str]

    @classmethod
    def of(
        cls, exported: ExportedFleet, fleet_file: Path, text: str, *, force: bool, new_fleet_file: bool
    ) -> PendingWrite:
        if fleet_file.is_dir():
            raise ExportError(
                f"{fleet_file}: is a folder, not a file. Name the fleet file, such as {fleet_file / 'fleet.yaml'}"
            )
        texts = {fleet_file: text}
        texts.update({_inside(fleet_file.parent, relative): text for relative, text in exported.files.items()})
        existing = [path for path in texts if os.path.lexists(path) and (new_fleet_file or path != fleet_file)]
        if existing and not force:
            shown = ", ".join(str(path) for path in existing[:5]) + (" ..." if len(existing) > 5 else "")
            raise ExportError(
                f"{shown} already exist{'s' if len(existing) == 1 else ''}: nothing was written. "
                "Write to another file or folder, or overwrite with --force."
            )
        return cls(texts)

    def write(self) -> list[Path]:
        """Write every text; return the paths written."""
        for path, content in self.texts.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            if os.path.lexists(path):
                path.unlink()  # a link is replaced, never followed out of the folder
            path.write_text(content, encoding="utf-8")
        return list(self.texts)


def _appended(text: str, document: FleetDocument, key: str, items: Sequence[Any]) -> str:
    """`items` added at the end of the top-level list `key` (a new `key:` at the end of the file if it has none)."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if key not in document.data:
        return "".join(lines) + to_yaml({key: list(items)})
    present = document.data[key]
    if not isinstance(present, list) or not present or (key, 0) not in document.positions:
        raise ExportError(f"{document.path}: `{key}:` is not a list of entries lettafleet can append to")
    first_line = document.positions[(key, 0)][0] - 1
    dash = _ITEM.match(lines[first_line])
    if dash is None:
        raise ExportError(f"{document.path}:{first_line + 1}: write `{key}:` as a block list (`- name: ...`) to append")
    end = _list_end(lines, document, key)
    entries = "".join(f"{dash[1]}{line}\n" for line in to_yaml(list(items)).splitlines())
    return "".join([*lines[:end], entries, *lines[end:]])


def _list_end(lines: list[str], document: FleetDocument, key: str) -> int:
    """The index of the line after the last line of the top-level list `key` that holds anything but comments."""
    start = document.positions[(key,)][0]
    later = [line for path, (line, _column) in document.positions.items() if len(path) == 1]
    stop = min((line - 1 for line in later if line > start), default=len(lines))
    end = start
    for index in range(start, stop):
        content = lines[index].strip()
        if content and not content.startswith("#"):
            end = index + 1
    return end


def _inside(root: Path, relative: str) -> Path:
    """Where `relative` goes: inside `root`, through no folder link that leads out of it."""
    path = root / relative
    folders = [folder for folder in path.parents if folder.is_relative_to(root) and folder != root]
    try:
        for folder in filter(os.path.lexists, folders):
            resolve_inside(root, str(folder.relative_to(root)))
    except UnreadableFile as error:
        raise ExportError(f"cannot write {path}: it {error.reason}. {error.hint}") from None
    return path
