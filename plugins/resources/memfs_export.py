"""`export` of an agent's git-backed memory as lettactl's `memory:` section: the files it has now, written beside
the fleet file (a template folder, a folder per skill, a `files:` entry for a Markdown file neither takes), so that
planning the export against the same server changes nothing. Backend-neutral: each backend says which files the
agent has; a path from the server is checked as strictly as one in a fleet file before anything is written."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from lettafleet.core import Exported
from lettafleet.plugins.resources.memfs_expansion import (
    MEMFS,
    SKILL_FILE,
    SKILL_NAME,
    block_file_paths,
    memory_path_problem,
    skill_files,
    template_files,
)

TEMPLATE_FOLDER = "memory"  # memory/AGENT/...: the template folder of each agent
SKILLS_FOLDER = "skills"  # skills/AGENT/NAME/...: each skill's from_dir
SKILLS_PREFIX = "skills/"


@dataclass
class _Sorted:
    """An agent's files sorted by the key of the section that will declare each."""

    template: dict[str, str] = field(default_factory=dict)
    skills: dict[str, dict[str, str]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def exported_memory(agent: str, files: Mapping[str, str], blocks: Collection[str]) -> Exported | None:
    """The agent's `memory:` section (`mode: memfs`) declaring `files` (path in its memory -> text), and the files
    written beside the fleet file; None when there is none to declare. `blocks`: the labels the export declares as
    the agent's memory blocks, whose files are theirs, not the section's. A path no fleet file could name (absolute,
    with `..`, in `.git`, ...) or no key of the section can declare is left out, with a note saying why."""
    found = _sorted(agent, files, blocks)
    section: dict[str, Any] = {"mode": MEMFS}
    written: dict[str, str] = {}
    if found.template:
        folder = f"{TEMPLATE_FOLDER}/{agent}"
        section["template_dir"] = folder
        written.update({f"{folder}/{path}": text for path, text in found.template.items()})
    if found.files:
        folder = f"{TEMPLATE_FOLDER}/{agent}"  # beside the template's files: the folder's walk leaves these out
        section["files"] = [{"to": path, "from_file": f"{folder}/{path}"} for path in found.files]
        written.update({f"{folder}/{path}": text for path, text in found.files.items()})
    if found.skills:
        section["skills"] = []
        for name, skill in found.skills.items():
            folder = f"{SKILLS_FOLDER}/{agent}/{name}"
            section["skills"].append({"name": name, "from_dir": folder})
            written.update({f"{folder}/{path}": text for path, text in skill.items()})
    if len(section) == 1:
        return Exported("memory", None, agent, notes=found.notes) if found.notes else None
    return Exported("memory", section, agent, written, notes=found.notes)


def _sorted(agent: str, files: Mapping[str, str], blocks: Collection[str]) -> _Sorted:
    """Each file under the key that declares it as it is: a skill's folder (`skills/NAME/` with its SKILL.md,
    what lettactl copies of it), else the template folder (what lettactl takes of one), else `files:` (Markdown)."""
    found = _Sorted()
    taken = {path: label for label in blocks for path in block_file_paths(label)}
    kept: dict[str, str] = {}
    for path, text in sorted(files.items()):
        reason = memory_path_problem(path, markdown=False)
        if reason is None and path in taken:
            reason = f"is where memory block {taken[path]} lives, which the export declares as a block"
        if reason:
            found.notes.append(f"agent {agent}: left out memory file {path!r}: it {reason}")
        else:
            kept[path] = text
    skills = _skills(kept)
    for path, text in kept.items():
        skill = _skill_of(path, skills)
        if skill is not None:
            found.skills.setdefault(skill, {})[path.removeprefix(f"{SKILLS_PREFIX}{skill}/")] = text
        elif template_files([path]):
            found.template[path] = text
        elif path.endswith(".md"):
            found.files[path] = text
        else:
            found.notes.append(
                f"agent {agent}: left out memory file {path!r}: the memory section declares a file that is not "
                "Markdown only as part of a skill (skills/NAME/ with a SKILL.md), and this one is not"
            )
    return found


def _skills(paths: Collection[str]) -> set[str]:
    """The skills among the paths: `skills/NAME/SKILL.md` of a name lettactl accepts."""
    names = set()
    for path in paths:
        parts = PurePosixPath(path).parts
        is_skill_file = len(parts) == 3 and parts[0] + "/" == SKILLS_PREFIX and parts[2] == SKILL_FILE
        if is_skill_file and re.fullmatch(SKILL_NAME, parts[1]):
            names.add(parts[1])
    return names


def _skill_of(path: str, skills: Collection[str]) -> str | None:
    """The skill whose folder copy (as lettactl copies one) holds `path`; None for any other file."""
    parts = PurePosixPath(path).parts
    if len(parts) < 3 or parts[0] + "/" != SKILLS_PREFIX or parts[1] not in skills:
        return None
    return parts[1] if skill_files(["/".join(parts[2:])]) else None
