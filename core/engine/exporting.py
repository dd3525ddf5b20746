"""Export: a fleet document written from agents that exist on a server. Every handler gives the fragments of its
kinds (`ResourceHandler.export`); this module joins them into one document and the files beside it."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lettafleet.core.engine.live import LiveReader
    from lettafleet.core.engine.plugin_manager import FleetPlugins


class ExportError(Exception):
    """An export that cannot be written as asked; the message says what to do."""


@dataclass(frozen=True)
class Exported:
    """One fragment of an exported fleet document: `value` under `key`, in the agent named `agent` (None: at the
    top level). Lists under one key are joined (an item already there is not added twice), mappings merged.
    `files` (path relative to the fleet file -> text) are written beside it, for `from_file` references.
    `runtime`: it declares what an application made rather than a fleet file (a conversation no record lists),
    exported only when asked for (`export --conversations`). `notes`: what the fragment had to leave out, and why,
    one line each, for the user to read (the command prints them); a fragment of notes only has the `value` None."""

    key: str
    value: Any
    agent: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    runtime: bool = False
    notes: Sequence[str] = ()


@dataclass(frozen=True)
class ExportedFleet:
    """A fleet document (plain data, agents in the order chosen), the files it refers to, and the notes of what
    was left out."""

    document: dict[str, Any]
    files: dict[str, str]
    notes: list[str] = field(default_factory=list)


def export_fleet(
    manager: FleetPlugins,
    reader: LiveReader,
    agents: Sequence[Mapping[str, Any]],
    *,
    leave_out: Collection[str] = (),
    with_runtime: bool = True,
) -> ExportedFleet:
    """The fleet document of these live agents (rows of the `AGENTS` read), from every handler's fragments but
    those of handlers whose kinds are all in `leave_out`, and (unless `with_runtime`) the `runtime` ones: what the
    user did not ask to export."""
    top: dict[str, Any] = {}
    by_name: dict[str, dict[str, Any]] = {str(agent["name"]): {"name": agent["name"]} for agent in agents}
    files: dict[str, str] = {}
    notes: list[str] = []
    for handler, kinds in manager.handlers():
        if set(kinds) <= set(leave_out):
            continue
        for part in handler.export(reader, agents):
            if part.runtime and not with_runtime:
                continue
            if part.value is not None:  # None: a fragment of notes only
                _merge(top if part.agent is None else by_name[part.agent], part)
            _add_files(files, part.files)
            notes.extend(part.notes)
    return ExportedFleet({**top, "agents": list(by_name.values())}, files, notes)


def _merge(target: dict[str, Any], part: Exported) -> None:
    where = f"agent {part.agent}" if part.agent else "the top level"
    present = target.get(part.key)
    if present is None:
        target[part.key] = _copied(part.value)
    elif isinstance(present, list) and isinstance(part.value, list):
        present.extend(item for item in part.value if item not in present)
    elif isinstance(present, dict) and isinstance(part.value, dict):
        for key, value in part.value.items():
            if key in present and present[key] != value:
                raise ExportError(f"two plugins export different values for {part.key}.{key} in {where}")
            present[key] = value
    elif present != part.value:
        raise ExportError(f"two plugins export different values for {part.key} in {where}")


def _copied(value: Any) -> Any:
    """A fresh list or dict, so that joining later fragments never changes the one a handler returned."""
    if isinstance(value, list):
        return list(value)
    return dict(value) if isinstance(value, Mapping) else value


def _add_files(files: dict[str, str], new: Mapping[str, str]) -> None:
    for relative, text in new.items():
        path = PurePosixPath(relative)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise ExportError(f"a plugin exports the file '{relative}', which is not inside the export folder")
        if files.setdefault(relative, text) != text:
            raise ExportError(f"two different texts are exported to the file '{relative}'")


def exported_text_source(text: str, relative: str, *, max_lines: int = 3) -> tuple[dict[str, str], dict[str, str]]:
    """A `value` / `from_file` source for a text: short texts inline, longer ones in the file `relative`.
    Returns the source and the files to write (none for an inline value)."""
    if text.count("\n") < max_lines and len(text) <= 200:
        return {"value": text}, {}
    return {"from_file": relative}, {relative: text}
