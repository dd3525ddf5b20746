"""Writing an export: the fleet file as YAML that lettafleet's own parser reads back, and the files it refers to,
all or nothing overwritten."""

from __future__ import annotations

import os
from pathlib import Path

from lettafleet.core.cli.output import to_yaml
from lettafleet.core.engine.exporting import ExportedFleet, ExportError
from lettafleet.core.engine.files import UnreadableFile, resolve_inside


def write_export(exported: ExportedFleet, out: Path, *, force: bool = False) -> list[Path]:
    """Write the fleet file `out` and its files beside it; return the paths written. Nothing is written when any
    of them exists already, unless `force`."""
    texts = {out: to_yaml(exported.document)}
    texts.update({_inside(out.parent, relative): text for relative, text in exported.files.items()})
    existing = [path for path in texts if os.path.lexists(path)]
    if existing and not force:
        shown = ", ".join(str(path) for path in existing[:5]) + (" ..." if len(existing) > 5 else "")
        raise ExportError(
            f"{shown} already exist{'s' if len(existing) == 1 else ''}: nothing was written. "
            "Export to another file or folder, or overwrite with --force."
        )
    for path, text in texts.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(path):
            path.unlink()  # a link is replaced, never followed out of the folder
        path.write_text(text, encoding="utf-8")
    return list(texts)


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
