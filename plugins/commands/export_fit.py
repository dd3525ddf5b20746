"""`lettafleet export --for URL`: an export fitted to the backend of another server (a move off V1 to the App
Server), without what that backend cannot hold or ignores, each left-out entry said with the backend's reason."""

from __future__ import annotations

import copy
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from lettafleet.core import (
    Backend,
    ExportedFleet,
    FleetPlugins,
    Problem,
    backend_problems,
    load_fleet,
    write_export,
)

KeyPath = tuple[str | int, ...]  # a place in the document, as diagnostics give it


def fitted_for(exported: ExportedFleet, manager: FleetPlugins, backend: Backend) -> tuple[ExportedFleet, list[str]]:
    """The export without the entries `backend` refuses or ignores, and one line per entry left out saying which
    and why. The files beside the fleet file that only those entries referred to are left out too."""
    with tempfile.TemporaryDirectory(prefix="lettafleet-export-") as folder:
        written = Path(folder) / "fleet.yaml"
        write_export(exported, written)
        problems = backend_problems(load_fleet(written, manager), manager, backend)
    reasons: dict[KeyPath, list[str]] = {}
    for problem in problems:  # an entry may be refused for several reasons (a tool, and its attachment)
        reasons.setdefault(problem.path, []).append(_reason(problem))
    document = copy.deepcopy(exported.document)
    said, dropped = [], set()
    for path in sorted(reasons, reverse=True):  # list items last to first, so the earlier ones keep their places
        if _holds(document, path):
            said.append(f"left out {_described(document, path)}: {'; '.join(dict.fromkeys(reasons[path]))}")
            dropped |= _files_of(_remove(document, path))
    named = _from_files(document)
    files = {path: text for path, text in exported.files.items() if path in named or not _only_for(path, dropped)}
    return ExportedFleet(document, files, exported.notes), sorted(said)


def _reason(problem: Problem) -> str:
    """The backend's reason, without the key the plan names first (the line names the entry)."""
    return re.sub(r"^\S+:? ", "", problem.message, count=1)


def _holds(document: Any, path: KeyPath) -> bool:
    """Whether the document still has an entry at `path` (one nested in an entry left out has gone with it)."""
    try:
        for key in path:
            document = document[key]
    except (KeyError, IndexError, TypeError):
        return False
    return True


def _described(document: Any, path: KeyPath) -> str:
    """`agent NAME: tools: web_search`: the entry at `path`, named as a reader of the file finds it."""
    parts: list[str] = []
    for key in path:
        document = document[key]
        if isinstance(key, str):
            parts.append(key)
        elif isinstance(document, Mapping):
            parts.append(str(document.get("name") or document.get("summary") or f"#{key + 1}"))
        else:
            parts.append(str(document))
    if parts[:1] == ["agents"] and len(parts) > 1:
        parts[:2] = [f"agent {parts[1]}"]
    return ": ".join(parts)


def _remove(document: Any, path: KeyPath) -> Any:
    """Take the entry at `path` out, and the lists and mappings that held only it; return the entry."""
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    entry = parent[path[-1]]
    del parent[path[-1]]
    if not parent and len(path) > 1:
        _remove(document, path[:-1])
    return entry


def _files_of(entry: Any) -> set[str]:
    """What a left-out entry named that may be a file beside the fleet file: its `from_file`s, and a name that
    stands for a file (a tool's name means tools/NAME.py)."""
    if isinstance(entry, Mapping):
        return {str(entry["from_file"])} if "from_file" in entry else set().union(*map(_files_of, entry.values()))
    if isinstance(entry, list):
        return set().union(*map(_files_of, entry))
    return {str(entry)}


def _only_for(relative: str, dropped: set[str]) -> bool:
    """Whether the exported file `relative` served only entries that were left out."""
    return relative in dropped or PurePosixPath(relative).stem in dropped


def _from_files(data: Any) -> set[str]:
    """Every `from_file` the document still names."""
    if isinstance(data, Mapping):
        own = {str(data["from_file"])} if "from_file" in data else set()
        return own.union(*map(_from_files, data.values()))
    return set().union(*map(_from_files, data)) if isinstance(data, list) else set()
